"""walletctl's ritual and recovery commands, the interactive ones on a real pseudo-terminal.

The console script runs with the pty as its controlling terminal (what getpass opens), as a
person's shell would run it; stdout is a pipe so the result is read apart from the dialogue.
Every answer is sent only once its prompt is on screen: getpass turns echo off *before*
printing the prompt, and flushes input typed ahead, so this is also what a person does.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wallet_client import WalletClient, hash_response
from wallet_client.exitcodes import ExitCode
from wallet_client.walletctl import main

from .support import ROOT, Ctl, DaemonFactory

pytestmark = pytest.mark.slow

WALLETCTL = Path(sys.executable).parent / "walletctl"

PET, CITY = "Rex the 3rd", "Zürich, old town"  # the answers; they must never be shown


@pytest.fixture
def sock(daemon: DaemonFactory, open_tmp: Path) -> str:
    config = open_tmp / "walletd.toml"
    config.write_text("max_attempts = 2\nscrypt_n = 1024\n")  # quick scrypt, quick lockout
    return str(daemon("--config", str(config), ephemeral=True).start().socket_path)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str], sock: str) -> Ctl:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--socket", sock, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _take_terminal() -> None:
    # Runs in the child after setsid(): make the pty on stdin its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A walletctl process on a pseudo-terminal, driven like a person would."""

    def __init__(self, *argv: str) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [str(WALLETCTL), *argv],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
            cwd=ROOT,
        )
        os.close(slave)
        self.master = master
        self.screen = b""
        self._seen = 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every process holding the pty has gone
            return False
        self.screen += data
        return bool(data)

    def expect(self, text: str, timeout: float = 20.0) -> None:
        """Wait until ``text`` appears after what was already matched."""
        want = text.encode()
        deadline = time.monotonic() + timeout
        while want not in self.screen[self._seen :]:
            if not self._read(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"never saw {text!r} on the terminal:\n{self.screen!r}")
        self._seen = self.screen.index(want, self._seen) + len(want)

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        """Exit code and stdout, once the process is done (the rest of the screen read)."""
        while self._read(timeout):
            pass
        code = self.proc.wait(timeout)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read().decode()
        return code, out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*argv: str) -> Terminal:
        opened.append(Terminal(*argv))
        return opened[-1]

    yield start
    for term in opened:
        term.close()


def assert_no_answers(*shown: str | bytes) -> None:
    for text in shown:
        data = text.encode() if isinstance(text, str) else text
        for answer in (PET, CITY, "wrong one", "typo"):
            assert answer.encode() not in data, (answer, data)


def recover(
    terminal: Callable[..., Terminal], sock: str, *answers: str, extra: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    term = terminal("--socket", sock, *extra, "recover", "alice")
    term.expect("2 question(s)")
    term.expect("[1/2] Name of your first pet? ")
    term.type(answers[0])
    term.expect("[2/2] Where were you born? ")
    term.type(answers[1])
    code, out = term.finish()
    assert_no_answers(term.screen, out)
    return code, out, term.screen.decode()


def test_register_and_recover_on_a_terminal(
    ctl: Ctl, sock: str, terminal: Callable[..., Terminal]
) -> None:
    old = ctl("create", "alice")[1].strip()

    term = terminal("--socket", sock, "ritual", "register", "alice")
    term.expect("Number of steps (1-16): ")
    term.type("many")
    term.expect("Please enter a number from 1 to 16.")
    term.expect("Number of steps (1-16): ")
    term.type("2")
    term.expect("Prompt for step 1/2: ")
    term.type("Name of your first pet?")
    term.expect("Answer to step 1 (not shown): ")
    term.type("")
    term.expect("An empty answer is not allowed.")
    term.expect("Answer to step 1 (not shown): ")
    term.type(PET)
    term.expect("Repeat the answer: ")
    term.type("typo")
    term.expect("The two answers differ; please type them again.")
    term.expect("Answer to step 1 (not shown): ")
    term.type(PET)
    term.expect("Repeat the answer: ")
    term.type(PET)
    term.expect("Prompt for step 2/2: ")
    term.type("Where were you born?")
    term.expect("Answer to step 2 (not shown): ")
    term.type(CITY)
    term.expect("Repeat the answer: ")
    term.type(CITY)
    assert term.finish() == (0, "registered a 2-step ritual\n")
    assert_no_answers(term.screen)
    assert b"Name of your first pet?" in term.screen  # the prompt itself did echo

    assert ctl("ritual", "prompts", "alice")[1] == (
        "1. Name of your first pet?\n2. Where were you born?\n"
    )
    status = json.loads(ctl("--json", "ritual", "status", "alice")[1])
    assert status == {
        "user_id": "alice",
        "has_ritual": True,
        "remaining_attempts": 2,
        "locked": False,
    }

    # Wrong answers: exit 1, and one attempt is gone.
    code, out, screen = recover(terminal, sock, PET, "wrong one")
    assert (code, out) == (ExitCode.NO, "")
    assert "recovery failed: the answers were not accepted (1 attempt left)" in screen

    # The right answers (hashed exactly as typed at registration): a new key, printed.
    code, out, _ = recover(terminal, sock, PET, CITY)
    new = out.strip()
    assert code == 0
    assert new.startswith("0x")
    assert new != old
    assert ctl("address", "alice")[1].strip() == new
    assert "recovery" in ctl("history", "alice")[1]

    # Two wrong tries (max_attempts = 2) lock it; the next recover is refused up front.
    code, out, _ = recover(terminal, sock, "wrong one", CITY, extra=("--json",))
    assert code == ExitCode.NO
    assert json.loads(out) == {"user_id": "alice", "recovered": False, "remaining_attempts": 1}
    code, _, screen = recover(terminal, sock, "wrong one", "wrong one")
    assert code == ExitCode.NO
    assert "recovery is now locked" in screen
    term = terminal("--socket", sock, "recover", "alice")
    code, out = term.finish()
    assert (code, out) == (ExitCode.REFUSED, "")
    assert b"walletctl: locked: recovery for user 'alice' is locked" in term.screen
    assert b"[1/2]" not in term.screen  # no answers were asked for

    assert ctl("ritual", "status", "alice")[1].splitlines() == [
        "has_ritual: yes",
        "remaining_attempts: 0",
        "locked: yes",
    ]
    assert ctl("ritual", "reset", "alice")[:2] == (0, "attempts reset: 2 remaining\n")
    assert ctl("ritual", "remove", "alice")[:2] == (0, "removed\n")


def test_register_from_a_file_never_takes_answers(ctl: Ctl, sock: str, tmp_path: Path) -> None:
    ctl("create", "alice")
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"prompt": "Pet?", "expected_response_hash": hash_response(PET)}]))
    assert ctl("ritual", "register", "alice", "--file", str(steps))[:2] == (
        0,
        "registered a 1-step ritual\n",
    )
    with WalletClient(sock) as client:
        assert client.get_prompts("alice") == ["Pet?"]
        assert client.initiate_recovery("alice", [PET])

    # An answer in the file is refused, and not repeated back.
    steps.write_text(json.dumps([{"prompt": "Pet?", "answer": PET}]))
    code, out, err = ctl("ritual", "register", "alice", "--file", str(steps))
    assert (code, out) == (ExitCode.USAGE, "")
    assert "JSON array of {prompt, expected_response_hash}" in err
    assert_no_answers(err)
    steps.write_text(json.dumps([{"prompt": "Pet?", "expected_response_hash": PET}]))
    code, out, err = ctl("ritual", "register", "alice", "--file", str(steps))
    assert (code, out) == (ExitCode.REFUSED, "")
    assert err.startswith("walletctl: invalid_argument: ")
    assert_no_answers(err)


def test_ritual_refusals(ctl: Ctl) -> None:
    # No wallet: refused before anything is asked (stdin is not even read).
    code, out, err = ctl("ritual", "register", "ghost")
    assert (code, out) == (ExitCode.REFUSED, "")
    assert err == "walletctl: not_found: no wallet for user 'ghost'\n"
    ctl("create", "alice")
    for argv in (
        ["recover", "alice"],
        ["ritual", "prompts", "alice"],
        ["ritual", "remove", "alice"],
    ):
        code, out, err = ctl(*argv)
        assert (code, out) == (ExitCode.REFUSED, ""), argv
        assert err.startswith("walletctl: no_ritual: "), argv
    assert ctl("ritual", "status", "alice")[1].splitlines() == [
        "has_ritual: no",
        "remaining_attempts: -",
        "locked: -",
    ]
