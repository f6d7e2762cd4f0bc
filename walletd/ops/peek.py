"""A bounded look at a request map that failed to decode: its id and op, and what is wrong
with its framing (trailing bytes, a duplicate key, a key that is not a string).

The strict decode (msgspec) says *that* a request is bad, not which id to echo: its error
carries no partial result, and a second lenient decode would walk the whole frame again. This
scanner reads the top-level map entry by entry, reading only the values of ``op`` and ``id``
and skipping the others without building them, so that the id is kept whenever it can be read
(before a bad field, after it, with bytes after the map) and the work stays bounded: skipping
gives up after ``MAX_ITEMS`` values or ``MAX_DEPTH`` levels, whichever comes first, and what
was read by then is what the error reports.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "Peek", "peek_request"]

MAX_ITEMS = 1 << 16  # values skipped before giving up: ~20 ms of Python at the very worst
MAX_DEPTH = 64  # nesting skipped before giving up (and reporting "nested too deeply")

# Bytes after the marker before the value (fixed-size types) or its length (sized types).
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED.update({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8})
_FIXED.update({0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17})  # fixext: type byte + data
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin, str: length bytes
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext: length bytes, then a type byte, then the data
_ARRAY = {0xDC: 2, 0xDD: 4}
_MAP = {0xDE: 2, 0xDF: 4}
_UINT = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q"}


class _Stop(Exception):
    """The scan cannot go on: truncated input, an unused marker, or past a bound."""

    def __init__(self, too_deep: bool = False) -> None:
        self.too_deep = too_deep


@dataclass
class Peek:
    """What the scan found. ``request_id`` is None unless a valid id was read."""

    is_map: bool = False
    request_id: int | None = None
    op: str | None = None
    op_is_str: bool = False
    duplicate: str | None = None  # the first top-level key seen twice
    non_string_key: bool = False
    trailing: int = 0  # bytes after the map (only known when the whole map was scanned)
    too_deep: bool = False
    bad_utf8: bool = False  # the op is a str that is not UTF-8


class _Reader:
    __slots__ = ("budget", "data", "pos")

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self.pos = 0
        self.budget = MAX_ITEMS

    def _take(self, size: int) -> bytes | memoryview:
        end = self.pos + size
        if end > len(self.data):
            raise _Stop
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _length(self, size: int) -> int:
        return int.from_bytes(self._take(size), "big")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Stop
        b = self.data[self.pos]
        self.pos += 1
        return b

    def map_header(self, b: int) -> int | None:
        """Entries of the map that starts with marker ``b``, or None if it is not a map."""
        if 0x80 <= b <= 0x8F:
            return b & 0x0F
        if b in _MAP:
            return self._length(_MAP[b])
        return None

    def string(self, b: int) -> bytes | None:
        """The raw bytes of the str that starts with ``b``, or None (nothing consumed)."""
        if 0xA0 <= b <= 0xBF:
            return bytes(self._take(b & 0x1F))
        if b in (0xD9, 0xDA, 0xDB):
            return bytes(self._take(self._length(_SIZED[b])))
        return None

    def uint(self, b: int) -> int | None:
        if b <= 0x7F:
            return b
        if b in _UINT:
            return int(struct.unpack(_UINT[b], self._take(struct.calcsize(_UINT[b])))[0])
        return None

    def skip(self, b: int) -> None:
        """Skip the value that starts with marker ``b`` (already read), iteratively."""
        pending = 1  # values still to skip at the current level, this one included
        stack: list[int] = []
        while True:
            self.budget -= 1
            if self.budget < 0:
                raise _Stop
            children = self._skip_one(b)
            pending -= 1
            if children > self.budget:
                # More values announced than the budget has left: give up now rather than
                # walk them (a list of a million empty maps is refused on its header).
                self.budget = -1
                raise _Stop
            if children:
                if len(stack) >= MAX_DEPTH:
                    raise _Stop(too_deep=True)
                stack.append(pending)
                pending = children
            while pending == 0:
                if not stack:
                    return
                pending = stack.pop()
            b = self.byte()

    def _skip_one(self, b: int) -> int:
        """Consume one value's own bytes; return how many values it contains."""
        if b <= 0x7F or b >= 0xE0:
            return 0
        if b <= 0x8F:
            return 2 * (b & 0x0F)
        if b <= 0x9F:
            return b & 0x0F
        if b <= 0xBF:
            self._take(b & 0x1F)
            return 0
        if b in _FIXED:
            self._take(_FIXED[b])
            return 0
        if b in _SIZED:
            self._take(self._length(_SIZED[b]))
            return 0
        if b in _EXT:
            self._take(self._length(_EXT[b]) + 1)
            return 0
        if b in _ARRAY:
            return self._length(_ARRAY[b])
        if b in _MAP:
            return 2 * self._length(_MAP[b])
        raise _Stop  # 0xC1: never used


def peek_request(payload: bytes | memoryview) -> Peek:
    """Scan ``payload``'s top-level map for ``op`` and ``id`` (see the module docstring)."""
    found = Peek()
    reader = _Reader(payload)
    seen: set[bytes] = set()
    try:
        entries = reader.map_header(reader.byte())
        if entries is None:
            return found
        found.is_map = True
        for _ in range(entries):
            b = reader.byte()
            key = reader.string(b)
            if key is None:
                found.non_string_key = True
                reader.skip(b)
            elif key in seen and found.duplicate is None:
                found.duplicate = key.decode("utf-8", "replace")[:64]
            if key is not None:
                seen.add(key)
            b = reader.byte()
            if key == b"id" and (value := reader.uint(b)) is not None:
                found.request_id = value if value < 2**63 else None
            elif key == b"op" and (op := reader.string(b)) is not None:
                found.op_is_str = True
                try:
                    found.op = op.decode()
                except UnicodeDecodeError:
                    found.bad_utf8 = True
            else:
                reader.skip(b)
        found.trailing = len(payload) - reader.pos
    except _Stop as stop:
        found.too_deep = stop.too_deep
    return found
