"""The trio client's transport: everything about the socket that is not the same in both clients.

:mod:`wallet_client.aio` is written against the names below, and ``scripts/unasync.py`` makes
the blocking client by pointing the same code at :mod:`wallet_client._sync_transport`, which
defines the same names for plain blocking sockets. So the two modules are one contract:

``Connection``
    One connected walletd socket: ``open(path, timeout)`` (raises :class:`OSError` when it
    cannot connect), ``fileno()``, ``send_all(data)``, ``receive_some()`` (``b""`` at
    end-of-file) and ``close()`` (synchronous: it must work while a call is being cancelled).
``deadline(timeout)``
    The context manager a whole call runs in; leaving it by a timeout raises ``TIMED_OUT``.
``Lock``
    Gives concurrent callers turns on the one connection.
``checkpoint()``
    Where ``aclose()`` lets the scheduler in.
``TIMED_OUT``, ``SEND_BROKEN``, ``LOST``, ``CANCELLED``
    What this flavour raises when a call ran out of time, when the daemon hung up while a
    request was being sent, when the connection was lost any other way, and when the caller
    abandoned the call (after which a late answer must not be read as the next call's).
``ClosedByPeer``
    The error to raise when the daemon closed the connection before answering; one of
    ``LOST``, so it is reported like any lost connection.

Here a call's timeout is one trio deadline over the whole call (connecting included), because
trio's streams take no per-operation timeout.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Final

import trio
from trio.lowlevel import checkpoint

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

TIMED_OUT: Final[tuple[type[BaseException], ...]] = (trio.TooSlowError,)
SEND_BROKEN: Final[tuple[type[BaseException], ...]] = (trio.BrokenResourceError,)
# trio's SocketStream already turns OSError into the two stream errors; OSError itself comes
# from connecting and from the idle-connection poll.
LOST: Final[tuple[type[BaseException], ...]] = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)
CANCELLED: Final[tuple[type[BaseException], ...]] = (trio.Cancelled,)

ClosedByPeer = trio.BrokenResourceError
Lock = trio.Lock


def deadline(timeout: float | None) -> AbstractContextManager[trio.CancelScope]:
    """A deadline ``timeout`` seconds from now over everything inside; None waits forever."""
    return trio.fail_after(math.inf if timeout is None else timeout)


class Connection:
    """One connected walletd socket, as a trio stream."""

    __slots__ = ("_stream",)

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream

    @classmethod
    async def open(cls, path: str, timeout: float | None) -> Connection:
        """Connect to ``path``. ``timeout`` is unused: the call's :func:`deadline` bounds it."""
        del timeout
        return cls(await trio.open_unix_socket(path))

    def fileno(self) -> int:
        return self._stream.socket.fileno()

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def receive_some(self) -> bytes:
        """Up to 64 KiB, as soon as any arrive; ``b""`` when the daemon has closed."""
        return await self._stream.receive_some(_RECV_BYTES)

    def close(self) -> None:
        # The socket's own close is synchronous, so this works while being cancelled, where
        # the stream's aclose() would not run.
        self._stream.socket.close()
