"""A bounded pre-scan of ``sign_typed_data`` frames, before msgspec builds the document.

``typed_data`` is decoded as ``dict[str, Any]`` below its top level (a spelled-out bounded type
would grow as 2**depth over EIP-712's 16 levels; see walletd_wire/requests.py), so msgspec
would build whatever a frame holds before walletd_wire.eip712 could count it: a 1 MiB frame of
a million empty maps cost ~156 ms of event-loop time, during which no other uid is answered
(issue 12, item 8).

So a frame that may be a ``sign_typed_data`` request (its bytes contain the op's name: a
request for it must, whichever MessagePack string form spells it) is first walked by the
bounded scanner of :mod:`walletd.ops.peek`, which builds nothing and gives up after
:data:`MAX_VALUES` values or :data:`MAX_DEPTH` levels. Only a frame within both is decoded.

The bounds are those of the largest document eip712 accepts, with room: its ``types`` hold at
most 64 x 64 field definitions (5 MessagePack values each: the map, two keys, two strings),
its ``domain`` and ``message`` at most 8192 values (a struct field is two: key and value), and
it nests 16 levels below ``message``, which is itself two levels below the request map. Every
other frame costs one substring search (a few hundred nanoseconds for a signing request).
"""

from __future__ import annotations

import re

from walletd.ops.peek import _Reader, _Stop  # the one scanner; this is its second user
from walletd_wire import eip712, eip712_types

__all__ = ["MAX_DEPTH", "MAX_VALUES", "Refusal", "check_typed_data_frame"]

#: Values a sign_typed_data frame may hold in all (keys, values and containers alike).
MAX_VALUES = (
    eip712_types.MAX_TYPES * eip712_types.MAX_FIELDS_PER_TYPE * 5
    + 2 * eip712.MAX_VALUES
    + 4096  # the request's own fields, the top-level keys, type names: slack
)
#: Levels of maps and lists: the request map, ``typed_data``, then the document's own nesting.
MAX_DEPTH = 2 + eip712_types.MAX_DEPTH

# Any spelling of the op name contains these bytes (fixstr, str8, str16 or str32 header
# before them), so a frame without them cannot decode as a sign_typed_data request.
_OP_NAME = re.compile(re.escape(b"sign_typed_data"))


class Refusal:
    """Why a frame was refused before its decode, and the request id read on the way."""

    __slots__ = ("message", "request_id")

    def __init__(self, request_id: int | None, message: str) -> None:
        self.request_id = request_id
        self.message = message


def check_typed_data_frame(payload: bytes | memoryview) -> Refusal | None:
    """A Refusal if ``payload`` may be a sign_typed_data request and holds more values or
    levels than any acceptable one; None otherwise (including for frames the strict decoder
    will refuse anyway: truncated, not a map, not MessagePack)."""
    if _OP_NAME.search(payload) is None:
        return None
    reader = _Reader(payload)
    reader.budget = MAX_VALUES
    request_id: int | None = None
    try:
        entries = reader.map_header(reader.byte())
        if entries is None:
            return None
        for _ in range(entries):
            b = reader.byte()
            key = reader.string(b)
            if key is None:
                reader.skip(b, MAX_DEPTH - 1)
            b = reader.byte()
            if key == b"id" and (value := reader.uint(b)) is not None:
                request_id = value if value < 2**63 else None
            else:
                reader.skip(b, MAX_DEPTH - 1)  # below the request map: one level used
    except _Stop as stop:
        if stop.too_deep:
            return Refusal(
                request_id,
                f"invalid request: typed_data is nested more than {MAX_DEPTH - 2} levels deep",
            )
        if reader.budget < 0:
            return Refusal(
                request_id,
                f"invalid request: a sign_typed_data request holds at most {MAX_VALUES} "
                "MessagePack values",
            )
        return None  # malformed: the strict decode says how
    return None
