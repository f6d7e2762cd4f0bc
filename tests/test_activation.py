"""Socket activation: walletd serves the listener it is handed and leaves the socket file alone.

End to end with ``systemd-socket-activate`` (from the systemd package), which binds the socket,
waits for the first connection and then execs walletd with ``LISTEN_FDS``/``LISTEN_PID``/
``LISTEN_FDNAMES`` set, as systemd does for walletd.socket. The edge cases of
:func:`walletd.listener.inherited_sockets` run in a child interpreter, where fds 3 and up are
free to be arranged as a manager would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wallet_client import WalletClient

from .support import ROOT, DaemonFactory, json_lines, wait_for_socket, walletd_argv


@pytest.fixture
def socket_activate() -> str:
    path = shutil.which("systemd-socket-activate")
    if path is None:
        pytest.fail("systemd-socket-activate is missing: install the Debian package 'systemd'")
    return path


@pytest.mark.slow
def test_daemon_serves_the_inherited_socket_and_leaves_the_file(
    open_tmp: Path, socket_activate: str
) -> None:
    run = open_tmp / "run"
    run.mkdir()
    sock = run / "walletd.sock"
    # The configured socket is somewhere else: under activation it must not be bound, nor
    # its directory created.
    configured = open_tmp / "configured" / "walletd.sock"
    state = open_tmp / "state"
    log_path = open_tmp / "walletd.log"
    # systemd-socket-activate passes almost no environment: hand over what Python needs.
    passed = [f"-E{name}" for name in ("PATH", "PYTHONPATH", "HOME", "LANG") if name in os.environ]
    command = [
        socket_activate,
        f"--listen={sock}",
        "--fdname=walletd",
        *passed,
        *walletd_argv(configured, state),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        # systemd-socket-activate listens first; this first connection makes it exec walletd.
        wait_for_socket(sock, proc=proc)
        before = os.stat(sock)
        with WalletClient(sock, timeout=20) as client:
            address = client.create_wallet("alice")
            signature = client.sign_message("alice", b"hello")
            assert client.verify_signature("alice", b"hello", signature)
            assert client.get_wallet_address("alice") == address
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)

    # systemd-socket-activate execs walletd: the activated process is the one we started.
    events = json_lines(log_path)
    activation = [e for e in events if e["event"] == "socket_activation"]
    assert activation and activation[0]["fds"] == 1
    ready = next(e for e in events if e["event"] == "ready")
    assert ready["sockets"] == [f"inherited:{sock}"]
    assert events[-1]["event"] == "stopped"

    # The socket file is the manager's: still there, same inode, mode never changed.
    after = os.stat(sock)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not configured.parent.exists()


@pytest.mark.slow
def test_without_activation_walletd_binds_as_usual(daemon: DaemonFactory) -> None:
    # LISTEN_PID names another process (say, a wrapper that forked us): not for us.
    proc = daemon(ephemeral=True, env={"LISTEN_PID": "1", "LISTEN_FDS": "1"}).start()
    with WalletClient(proc.socket_path, timeout=10) as client:
        client.create_wallet("bob")
    assert proc.stop() == 0
    assert not proc.socket_path.exists()  # the one it bound, it removes
    assert "socket_activation" not in [e["event"] for e in proc.log_lines()]


# A child interpreter plays the manager: it puts descriptors at 3, 4, ... and sets LISTEN_*.
CHILD = r"""
import fcntl, json, os, socket, sys, tempfile
from walletd.errors import StartupError
from walletd.server.listener import inherited_sockets

tmp = tempfile.mkdtemp()
results = {}

def listener(i):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(tmp, f"s{i}.sock"))
    s.listen()
    return s

def place(socks):
    # Out of the way first (a new socket may already sit at 3), then down to 3, 4, ...
    high = [fcntl.fcntl(s.detach(), fcntl.F_DUPFD, 100) for s in socks]
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)

def case(name, socks, env):
    place(socks)
    os.environ.update(env)
    try:
        got = inherited_sockets()
        outcome = {"names": [s.getsockname().rsplit("/", 1)[-1] for s in got],
                   "fds": [s.fileno() for s in got],
                   "inheritable": [os.get_inheritable(s.fileno()) for s in got]}
        for s in got:
            s.detach()
    except StartupError as exc:
        outcome = {"error": str(exc)}
    outcome["env_left"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
    results[name] = outcome

me = str(os.getpid())
case("named", [listener(0), listener(1)],
     {"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "other:walletd"})
case("unit_name", [listener(2)],
     {"LISTEN_PID": me, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "walletd.socket"})
case("unnamed", [listener(3)], {"LISTEN_PID": me, "LISTEN_FDS": "1"})
case("no_match", [listener(4)],
     {"LISTEN_PID": me, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "metrics"})
case("other_pid", [listener(5)], {"LISTEN_PID": "1", "LISTEN_FDS": "1"})
case("not_listening", [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)],
     {"LISTEN_PID": me, "LISTEN_FDS": "1"})
case("datagram", [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)],
     {"LISTEN_PID": me, "LISTEN_FDS": "1"})
r, w = os.pipe()
os.dup2(r, 3)
case("not_a_socket", [], {"LISTEN_PID": me, "LISTEN_FDS": "1"})
os.close(3)
case("closed_fd", [], {"LISTEN_PID": me, "LISTEN_FDS": "1"})
case("garbage", [], {"LISTEN_PID": "x", "LISTEN_FDS": "1"})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    outcomes: dict[str, Any] = json.loads(proc.stdout)
    return outcomes


def test_the_fd_named_walletd_is_chosen(cases: dict[str, Any]) -> None:
    assert cases["named"]["names"] == ["s1.sock"]
    assert cases["named"]["fds"] == [4]
    assert cases["named"]["inheritable"] == [False]  # never leaks into a child


def test_the_socket_units_default_name_is_accepted(cases: dict[str, Any]) -> None:
    assert cases["unit_name"]["names"] == ["s2.sock"]


def test_without_names_every_fd_is_served(cases: dict[str, Any]) -> None:
    assert cases["unnamed"]["names"] == ["s3.sock"]


def test_names_without_walletd_are_refused_with_the_fix(cases: dict[str, Any]) -> None:
    assert "FileDescriptorName=walletd" in cases["no_match"]["error"]


def test_variables_for_another_pid_are_ignored(cases: dict[str, Any]) -> None:
    assert cases["other_pid"]["names"] == []


@pytest.mark.parametrize("name", ["not_listening", "datagram", "not_a_socket", "closed_fd"])
def test_a_descriptor_that_is_not_a_listening_stream_socket_is_refused(
    cases: dict[str, Any], name: str
) -> None:
    assert "socket activation: descriptor 3" in cases[name]["error"]


def test_malformed_variables_are_a_startup_error(cases: dict[str, Any]) -> None:
    assert "not numbers" in cases["garbage"]["error"]


def test_the_variables_are_always_removed(cases: dict[str, Any]) -> None:
    assert all(outcome["env_left"] == [] for outcome in cases.values()), cases
