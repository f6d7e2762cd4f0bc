"""The socket walletd binds itself: modes, directories, stale and live sockets, clean exit."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wallet_client import WalletClient

from .support import ROOT, wait_for_socket

pytestmark = pytest.mark.slow


def start(tmp: Path, sock: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "walletd", "--ephemeral", "--socket", str(sock), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def refused(proc: subprocess.Popen[bytes]) -> str:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert out == b""  # stdout stays empty; the reason goes to stderr
    return err.decode()


@pytest.mark.parametrize(
    ("mode", "group", "dir_mode"),
    [("0600", None, 0o700), ("0660", "0", 0o750)],
)
def test_socket_mode_and_new_parent_directory(
    tmp_path: Path, mode: str, group: str | None, dir_mode: int
) -> None:
    sock = tmp_path / "new" / "walletd.sock"
    extra = ["--socket-mode", mode] + (["--socket-group", group] if group else [])
    proc = start(tmp_path, sock, *extra)
    wait_for_socket(sock, proc=proc)
    assert stat.S_IMODE(sock.stat().st_mode) == int(mode, 8)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == dir_mode
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_existing_directory_is_never_chmodded(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o755)
    sock = parent / "walletd.sock"
    proc = start(tmp_path, sock)
    wait_for_socket(sock, proc=proc)
    assert stat.S_IMODE(parent.stat().st_mode) == 0o755
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not sock.exists()  # SIGINT stops as cleanly as SIGTERM, and removes the socket


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "walletd.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()  # the file stays, nobody listens: what a crashed daemon leaves behind
    proc = start(tmp_path, sock)
    wait_for_socket(sock, proc=proc)
    with WalletClient(sock) as client:
        assert client.hello().protocol == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not sock.exists()


def test_live_socket_means_another_daemon_and_is_left_alone(tmp_path: Path) -> None:
    sock = tmp_path / "walletd.sock"
    first = start(tmp_path, sock)
    wait_for_socket(sock, proc=first)
    with WalletClient(sock) as client:
        client.create_wallet("alice")
    err = refused(start(tmp_path, sock))
    assert "another walletd is already serving" in err
    with WalletClient(sock) as client:  # the first daemon is undisturbed
        assert client.has_wallet("alice")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0


def test_a_file_that_is_not_a_socket_is_not_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "walletd.sock"
    sock.write_text("precious")
    err = refused(start(tmp_path, sock))
    assert "is not a socket" in err
    assert sock.read_text() == "precious"


def test_socket_path_over_the_kernel_limit(tmp_path: Path) -> None:
    sock = tmp_path / ("d" * 60) / ("s" * 60) / "walletd.sock"
    err = refused(start(tmp_path, sock))
    assert "kernel limit is 107" in err
    assert not sock.parent.exists()  # refused before anything was created
