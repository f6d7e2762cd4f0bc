"""Hypothesis strategies for hostile frames, and the oracle that says what walletd must answer.

A case is a byte stream: zero or more frames (random bytes, random MessagePack trees, valid
requests with mutated fields, invalid UTF-8, payloads at exactly the size limit and one over),
possibly followed by a huge announced length or a truncated frame. What the daemon must do
with it follows from the sans-IO decoder itself (:func:`expected`): one response per complete
frame, in order; ``frame_too_large`` and a close at an oversized prefix; nothing for a
truncated tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import strategies as st

import walletd_wire as wire
from walletd_wire.framing import FrameDecoder, FrameTooLargeError, encode_frame

from ..support import length_prefix as prefix

#: Error codes walletd may answer a hostile frame with; ``internal`` is a bug, never expected.
ALLOWED_CODES = frozenset(str(c) for c in wire.ErrorCode) - {"internal"}

INT64_MIN, UINT64_MAX = -(2**63), 2**64 - 1
BAD_UTF8_MARK = "@@BAD_UTF8@@"  # replaced, byte for byte, by invalid UTF-8 after encoding
BAD_UTF8_BYTES = b"\xff\xfe\xc0\xaf\xed\xa0\x80\x80\xf8\x88\x80\x80"
assert len(BAD_UTF8_MARK.encode()) == len(BAD_UTF8_BYTES)

HEX = "0123456789abcdef"


def field_values(targets: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Well-typed (mostly valid) values for each request field, by name."""
    users = st.sampled_from(targets) | st.text(max_size=12)
    sha = st.text(HEX, min_size=64, max_size=64)
    return {
        "id": st.integers(0, 2**63 - 1),
        "user_id": users,
        "message": st.binary(max_size=64),
        "signature": st.binary(min_size=32, max_size=32) | st.binary(max_size=40),
        "messages": st.lists(st.binary(max_size=16), max_size=5),
        "items": st.lists(
            st.fixed_dictionaries({"message": st.binary(max_size=8), "signature": st.binary()}),
            max_size=3,
        ),
        "reason": st.text(max_size=20),
        "max_age_days": st.none() | st.integers(-5, 40000),
        "max_signatures": st.none() | st.integers(-5, 10**13),
        "auto_rotate": st.none() | st.booleans(),
        "metadata": st.none()
        | st.dictionaries(st.text(max_size=6), st.integers(INT64_MIN, UINT64_MAX), max_size=3),
        "backup_id": st.text(HEX, min_size=32, max_size=32) | st.text(max_size=40),
        "since": st.none() | st.floats(allow_nan=True),
        "limit": st.integers(-2, 200_000),
        "before_seq": st.none() | st.integers(-2, 2**64 - 1),
        "steps": st.lists(
            st.fixed_dictionaries(
                {"prompt": st.text(max_size=20), "expected_response_hash": sha | st.text()}
            ),
            max_size=3,
        ),
        "responses": st.lists(sha | st.text(max_size=70), max_size=3),
        "key_type": st.sampled_from(["hmac-sha256", "ed25519", "secp256k1"]) | st.text(max_size=12),
        "version": st.none() | st.integers(-2, 2**64 - 1),
        "purpose": st.none() | st.text(max_size=300),
        "typed_data": st.dictionaries(
            st.sampled_from(["types", "primaryType", "domain", "message"]) | st.text(max_size=6),
            junk_for_typed_data(),
            max_size=5,
        ),
        # The signing policy (issue 15): documents are plain lists of maps, mostly malformed.
        "layer": st.sampled_from(["admin", "owner"]) | st.text(max_size=8),
        "rules": st.lists(
            st.fixed_dictionaries(
                {"id": st.text(max_size=8), "action": st.sampled_from(["allow", "deny", "x"])}
            )
            | junk,
            max_size=4,
        ),
        "expected_version": st.integers(-2, 2**64 - 1),
        "for_op": st.none() | st.sampled_from(["sign_message", "sign_batch"]) | st.text(max_size=8),
        "scope": st.sampled_from(["all", "uid", "wallet"]) | st.text(max_size=8),
        "uid": st.none() | st.integers(-2, 2**64 - 1),
        # Human approval (issue 16): ids that name nothing, lease terms, bounded waits.
        "wait_s": st.none() | st.floats(-1, 0.05),
        "approval_id": st.text(max_size=70),
        "lease_id": st.text(max_size=70),
        "timeout_s": st.floats(-1, 0.05),
        "lease": st.none()
        | st.fixed_dictionaries(
            {"scope": st.sampled_from(["once", "process", "uid", "wallet"]) | st.text(max_size=8)},
            optional={"ttl_s": st.floats(-1, 10**6), "max_uses": st.integers(-2, 2**64 - 1)},
        ),
    }


def junk_for_typed_data() -> st.SearchStrategy[Any]:
    """Small maps, lists and leaves: a typed-data document's parts, mostly malformed."""
    leaf = st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX) | st.text(max_size=12)
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=10,
    )


def request_fields() -> dict[str, list[str]]:
    out = {}
    for request_type in wire.REQUEST_TYPES:
        tag = str(request_type.__struct_config__.tag)
        out[tag] = [f.encode_name for f in msgspec.structs.fields(request_type)]
    return out


FIELDS = request_fields()

# Anything MessagePack can carry (that msgspec can encode): the junk that goes everywhere.
leaves = (
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, UINT64_MAX)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=16)
)
junk = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), inner, max_size=4)
    ),
    max_leaves=12,
)


def huge(max_frame_bytes: int) -> st.SearchStrategy[Any]:
    sizes = st.sampled_from([255, 256, 257, 65535, 65536, max_frame_bytes - 64, max_frame_bytes])
    return st.builds(lambda n, b: b"x" * n if b else "x" * n, sizes, st.booleans())


def deep(depth: int) -> bytes:
    """A MessagePack array nested ``depth`` times (fixarray of one element, then nil)."""
    return b"\x91" * depth + b"\xc0"


@st.composite
def mutated_request(draw: st.DrawFn, targets: list[str], max_frame_bytes: int) -> bytes:
    """A valid request of any op, then 0-3 mutations; returns the MessagePack payload."""
    values = field_values(targets)
    op = draw(st.sampled_from(sorted(FIELDS)))
    doc: dict[Any, Any] = {"op": op}
    for name in FIELDS[op]:
        if name != "op":
            doc[name] = draw(values[name])
    bad_utf8 = False
    for _ in range(draw(st.integers(0, 3))):
        keys = list(doc)
        kind = draw(
            st.sampled_from(
                ["drop", "extra", "retype", "huge", "int_range", "op", "bad_utf8", "nested"]
            )
        )
        key = draw(st.sampled_from(keys)) if keys else "op"
        if kind == "drop" and keys:
            del doc[key]
        elif kind == "extra":
            doc[draw(st.text(max_size=8) | st.integers(-3, 3))] = draw(junk)
        elif kind == "retype":
            doc[key] = draw(junk)
        elif kind == "huge":
            doc[key] = draw(huge(max_frame_bytes))
        elif kind == "int_range":
            doc[key] = draw(st.sampled_from([-1, -(2**63), 2**63, 2**63 - 1, UINT64_MAX, 2**31]))
        elif kind == "op":
            doc["op"] = draw(junk | st.sampled_from([o.upper() for o in FIELDS]) | st.just(""))
        elif kind == "bad_utf8":
            doc[key] = BAD_UTF8_MARK
            bad_utf8 = True
        elif kind == "nested":
            doc[key] = draw(st.lists(st.lists(st.lists(junk, max_size=2), max_size=2), max_size=2))
    payload = msgspec.msgpack.encode(doc)
    if bad_utf8:
        payload = payload.replace(BAD_UTF8_MARK.encode(), BAD_UTF8_BYTES)
    return payload


def payloads(targets: list[str], max_frame_bytes: int) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=256),
        junk.map(msgspec.msgpack.encode),
        mutated_request(targets, max_frame_bytes),
        mutated_request(targets, max_frame_bytes),
        st.integers(1, 5000).map(lambda n: deep(n * 40)),
    )


def exact_size(max_frame_bytes: int, extra: int) -> bytes:
    """A sign_message payload of exactly ``max_frame_bytes + extra`` bytes."""
    target = max_frame_bytes + extra

    def build(fill: int) -> bytes:
        doc = {"op": "sign_message", "id": 7, "user_id": "nb-0", "message": b"m" * fill}
        return msgspec.msgpack.encode(doc)

    rest = len(build(0)) - 2  # everything but the message's bin8 header (2 bytes) and body
    for header in (2, 3, 5):  # bin8, bin16, bin32
        payload = build(target - rest - header)
        if len(payload) == target:
            return payload
    raise AssertionError(f"no sign_message payload of {target} bytes")


@st.composite
def streams(draw: st.DrawFn, targets: list[str], max_frame_bytes: int) -> bytes:
    """The bytes of one case: frames, then maybe an oversized prefix or a truncated frame."""
    body = st.one_of(
        payloads(targets, max_frame_bytes).map(encode_frame),
        st.sampled_from([0, -1, 1]).map(
            lambda extra: encode_frame(exact_size(max_frame_bytes, extra))
        ),
    )
    data = b"".join(draw(st.lists(body, min_size=0, max_size=4)))
    tail = draw(st.sampled_from(["none", "none", "huge", "truncated", "raw"]))
    if tail == "huge":
        announced = draw(st.integers(max_frame_bytes + 1, 2**32 - 1) | st.just(max_frame_bytes + 1))
        data += prefix(announced) + draw(st.binary(max_size=64))
    elif tail == "truncated":
        frame = encode_frame(draw(payloads(targets, max_frame_bytes)))
        data += frame[: draw(st.integers(1, max(1, len(frame) - 1)))]
    elif tail == "raw":
        data += draw(st.binary(min_size=1, max_size=32))
    if not data:
        data = encode_frame(b"")
    return data


@dataclass
class Expected:
    frames: list[bytes]  # complete frames the daemon must answer, in order
    too_large: bool  # an oversized prefix follows them: frame_too_large, then close
    partial: bool  # a frame was started and not finished


def expected(data: bytes, max_frame_bytes: int) -> Expected:
    decoder = FrameDecoder(max_frame_bytes)
    decoder.feed(data)
    frames: list[bytes] = []
    try:
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    except FrameTooLargeError:
        return Expected(frames, True, False)
    return Expected(frames, False, decoder.in_frame)


_lenient = msgspec.msgpack.Decoder(wire.Envelope)


def request_id(payload: bytes) -> int | None:
    """The id a lenient reader finds in ``payload`` (what walletd may echo), or None."""
    try:
        value = _lenient.decode(payload).id
    except Exception:  # whatever the reason, there is no id to echo
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _id_entry_in(payload: bytes, rid: Any) -> bool:
    """Whether ``payload`` holds an ``"id": rid`` entry byte for byte. walletd keeps the id of a
    request it cannot decode whenever its top-level map can still be read (trailing bytes, a
    duplicate key, a bad value elsewhere: docs/PROTOCOL.md), which the lenient reader above
    does not attempt; the echoed id must then be one the client really sent."""
    if not isinstance(rid, int) or isinstance(rid, bool):
        return False
    return msgspec.msgpack.encode("id") + msgspec.msgpack.encode(rid) in payload


def check_response(payload: bytes, response: Any) -> str | None:
    """What is wrong with ``response`` to ``payload``, or None."""
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        return f"not a response envelope: {response!r:.200}"
    rid = response.get("id")
    if rid is not None and rid != request_id(payload) and not _id_entry_in(payload, rid):
        return f"response id {rid} for a request with id {request_id(payload)}"
    if response["ok"]:
        return None if "result" in response else "ok without a result"
    code = (response.get("error") or {}).get("code")
    if code not in ALLOWED_CODES:
        return f"error code {code!r}: {response['error'].get('message')!r:.300}"
    return None
