"""Length-prefixed framing, sans-IO.

A frame is a 4-byte unsigned big-endian length ``N`` followed by ``N`` bytes of payload
(MessagePack, see :mod:`wallet_client.protocol`). This module knows nothing about sockets or
trio: callers feed it the bytes they received and get complete payloads back, in the style of
h11 and wsproto. The daemon and both clients use this same code.

An announced length above the limit is rejected as soon as its four prefix bytes arrive, so a
peer can never make us buffer a payload we are going to refuse.
"""

from __future__ import annotations

import struct

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "PREFIX_BYTES",
    "FrameDecoder",
    "FrameTooLargeError",
    "encode_frame",
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


class FrameDecoder:
    """Turns a byte stream into complete frame payloads.

    ``feed(data)`` buffers bytes; ``next_frame()`` returns one payload or ``None`` when no
    complete frame is buffered. After :class:`FrameTooLargeError` the decoder is unusable
    (the stream has lost its framing) and the connection must be closed.
    """

    __slots__ = ("_buffer", "_need", "_start", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._start = 0  # offset of the first unconsumed byte in _buffer
        self._need = -1  # payload length of the frame being read, -1 while reading a prefix

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def in_frame(self) -> bool:
        """True while part of a frame (prefix or payload) is buffered: a frame has started."""
        return self._need >= 0 or len(self._buffer) > self._start

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame, the current frame's prefix included."""
        held = len(self._buffer) - self._start
        return held + PREFIX_BYTES if self._need >= 0 else held

    def next_frame(self) -> bytes | None:
        buffer = self._buffer
        start = self._start
        if self._need < 0:
            if len(buffer) - start < PREFIX_BYTES:
                self._compact()
                return None
            (need,) = _PREFIX.unpack_from(buffer, start)
            if need > self.max_frame_bytes:
                raise FrameTooLargeError(need, self.max_frame_bytes)
            start += PREFIX_BYTES
            self._start = start
            self._need = need
        end = start + self._need
        if len(buffer) < end:
            self._compact()
            return None
        payload = bytes(buffer[start:end])
        self._start = end
        self._need = -1
        return payload

    def frames(self) -> list[bytes]:
        """Every complete frame buffered so far, in order."""
        out: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    def _compact(self) -> None:
        # Drop consumed bytes only when we are about to wait for more input, so that a burst of
        # pipelined frames is sliced without copying the buffer once per frame.
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
