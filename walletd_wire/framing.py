"""Length-prefixed framing, sans-IO.

A frame is a 4-byte unsigned big-endian length ``N`` followed by ``N`` bytes of payload
(MessagePack, see :mod:`walletd_wire.requests`). This module knows nothing about sockets or
trio: callers feed it the bytes they received and get complete payloads back, in the style of
h11 and wsproto. The daemon and both clients use this same code.

An announced length above the limit is rejected as soon as its four prefix bytes arrive, so a
peer can never make us buffer a payload we are going to refuse.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PREFIX_BYTES",
    "FrameDecoder",
    "FrameTooLargeError",
    "encode_frame",
    "encode_frame_into",
]

PREFIX_BYTES = 4
DEFAULT_MAX_FRAME_BYTES = 1 << 20
_PREFIX = struct.Struct(">I")


class FrameTooLargeError(Exception):
    """The peer announced a frame longer than the limit; the stream cannot be resynchronised."""

    def __init__(self, announced: int, limit: int) -> None:
        super().__init__(f"frame of {announced} bytes exceeds the limit of {limit} bytes")
        self.announced = announced
        self.limit = limit


def encode_frame(payload: bytes) -> bytes:
    """Return ``payload`` with its length prefix."""
    return _PREFIX.pack(len(payload)) + payload


def encode_frame_into(
    encode_into: Callable[[Any, bytearray, int], None], message: Any, out: bytearray
) -> None:
    """Append ``message``, encoded by ``encode_into`` and framed, to ``out`` without a copy.

    ``encode_into`` is a msgspec encoder's ``encode_into``: the payload is written straight
    after a placeholder prefix, which is then filled in. The daemon frames every response of a
    pipelined read into one buffer this way and sends them with one system call.
    """
    start = len(out)
    out += b"\0\0\0\0"
    encode_into(message, out, start + PREFIX_BYTES)
    _PREFIX.pack_into(out, start, len(out) - start - PREFIX_BYTES)


class FrameDecoder:
    """Turns a byte stream into complete frame payloads.

    Bytes go in either with ``feed(data)`` or, without a copy, by receiving straight into
    ``recv_buffer()`` and then calling ``received(n)``. ``next_frame()`` returns one payload as
    ``bytes``; ``next_view()`` returns it as a memoryview into the buffer, valid until the next
    ``feed``/``recv_buffer`` (the daemon decodes it in place). Both return ``None`` when no
    complete frame is buffered. After :class:`FrameTooLargeError` the decoder is unusable (the
    stream has lost its framing) and the connection must be closed.

    The buffer grows to hold the largest frame seen and shrinks back once it is empty, so a
    connection that once sent a 1 MiB frame does not keep 1 MiB for the rest of its life.
    """

    __slots__ = ("_buffer", "_end", "_initial", "_start", "_view", "max_frame_bytes", "oversized")

    def __init__(
        self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, initial_bytes: int = 1 << 16
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._initial = initial_bytes
        self._buffer = bytearray(initial_bytes)
        self._view = memoryview(self._buffer)
        self._start = 0  # first unconsumed byte
        self._end = 0  # one past the last received byte
        self.oversized: FrameTooLargeError | None = None  # set by complete_views

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self.recv_buffer(size)[:size] = data
        self._end += size

    def recv_buffer(self, at_least: int = 1) -> memoryview:
        """Writable space for at least ``at_least`` more bytes; then call ``received(n)``."""
        if self._start == self._end:
            # The common case between requests: everything consumed, start over at the front.
            self._start = self._end = 0
            if len(self._buffer) > self._initial:
                self._resize(self._initial)
            if at_least <= len(self._buffer):
                return self._view
        pending = self._end - self._start
        need = max(at_least, self._frame_bytes() - pending)
        if len(self._buffer) - self._end < need:
            self._resize(max(self._initial, pending + need))
        return self._view[self._end :]

    def received(self, size: int) -> None:
        self._end += size

    def _frame_bytes(self) -> int:
        """The size (prefix included) of the frame at the front, once its prefix is here."""
        if self._end - self._start < PREFIX_BYTES:
            return PREFIX_BYTES
        size: int = _PREFIX.unpack_from(self._buffer, self._start)[0]
        return PREFIX_BYTES + min(size, self.max_frame_bytes)

    def _resize(self, capacity: int) -> None:
        # Move the unconsumed bytes to the front of a buffer of ``capacity`` (a new one when the
        # size changes). Views handed out earlier keep the old buffer alive; they are stale by
        # contract anyway.
        pending = bytes(self._view[self._start : self._end])
        if capacity != len(self._buffer):
            self._view.release()
            self._buffer = bytearray(max(capacity, len(pending)))
            self._view = memoryview(self._buffer)
        self._buffer[: len(pending)] = pending
        self._start, self._end = 0, len(pending)

    @property
    def in_frame(self) -> bool:
        """True while part of a frame (prefix or payload) is buffered: a frame has started."""
        return self._end > self._start

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame, the current frame's prefix included."""
        return self._end - self._start

    def next_view(self) -> memoryview | None:
        start = self._start
        if self._end - start < PREFIX_BYTES:
            return None
        (size,) = _PREFIX.unpack_from(self._buffer, start)
        if size > self.max_frame_bytes:
            raise FrameTooLargeError(size, self.max_frame_bytes)
        stop = start + PREFIX_BYTES + size
        if stop > self._end:
            return None
        self._start = stop
        return self._view[start + PREFIX_BYTES : stop]

    def complete_views(self) -> list[memoryview]:
        """Every complete frame buffered, as views (see ``next_view``), in order.

        Stops before an oversized prefix, so that the frames before it can still be answered,
        and records it in ``oversized`` (the stream cannot go on after it).
        """
        views: list[memoryview] = []
        buffer, view, end, limit = self._buffer, self._view, self._end, self.max_frame_bytes
        start = self._start
        unpack_from = _PREFIX.unpack_from
        while end - start >= PREFIX_BYTES:
            (size,) = unpack_from(buffer, start)
            if size > limit:
                self.oversized = FrameTooLargeError(size, limit)
                break
            stop = start + PREFIX_BYTES + size
            if stop > end:
                break
            views.append(view[start + PREFIX_BYTES : stop])
            start = stop
        self._start = start
        return views

    def next_frame(self) -> bytes | None:
        view = self.next_view()
        return None if view is None else bytes(view)

    def frames(self) -> list[bytes]:
        """Every complete frame buffered so far, in order."""
        out: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out
