"""Which child processes make a test ``slow`` or ``root`` (tests/markers.py)."""

from __future__ import annotations

import sys

import pytest

from .markers import needed_markers

PY = sys.executable


@pytest.mark.parametrize(
    ("argv", "markers"),
    [
        ([PY, "-m", "walletd", "--socket", "s"], {"slow"}),
        ([PY, "-m", "walletd", "check", "--json"], {"slow"}),  # offline tools run walletd too
        (["/opt/walletd/bin/walletd", "--help"], {"slow"}),
        (["systemd-socket-activate", "--listen=s", PY, "-m", "walletd"], {"slow"}),
        ([PY, "tests/run_daemon_as.py", "65534", "65534", "--", "--socket", "s"], {"slow", "root"}),
        ([PY, "tests/run_as.py", "65534", "65534", "tests.children:hello_or_refusal"], {"root"}),
        ([PY, "tests/adversarial/agent.py", "0", "0", "s", "20"], {"root"}),
        (["mount", "-t", "tmpfs", "x", "/mnt"], {"root"}),
        (["unshare", "--mount", PY, "-m", "walletd"], {"slow", "root"}),
        ([PY, "-m", "walletd_wire"], set()),  # a name that merely starts with walletd
        ([str(sys.executable), "-c", "print(1)"], set()),
        (["/usr/bin/walletctl", "create", "alice"], set()),  # the client is not the daemon
    ],
)
def test_needed_markers(argv: list[str], markers: set[str]) -> None:
    assert needed_markers(argv) == markers
