"""Unix-socket facts both clients share: which socket to use, and whether walletd hung up.

Neither depends on trio or on blocking I/O, so both transports (and ``walletctl``) use these
two functions as they are. ``wallet_client.client`` re-exports them, where they always were.
"""

from __future__ import annotations

import os
import select

from .calls import DEFAULT_SOCKET

__all__ = ["connection_dropped", "resolve_socket_path"]


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
