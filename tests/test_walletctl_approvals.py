"""walletctl approvals: list, approve (with a lease), deny, leases, revoke, and the live
``watch`` view on a real pseudo-terminal, against a real walletd. The requester is nobody
(a child process); walletctl runs as root, an admin and so an approver.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet_client import WalletClient
from wallet_client.cli_approvals import parse_duration, summary_lines
from wallet_client.walletctl import main

from . import approval_children as kids
from .support import ROOT, Ctl, DaemonFactory, call_as_nobody

pytestmark = [pytest.mark.slow, pytest.mark.root]

WALLETCTL = Path(sys.executable).parent / "walletctl"
REVIEW = [{"id": "orders", "action": "review"}]


@pytest.fixture
def sock(daemon: DaemonFactory) -> str:
    return str(daemon(ephemeral=True).start().socket_path)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str], sock: str) -> Ctl:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--socket", sock, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def held_request(sock: str, message: str = "order:buy 1") -> str:
    """A signing request by nobody, held for review; its approval id."""
    call_as_nobody(kids.create, sock, "agent")
    with WalletClient(sock) as admin:
        admin.set_signing_policy("agent", "admin", REVIEW, 0)
    code, approval_id = call_as_nobody(kids.sign, sock, "agent", message)
    assert code == "pending"
    return str(approval_id)


def test_list_approve_with_a_lease_leases_and_revoke(ctl: Ctl, sock: str) -> None:
    approval_id = held_request(sock, "order:buy\x1b[2J 1")
    code, out, _ = ctl("approvals", "list")
    assert code == 0 and approval_id in out and "asked by uid" in out
    assert "\x1b" not in out  # what the requester sent cannot drive the terminal
    code, out, _ = ctl("--json", "approvals", "list")
    (entry,) = json.loads(out)
    assert entry["summary"]["kind"] == "binary"  # an escape sequence is not shown as text
    code, out, _ = ctl("approvals", "approve", approval_id, "--for", "10m", "--uses", "20")
    assert code == 0 and "lease ls_" in out and "scope process" in out
    code, out, _ = ctl("--json", "approvals", "leases")
    (lease,) = json.loads(out)
    assert (lease["scope"], lease["uses_left"]) == ("process", 20)
    code, out, _ = ctl("approvals", "revoke", lease["lease_id"])
    assert code == 0 and "used 0 times" in out
    code, out, err = ctl("approvals", "approve", approval_id)
    assert code == 4 and "already approved" in err


def test_deny_and_the_refusals(ctl: Ctl, sock: str) -> None:
    approval_id = held_request(sock)
    code, out, _ = ctl("approvals", "deny", approval_id, "--reason", "no")
    assert code == 0 and f"denied {approval_id}" in out
    assert call_as_nobody(kids.await_it, sock, approval_id)[0] == "approval_denied"
    code, _, err = ctl("approvals", "deny", "ap_nope")
    assert code == 4 and "not_found" in err
    code, _, err = ctl("approvals", "approve", "x", "--for", "soon")
    assert code == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("45", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_summary_lines_escape_and_bound() -> None:
    lines = summary_lines({"kind": "text", "length": 9, "text": "a\u202eb\nc", "sha256": "00"})
    assert "\u202e" not in "".join(lines) and any("| c" in line for line in lines)
    typed = summary_lines(
        {"kind": "typed_data", "primary_type": "T", "domain": {}, "fields": {"v": "1"}}
    )
    assert typed[0] == "typed data: T" and "  v = 1" in typed


# --------------------------------------------------------------------------- watch, on a pty


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Screen:
    """``walletctl approvals watch`` with a pty as its terminal (stdin and stdout)."""

    def __init__(self, sock: str) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [str(WALLETCTL), "--socket", sock, "approvals", "watch", "--interval", "0.2"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
            cwd=ROOT,
        )
        os.close(slave)
        self.master = master
        self.seen = b""

    def expect(self, text: str, timeout: float = 20.0) -> None:
        want = text.encode()
        deadline = time.monotonic() + timeout
        while want not in self.seen:
            ready, _, _ = select.select(
                [self.master], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise AssertionError(f"never saw {text!r}:\n{self.seen[-2000:]!r}")
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:
                raise AssertionError(f"the view ended before {text!r}") from None
        self.seen = self.seen[self.seen.index(want) + len(want) :]

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def close(self) -> int:
        code = self.proc.wait(20)
        os.close(self.master)
        return code


@pytest.fixture
def screen(sock: str) -> Iterator[Screen]:
    shown = Screen(sock)
    yield shown
    if shown.proc.poll() is None:
        shown.proc.kill()
        shown.close()


def test_watch_shows_new_requests_and_decides_with_keys(sock: str, screen: Screen) -> None:
    screen.expect("no signing requests are waiting")
    first = held_request(sock, "order:first")
    screen.expect(first)
    screen.expect("| order:first")  # what it signs
    screen.expect("asked by uid")  # and which program asked
    screen.press("a")
    screen.expect(f"approved {first}")
    assert call_as_nobody(kids.await_it, sock, first)[0] == "ok"
    code, second = call_as_nobody(kids.sign, sock, "agent", "order:second")
    assert code == "pending"
    screen.expect(second)
    screen.press("d")
    screen.expect(f"denied {second}")
    screen.press("q")
    assert screen.close() == 0
    assert call_as_nobody(kids.await_it, sock, second)[0] == "approval_denied"
