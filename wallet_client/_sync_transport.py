"""The blocking client's transport: the same names as :mod:`wallet_client._trio_transport`.

That module describes the contract; this one meets it with a plain :mod:`socket`. The code
that uses it, :mod:`wallet_client.client`, is generated from :mod:`wallet_client.aio`.

Here a call's timeout is the socket's: set once when connecting, it bounds the connect and
then each send and each receive on its own, so :func:`deadline` has nothing left to do.
"""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Final

__all__ = [
    "CANCELLED",
    "LOST",
    "SEND_BROKEN",
    "TIMED_OUT",
    "ClosedByPeer",
    "Connection",
    "Lock",
    "checkpoint",
    "deadline",
]

_RECV_BYTES = 1 << 16

# TimeoutError is an OSError: the client tests TIMED_OUT before LOST.
TIMED_OUT: Final[tuple[type[BaseException], ...]] = (TimeoutError,)
SEND_BROKEN: Final[tuple[type[BaseException], ...]] = (BrokenPipeError, ConnectionResetError)
LOST: Final[tuple[type[BaseException], ...]] = (OSError,)
# Blocking code has no cancellation of its own to clean up after.
CANCELLED: Final[tuple[type[BaseException], ...]] = ()

ClosedByPeer = ConnectionResetError


def deadline(timeout: float | None) -> AbstractContextManager[None]:
    """Nothing: the socket's timeout (see :meth:`Connection.open`) already bounds each step."""
    del timeout
    return nullcontext()


def checkpoint() -> None:
    """Nothing: blocking code has no scheduler to let in."""


class Lock:
    """No lock: the blocking client is one request at a time, from one thread at a time.

    That is its documented contract, and it never took a lock: sharing one client between
    threads would be a new promise, not something the generated code should make in passing.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class Connection:
    """One connected walletd socket, blocking, with the client's timeout on every operation."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def open(cls, path: str, timeout: float | None) -> Connection:
        """Connect to ``path``, waiting at most ``timeout`` seconds (None: no limit)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def fileno(self) -> int:
        return self._sock.fileno()

    def send_all(self, data: bytes) -> None:
        self._sock.sendall(data)

    def receive_some(self) -> bytes:
        """Up to 64 KiB, as soon as any arrive; ``b""`` when the daemon has closed."""
        return self._sock.recv(_RECV_BYTES)

    def close(self) -> None:
        self._sock.close()
