"""Process hardening, as ssh-agent does it: no core dumps, non-dumpable, not ptrace-able.

The daemon runs as ``nobody`` here (started by tests/run_daemon_as.py, which marks the process
dumpable again after the uid change so that only walletd's own hardening is being tested), and
a second ``nobody`` process tries to ptrace-attach to it. A control run shows that the same
attach succeeds against a dumpable ``nobody`` process, so the test can tell the difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import process_children
from .support import NOBODY, call_as_nobody, wait_for_socket

pytestmark = [pytest.mark.slow, pytest.mark.root]

LAUNCHER = Path(__file__).resolve().parent / "run_daemon_as.py"


def _owner(path: str) -> int:
    return os.stat(path).st_uid


@pytest.fixture
def daemon_as_nobody(open_tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    sock = open_tmp / "walletd.sock"
    open_tmp.chmod(0o777)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(LAUNCHER),
            str(NOBODY.pw_uid),
            str(NOBODY.pw_gid),
            "--",
            "--ephemeral",
            "--socket",
            str(sock),
            "--socket-mode",
            "0666",
        ],
        stderr=subprocess.DEVNULL,
    )
    wait_for_socket(sock, proc=proc)
    yield proc
    proc.terminate()
    assert proc.wait(20) == 0


@pytest.fixture
def dumpable_nobody() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), str(NOBODY.pw_uid), str(NOBODY.pw_gid), "--idle"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(20)


def test_core_dumps_disabled(daemon_as_nobody: subprocess.Popen[bytes]) -> None:
    limits = Path(f"/proc/{daemon_as_nobody.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"], line  # soft and hard limits both 0


def test_daemon_is_not_dumpable(daemon_as_nobody: subprocess.Popen[bytes]) -> None:
    pid = daemon_as_nobody.pid
    assert _owner(f"/proc/{pid}") == NOBODY.pw_uid  # it really runs as nobody
    # A non-dumpable process's /proc/<pid>/ entries belong to root.
    assert _owner(f"/proc/{pid}/status") == 0
    assert _owner(f"/proc/{pid}/environ") == 0


def test_same_uid_cannot_ptrace_the_daemon(daemon_as_nobody: subprocess.Popen[bytes]) -> None:
    result = call_as_nobody(process_children.ptrace_attach, str(daemon_as_nobody.pid))
    assert result == {"attached": False, "errno": 1}  # EPERM


def test_control_same_uid_can_ptrace_a_dumpable_process(
    dumpable_nobody: subprocess.Popen[str],
) -> None:
    assert _owner(f"/proc/{dumpable_nobody.pid}/status") == NOBODY.pw_uid
    result = call_as_nobody(process_children.ptrace_attach, str(dumpable_nobody.pid))
    assert result["attached"] is True
