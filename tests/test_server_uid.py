"""The client checks who serves the socket before sending (issue 12, item 14).

A listener run by ``nobody`` stands in for a socket another uid put in walletd's place. On
main before this change ``WalletClient`` had no ``expect_uid`` and sent its request to any
listener: ``test_a_socket_of_another_uid_is_refused_before_sending`` failed then.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import (
    AsyncWalletClient,
    DaemonUnavailableError,
    PermissionDeniedError,
    WalletClient,
)
from wallet_client._unix import server_uid
from wallet_client.calls import DEFAULT_SOCKET
from wallet_client.cli_peer import expected_server_uid

from . import process_children
from .support import NOBODY, MakeConfig, StartServer, call_as_nobody, wait_for_socket


def nobodys_socket(open_tmp: Path) -> Path:
    """A socket path in a directory nobody may create it in."""
    directory = open_tmp / "nobodys"
    directory.mkdir()
    os.chown(directory, NOBODY.pw_uid, NOBODY.pw_gid)
    return directory / "walletd.sock"


class FakeServer:
    """A listener of uid nobody at ``path``, run in a thread of this test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[Any] = []
        self._thread = threading.Thread(
            target=lambda: self.received.append(
                call_as_nobody(process_children.bytes_sent_to_a_stand_in, str(path))
            )
        )

    def __enter__(self) -> FakeServer:
        self._thread.start()
        wait_for_socket(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(30)


@pytest.mark.root
def test_a_socket_of_another_uid_is_refused_before_sending(open_tmp: Path) -> None:
    with FakeServer(nobodys_socket(open_tmp)) as fake:
        client = WalletClient(fake.path, timeout=10, expect_uid=os.getuid() + 12345)
        with pytest.raises(PermissionDeniedError) as info:
            client.hello()
        client.close()
    assert info.value.code == "unexpected_server_uid"
    assert f"uid {NOBODY.pw_uid}" in info.value.message and "nothing was sent" in info.value.message
    assert fake.received == [0]  # the fake server saw no byte


@pytest.mark.root
def test_the_expected_uid_is_let_through(open_tmp: Path) -> None:
    with FakeServer(nobodys_socket(open_tmp)) as fake:
        client = WalletClient(fake.path, timeout=10, expect_uid=NOBODY.pw_uid)
        with pytest.raises(DaemonUnavailableError):
            client.hello()  # sent; the fake server hangs up without answering
        client.close()
    assert fake.received[0] > 0


async def test_root_and_the_expected_uid_serve(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True))
    sock = str(server.config.socket)
    # The in-process daemon runs as this test's uid (root here: always accepted).
    async with AsyncWalletClient(sock, timeout=10, expect_uid=os.getuid()) as c:
        assert (await c.hello()).protocol == 1

    def serving_uid() -> int:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(sock)
            return server_uid(probe.fileno())

    assert await trio.to_thread.run_sync(serving_uid) == os.getuid()


def test_walletctl_expects_the_walletd_user_for_the_system_socket() -> None:
    assert expected_server_uid(1234, "/anywhere.sock") == 1234
    assert expected_server_uid(None, "/tmp/dev/walletd.sock") is None
    try:
        import pwd

        walletd_uid: int | None = pwd.getpwnam("walletd").pw_uid
    except KeyError:
        walletd_uid = None
    assert expected_server_uid(None, DEFAULT_SOCKET) == walletd_uid


def test_cannot_connect_hints_at_walletd_socket(tmp_path: Path) -> None:
    with WalletClient(tmp_path / "missing.sock", timeout=5) as client:
        with pytest.raises(DaemonUnavailableError, match=r"\$WALLETD_SOCKET"):
            client.hello()
