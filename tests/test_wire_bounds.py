"""Bounded decoding (issue 12 items 8, 16, 17): every list and map on the wire is bounded in
its msgspec type, ``hello`` reports the bounds, and a request that fails to decode keeps its
id whenever it can be read, with a message that names what is wrong."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

import walletd_wire as wire
from walletd.ops import peek

from .adversarial.wire import BAD_UTF8_BYTES, BAD_UTF8_MARK
from .test_dispatch_errors import ADMIN, MakeResponder, Responder
from .test_dispatch_errors import make_responder as make_responder  # the fixture

encode = msgspec.msgpack.encode


@pytest.fixture
def responder(make_responder: MakeResponder) -> Responder:
    return make_responder()


def _bounded_fields() -> dict[str, int | None]:
    """Every list/map field of every request, keyed op.field, with its max_length."""
    found: dict[str, int | None] = {}
    for request_type in wire.REQUEST_TYPES:
        info = mi.type_info(request_type)
        assert isinstance(info, mi.StructType)
        for f in info.fields:
            kinds = f.type.types if isinstance(f.type, mi.UnionType) else (f.type,)
            for kind in kinds:
                if isinstance(kind, mi.ListType | mi.DictType):
                    found[f"{info.tag}.{f.name}"] = kind.max_length
    return found


def test_every_list_and_map_on_the_wire_is_bounded_and_reported() -> None:
    """Failed before: sign_batch.messages, verify_batch.items, register_ritual.steps,
    initiate_recovery.responses and create_backup.metadata had no bound in the type."""
    fields = _bounded_fields()
    assert fields == wire.LIST_LIMITS
    assert None not in fields.values()
    assert wire.LIST_LIMITS["initiate_recovery.responses"] == 16


async def test_hello_reports_the_limits(responder: Responder) -> None:
    result = (await responder.call({"op": "hello", "id": 1}))["result"]
    assert result["limits"] == {
        "max_frame_bytes": 1 << 20,
        "max_batch_items": wire.MAX_BATCH_ITEMS,
        "lists": wire.LIST_LIMITS,
    }


def test_metadata_nesting_is_bounded_in_the_type() -> None:
    decoder = msgspec.msgpack.Decoder(wire.CreateBackup)
    ok = {"a": {"b": [1, "x", None, 1.5, True]}}
    assert decoder.decode(encode({"id": 1, "user_id": "u", "metadata": ok})).metadata == ok
    with pytest.raises(msgspec.ValidationError):
        decoder.decode(encode({"id": 1, "user_id": "u", "metadata": {"a": {"b": [[]]}}}))


# --------------------------------------------------------------------------- the kept id


def _map(*pairs: bytes) -> bytes:
    """A MessagePack map built from already-encoded keys and values (duplicates allowed)."""
    assert len(pairs) % 2 == 0 and len(pairs) < 32
    return bytes([0x80 | len(pairs) // 2]) + b"".join(pairs)


OP, ID, USER = encode("op"), encode("id"), encode("user_id")

KEPT_ID = [
    pytest.param(
        encode({"op": "create_wallet", "id": 11, "user_id": BAD_UTF8_MARK}).replace(
            BAD_UTF8_MARK.encode(), BAD_UTF8_BYTES
        ),
        "UTF-8",
        id="invalid-utf8-in-a-field",
    ),
    pytest.param(
        encode({"op": "hello", "id": 11}) + b"\x00\x01",
        "2 bytes after the request map",
        id="trailing-bytes",
    ),
    pytest.param(
        _map(OP, encode("hello"), ID, encode(11), encode(5), encode(1)),
        "`str`",
        id="non-string-key",
    ),
    pytest.param(
        _map(OP, encode("create_wallet"), ID, encode(11), USER, encode("a"), OP, encode("status")),
        "key 'op' appears more than once",
        id="duplicate-op",
    ),
    pytest.param(
        _map(OP, encode("create_wallet"), ID, encode(11), USER, encode("a"), USER, encode(3)),
        "key 'user_id' appears more than once",
        id="duplicate-field",
    ),
    pytest.param(
        _map(
            OP,
            encode("create_backup"),
            ID,
            encode(11),
            USER,
            encode("a"),
            encode("metadata"),
            encode({"k": [{}] * 100_000}),
        ),
        "length <= 64",
        id="decode-bomb",
    ),
]


@pytest.mark.parametrize(("payload", "says"), KEPT_ID)
async def test_decodable_errors_keep_the_request_id(
    responder: Responder, payload: bytes, says: str
) -> None:
    """Failed before for trailing bytes (id None), a duplicate op ("Invalid value 'status'")
    and a duplicate field (none: the last value was used)."""
    response = await responder.error(payload, ADMIN)
    assert response["id"] == 11, response
    assert response["error"]["code"] == "bad_request", response
    assert says in response["error"]["message"], response


def test_the_scan_is_bounded() -> None:
    """A value of more than MAX_ITEMS elements before the id: the scan gives up (no id)
    rather than walk the whole frame in Python."""
    payload = _map(encode("pad"), encode([0] * (peek.MAX_ITEMS + 1)), ID, encode(3))
    assert peek.peek_request(payload).request_id is None
    payload = _map(encode("pad"), encode([0] * 100), ID, encode(3))
    assert peek.peek_request(payload).request_id == 3


def test_the_scan_reads_every_msgpack_type() -> None:
    values: list[Any] = [
        None,
        True,
        1.5,
        2**40,
        -5,
        -(2**40),
        "s" * 300,
        b"b" * 70_000,
        [1, [2, {"x": 3}]],
        {"m": {}},
        msgspec.msgpack.Ext(1, b"abcd"),
        msgspec.msgpack.Ext(2, b"x" * 300),
    ]
    for value in values:
        payload = encode({"v": value, "id": 9, "op": "hello"})
        seen = peek.peek_request(payload)
        assert (seen.request_id, seen.op, seen.trailing) == (9, "hello", 0), value
