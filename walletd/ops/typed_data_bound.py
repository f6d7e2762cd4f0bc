"""A bounded pre-scan of ``sign_typed_data`` frames, before msgspec builds the document.

``typed_data`` is decoded as ``dict[str, Any]`` below its top level (a spelled-out bounded type
would grow as 2**depth over EIP-712's 16 levels; see walletd_wire/requests.py), so msgspec
would build whatever a frame holds before walletd_wire.eip712 could count it: a 1 MiB frame of
a million empty maps cost ~156 ms of event-loop time, during which no other uid is answered
(issue 12, item 8).

So a frame that may be a ``sign_typed_data`` request (its bytes contain the op's name: a
request for it must, whichever MessagePack string form spells it) is first walked by a bounded
scanner, which builds nothing and gives up after :data:`MAX_VALUES` values or :data:`MAX_DEPTH`
levels (at once when one header announces more than the budget left). Only a frame within both
is decoded.

Walking the whole budget still costs ~7 ms of Python (44,800 values in small lists), and four
connections of one uid sending such frames back to back raised another uid's sign p50 from
0.2 to ~20 ms. So the daemon runs the scan as a coroutine (:func:`scan_typed_data_frame`) that
yields to the event loop every :data:`CHUNK` values: the cost is the same, but other
connections are answered between the chunks instead of after the scan.

The bounds are those of the largest document eip712 accepts, with room: its ``types`` hold at
most 64 x 64 field definitions (5 MessagePack values each: the map, two keys, two strings),
its ``domain`` and ``message`` at most 8192 values (a struct field is two: key and value), and
it nests 16 levels below ``message``, which is itself two levels below the request map. Every
other frame costs one substring search (a few hundred nanoseconds for a signing request).
"""

from __future__ import annotations

import re
from collections.abc import Generator

import trio

from walletd.ops.peek import _ARRAY, _EXT, _FIXED, _MAP, _SIZED
from walletd_wire import eip712, eip712_types

__all__ = [
    "CHUNK",
    "MAX_DEPTH",
    "MAX_VALUES",
    "Refusal",
    "check_typed_data_frame",
    "may_carry_typed_data",
    "scan_typed_data_frame",
]

#: Values a sign_typed_data frame may hold in all (keys, values and containers alike).
MAX_VALUES = (
    eip712_types.MAX_TYPES * eip712_types.MAX_FIELDS_PER_TYPE * 5
    + 2 * eip712.MAX_VALUES
    + 4096  # the request's own fields, the top-level keys, type names: slack
)
#: Levels of maps and lists: the request map, ``typed_data``, then the document's own nesting.
MAX_DEPTH = 2 + eip712_types.MAX_DEPTH
#: Values scanned between two yields to the event loop (~0.1 ms of Python).
CHUNK = 512

# Any spelling of the op name contains these bytes (fixstr, str8, str16 or str32 header
# before them), so a frame without them cannot decode as a sign_typed_data request.
_OP_NAME = re.compile(re.escape(b"sign_typed_data"))

_TOO_MANY = (
    f"invalid request: a sign_typed_data request holds at most {MAX_VALUES} MessagePack values"
)
_TOO_DEEP = f"invalid request: typed_data is nested more than {MAX_DEPTH - 2} levels deep"


class Refusal:
    """Why a frame was refused before its decode, and the request id read on the way."""

    __slots__ = ("message", "request_id")

    def __init__(self, request_id: int | None, message: str) -> None:
        self.request_id = request_id
        self.message = message


class _Malformed(Exception):
    """Not MessagePack as far as the scan can tell: the strict decode will say how."""


#: The daemon does not scan frames up to this size (walletd.ops.dispatch): MessagePack
#: spends at least a byte per value, so such a frame holds at most this many values, whose
#: full decode is bounded (~1 ms at the measured 0.22 µs a value) and whose document
#: walletd_wire.eip712 then bounds by its own limits. The common frame (a sign request of a
#: few hundred bytes) is answered without a regex search (~0.1 µs of ~2.5 µs in-process).
SCAN_ABOVE_BYTES = 4096


def may_carry_typed_data(payload: bytes | memoryview) -> bool:
    """Whether ``payload`` could decode as a sign_typed_data request (one substring search)."""
    return _OP_NAME.search(payload) is not None


def check_typed_data_frame(payload: bytes | memoryview) -> Refusal | None:
    """A Refusal if ``payload`` may be a sign_typed_data request and holds more values or
    levels than any acceptable one; None otherwise (including for frames the strict decoder
    will refuse anyway: truncated, not a map, not MessagePack). Runs to the end at once."""
    if not may_carry_typed_data(payload):
        return None
    steps = _scan(payload)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: Refusal | None = done.value
            return result


async def scan_typed_data_frame(payload: bytes | memoryview) -> Refusal | None:
    """:func:`check_typed_data_frame`, yielding to the event loop every CHUNK values. The
    caller must keep ``payload`` unchanged until it returns."""
    steps = _scan(payload)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: Refusal | None = done.value
            return result
        await trio.lowlevel.checkpoint()


def _scan(payload: bytes | memoryview) -> Generator[None, None, Refusal | None]:
    """The top-level map entry by entry (reading ``id``), each value skipped by _skip under
    one shared budget; yields every CHUNK values."""
    data = payload
    budget = [MAX_VALUES]
    request_id: int | None = None
    try:
        pos, entries = _map_header(data, 0)
        if entries is None:
            return None
        for _ in range(entries):
            key, pos = _key(data, pos)
            if key is None:
                pos = yield from _skip(data, pos, budget, MAX_DEPTH - 1)
            if key == b"id" and pos < len(data) and data[pos] <= 0x7F:
                request_id = data[pos]
                pos += 1
            elif key == b"id" and pos < len(data) and data[pos] in (0xCC, 0xCD, 0xCE, 0xCF):
                size = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[data[pos]]
                value = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
                request_id = value if value < 2**63 else None
                pos += 1 + size
            else:
                pos = yield from _skip(data, pos, budget, MAX_DEPTH - 1)
    except _TooMany:
        return Refusal(request_id, _TOO_MANY)
    except _TooDeep:
        return Refusal(request_id, _TOO_DEEP)
    except (_Malformed, IndexError):
        return None
    return None


class _TooMany(Exception):
    pass


class _TooDeep(Exception):
    pass


def _map_header(data: bytes | memoryview, pos: int) -> tuple[int, int | None]:
    if pos >= len(data):
        raise _Malformed
    b = data[pos]
    if 0x80 <= b <= 0x8F:
        return pos + 1, b & 0x0F
    if b in _MAP:
        size = _MAP[b]
        return pos + 1 + size, int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    return pos, None


def _key(data: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    """The key at ``pos`` if it is a str (and the position after it), else (None, pos)."""
    b = data[pos]
    if 0xA0 <= b <= 0xBF:
        end = pos + 1 + (b & 0x1F)
        return bytes(data[pos + 1 : end]), end
    if b in (0xD9, 0xDA, 0xDB):
        size = _SIZED[b]
        length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
        start = pos + 1 + size
        return bytes(data[start : start + length]), start + length
    return None, pos


def _skip(
    data: bytes | memoryview, pos: int, budget: list[int], max_depth: int
) -> Generator[None, None, int]:
    """Skip the value at ``pos`` (at most ``max_depth`` containers deep), charging each value
    to ``budget[0]``; returns the position after it. A tight loop of locals: this is the part
    whose cost a hostile frame chooses."""
    n = len(data)
    left = budget[0]
    pending = 1
    stack: list[int] = []
    until_yield = CHUNK
    while True:
        left -= 1
        if left < 0:
            raise _TooMany
        if pos >= n:
            raise _Malformed
        until_yield -= 1
        if not until_yield:
            budget[0] = left
            yield
            until_yield = CHUNK
        b = data[pos]
        pos += 1
        children = 0
        if b <= 0x7F or b >= 0xE0:
            pass
        elif b <= 0x8F:
            children = (b & 0x0F) << 1
        elif b <= 0x9F:
            children = b & 0x0F
        elif b <= 0xBF:
            pos += b & 0x1F
        elif b in _FIXED:
            pos += _FIXED[b]
        elif b in _SIZED:
            size = _SIZED[b]
            pos += size + int.from_bytes(data[pos : pos + size], "big")
        elif b in _EXT:
            size = _EXT[b]
            pos += size + 1 + int.from_bytes(data[pos : pos + size], "big")
        elif b in _ARRAY:
            size = _ARRAY[b]
            children = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif b in _MAP:
            size = _MAP[b]
            children = 2 * int.from_bytes(data[pos : pos + size], "big")
            pos += size
        else:
            raise _Malformed  # 0xC1: never used
        pending -= 1
        if children:
            if children > left:
                raise _TooMany  # announced more than the budget left: refused on the header
            if len(stack) >= max_depth:
                raise _TooDeep
            stack.append(pending)
            pending = children
        while not pending:
            if not stack:
                budget[0] = left
                return pos
            pending = stack.pop()
