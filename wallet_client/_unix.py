"""Unix-socket facts both clients share: which socket to use, and whether walletd hung up.

Neither depends on trio or on blocking I/O, so both transports (and ``walletctl``) use these
two functions as they are. ``wallet_client.client`` re-exports them, where they always were.
"""

from __future__ import annotations

import os
import select
import socket
import struct

from .calls import DEFAULT_SOCKET
from .errors import PermissionDeniedError

__all__ = ["check_server_uid", "connection_dropped", "resolve_socket_path", "server_uid"]

#: The client-side code of a refused server: no wire error, since nothing was sent.
UNEXPECTED_SERVER = "unexpected_server_uid"
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def connection_dropped(fd: int) -> bool:
    """True when walletd has closed (or reset) an idle connection.

    walletd never speaks unprompted and every answer is read before a call returns, so an idle
    connection that polls readable has reached end-of-file or an error.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def resolve_socket_path(socket_path: str | os.PathLike[str] | None) -> str:
    """The argument, else ``$WALLETD_SOCKET``, else the system socket."""
    if socket_path is not None:
        return os.fspath(socket_path)
    return os.environ.get("WALLETD_SOCKET") or DEFAULT_SOCKET


def server_uid(fd: int) -> int:
    """The uid of the process that listens on the other end of connected Unix socket ``fd``.

    The kernel records it when the server called listen() (SO_PEERCRED), so a process cannot
    claim another uid's; under systemd socket activation it is pid 1's uid, 0.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(fd)) as sock:
        _pid, uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
    return int(uid)


def check_server_uid(fd: int, expect_uid: int, path: str) -> None:
    """PermissionDeniedError unless ``fd``'s server runs as ``expect_uid`` or as root.

    Called after connecting and before anything is sent, so a socket put in walletd's place
    by another uid (a stale path, a writable directory, a wrong $WALLETD_SOCKET) never sees a
    message to sign or a ritual answer. Root is always accepted: it can read every key anyway,
    and with socket activation the listener is systemd's.
    """
    uid = server_uid(fd)
    if uid not in (expect_uid, 0):
        raise PermissionDeniedError(
            f"the socket {path} is served by uid {uid}, not walletd's uid {expect_uid}; "
            "nothing was sent",
            code=UNEXPECTED_SERVER,
        )
