"""Lingering close: the last answer to a peer we are turning away reaches it.

After ``frame_too_large`` or an accept-time refusal the daemon used to close at once. A
client still writing its request (Node's ``net.Socket`` does) then got EPIPE on its next write
and dropped the connection, answer unread. So: send the answer, shut down our write side
(the peer reads the answer, then EOF), and read and discard what the peer still sends until
it closes, or for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``, then close.

Lingering sockets are capped (``MAX_LINGERING``): past the cap a refused peer is closed at
once, so a flood of refused connections cannot hold descriptors for seconds each.
"""

from __future__ import annotations

import contextlib
import socket

import trio

LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
MAX_LINGERING = 64
_CHUNK = 1 << 16


class Linger:
    """Counts lingering sockets against the cap."""

    def __init__(self, limit: int = MAX_LINGERING) -> None:
        self.limit = limit
        self.active = 0

    async def close(self, sock: socket.socket, last: bytes = b"") -> None:
        """Send ``last`` (best effort), shut down writing, drain, then return (the caller
        closes ``sock``)."""
        with contextlib.suppress(OSError):
            if last:
                await _send_all(sock, last)
            sock.shutdown(socket.SHUT_WR)
        if self.active >= self.limit:
            return
        self.active += 1
        try:
            await drain(sock)
        finally:
            self.active -= 1


async def _send_all(sock: socket.socket, data: bytes) -> None:
    with trio.move_on_after(LINGER_SECONDS), memoryview(data) as view:
        sent = 0
        while sent < len(view):
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)


async def drain(
    sock: socket.socket, seconds: float = LINGER_SECONDS, limit: int = LINGER_BYTES
) -> int:
    """Read and discard until EOF, ``seconds`` or ``limit`` bytes; how many were read."""
    scratch = bytearray(_CHUNK)
    total = 0
    with trio.move_on_after(seconds), contextlib.suppress(OSError):
        while total < limit:
            await trio.lowlevel.wait_readable(sock)
            try:
                received = sock.recv_into(scratch)
            except BlockingIOError:
                continue
            if not received:
                break
            total += received
    return total
