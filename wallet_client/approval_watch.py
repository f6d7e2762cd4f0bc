"""``walletctl approvals watch``: a live terminal view of the signing requests waiting.

The screen is redrawn every ``interval`` seconds and after each key: the requests, oldest
first, each with who asked (uid, pid, executable, unit, command line) and what it would sign
(the daemon's summary), the selected one marked ``>``. Keys:

    j / down   select the next request        k / up   the previous one
    a          approve the selected one (no lease; use ``approvals approve`` for one)
    d          deny it                        q        quit (also Ctrl-C, end of input)

The terminal is put in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still works) and
restored on every way out. A refusal (``forbidden`` when it was your own request, an approval
that expired meanwhile) is shown on the status line; the view goes on.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from typing import TextIO

from walletd_wire.approvals import ApprovalInfo

from .cli_approvals import describe
from .cli_io import UsageError, printable
from .client import WalletClient
from .errors import WalletError
from .exitcodes import ExitCode

__all__ = ["render", "watch"]

CLEAR = "\x1b[H\x1b[2J"
HEADER = "walletd approvals — a approve · d deny · j/k move · q quit"
DENY_REASON = "denied in walletctl approvals watch"


def render(pending: list[ApprovalInfo], selected: int, status: str, now: float) -> str:
    """The whole screen as text (tested on its own)."""
    lines = [HEADER, ""]
    if not pending:
        lines.append("no signing requests are waiting")
    for index, entry in enumerate(pending):
        mark = ">" if index == selected else " "
        block = describe(entry, now)
        lines.append(f"{mark} {block[0]}")
        lines.extend(f"  {line}" for line in block[1:])
        lines.append("")
    lines.extend(["", printable(status)])
    return CLEAR + "\r\n".join(lines) + "\r\n"


def _key(fd: int, timeout: float) -> bytes | None:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    return os.read(fd, 16)


def watch(
    client: WalletClient,
    *,
    interval: float = 1.0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the view until ``q``; the exit code for walletctl."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    fd = stdin.fileno()
    if not os.isatty(fd):
        raise UsageError("approvals watch needs a terminal; use 'approvals list' in scripts")
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    selected, status = 0, "watching"
    try:
        while True:
            pending = client.list_pending()
            selected = max(0, min(selected, len(pending) - 1))
            stdout.write(render(pending, selected, status, time.time()))
            stdout.flush()
            key = _key(fd, interval)
            if key is None:
                continue
            if key in (b"q", b"Q", b"\x04", b""):
                return ExitCode.OK
            if key in (b"j", b"\x1b[B"):
                selected += 1
            elif key in (b"k", b"\x1b[A"):
                selected = max(0, selected - 1)
            elif key in (b"a", b"d") and pending:
                entry = pending[selected]
                try:
                    if key == b"a":
                        client.approve(entry.approval_id)
                        status = f"approved {entry.approval_id}"
                    else:
                        client.deny(entry.approval_id, reason=DENY_REASON)
                        status = f"denied {entry.approval_id}"
                except WalletError as exc:
                    status = f"{entry.approval_id}: {exc.code}: {exc.message}"
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        stdout.write("\r\n")
        stdout.flush()
