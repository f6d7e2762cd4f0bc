"""sign_typed_data frames are bounded before they are decoded (issue 12, item 8).

Before: ``typed_data`` below its top level was decoded as ``Any``, so a 1 MiB frame of a
million empty maps was built in full (~156 ms of event-loop time) before eip712 refused it;
``test_a_tree_bomb_is_refused_before_it_is_built`` failed (the refusal came from eip712, as
invalid_argument, after the build).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import trio

import walletd_wire as wire
from walletd.ops.dispatch import Dispatcher
from walletd.ops.typed_data_bound import (
    CHUNK,
    MAX_DEPTH,
    MAX_VALUES,
    check_typed_data_frame,
    scan_typed_data_frame,
)
from walletd.server.serve import Server
from walletd_wire import eip712_types
from walletd_wire.framing import DEFAULT_MAX_FRAME_BYTES

from .adversarial import figures
from .support import MakeConfig, StartServer, Wire

MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ],
        "Mail": [{"name": "contents", "type": "string"}, {"name": "tags", "type": "string[]"}],
    },
    "primaryType": "Mail",
    "domain": {"name": "walletd", "chainId": 1},
    "message": {"contents": "hi", "tags": []},
}


def frame(typed_data: Any, request_id: int = 7, op: str = "sign_typed_data") -> bytes:
    return msgspec.msgpack.encode(
        {"op": op, "id": request_id, "user_id": "u", "typed_data": typed_data}
    )


def bomb() -> bytes:
    """The biggest tree bomb a 1 MiB frame holds: a list of empty maps (one byte each)."""
    count = DEFAULT_MAX_FRAME_BYTES - 64
    body = b"\xdd" + count.to_bytes(4, "big") + b"\x80" * count
    head = msgspec.msgpack.encode({"op": "sign_typed_data", "id": 7, "user_id": "u"})
    # Add the typed_data key to the 3-entry map (a fixmap header) by hand.
    return (
        bytes([0x84])
        + head[1:]
        + msgspec.msgpack.encode("typed_data")
        + b"\x81"
        + (msgspec.msgpack.encode("message") + body)
    )


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def best_of(fn: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def test_a_tree_bomb_is_refused_before_it_is_built() -> None:
    payload = bomb()
    assert len(payload) <= DEFAULT_MAX_FRAME_BYTES
    dispatcher = Dispatcher({t: lambda *_: None for t in wire.REQUEST_TYPES})
    response = dispatcher.decode(payload)
    assert isinstance(response, wire.ErrorResponse)
    assert response.id == 7
    assert response.error.code == "bad_request"
    assert f"at most {MAX_VALUES}" in response.error.message
    seconds = best_of(lambda: dispatcher.decode(payload))
    full = best_of(lambda: msgspec.msgpack.decode(payload), runs=2)
    figures.record(
        "typed_data bomb (1 MiB)",
        cases=1,
        refuse_ms=round(seconds * 1000, 2),
        full_decode_ms=round(full * 1000, 1),
    )
    # The scan stops after MAX_VALUES values: a few ms, not the full decode's ~100+ ms.
    assert seconds < full / 4, (seconds, full)


def test_nesting_past_the_eip712_depth_is_refused_with_its_id() -> None:
    refusal = check_typed_data_frame(frame({"message": nested(MAX_DEPTH)}, request_id=9))
    assert refusal is not None and refusal.request_id == 9
    assert f"more than {eip712_types.MAX_DEPTH} levels" in refusal.message
    assert check_typed_data_frame(frame({"message": nested(MAX_DEPTH - 2)})) is None


def test_real_documents_and_other_ops_pass_untouched() -> None:
    assert check_typed_data_frame(frame(MAIL)) is None
    # Not a typed-data request: never scanned, whatever it holds.
    other = msgspec.msgpack.encode({"op": "sign_message", "id": 1, "user_id": "u", "message": b"x"})
    assert check_typed_data_frame(other) is None
    # The largest document eip712 accepts fits the budget: 64 types of 64 fields, and a
    # message near eip712's value limit.
    types = {
        f"T{i}": [
            {"name": f"f{j}", "type": "string"} for j in range(eip712_types.MAX_FIELDS_PER_TYPE)
        ]
        for i in range(eip712_types.MAX_TYPES)
    }
    message = {f"k{i}": "v" for i in range(8000)}
    assert (
        check_typed_data_frame(frame({"types": types, "primaryType": "T0", "message": message}))
        is None
    )


def test_an_op_name_in_a_longer_string_form_is_still_scanned() -> None:
    # str8 spelling of the op name (0xd9, length): msgspec accepts it, so must the scan.
    payload = bytearray(bomb())
    fixstr = msgspec.msgpack.encode("sign_typed_data")
    at = payload.index(fixstr)
    payload[at : at + 1] = b"\xd9\x0f"
    refusal = check_typed_data_frame(bytes(payload))
    assert refusal is not None and refusal.request_id == 7


async def test_the_daemon_answers_a_bomb_with_its_id_and_keeps_serving(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server: Server = await start_server(make_config(ephemeral=True))
    conn = await Wire.open(str(server.config.socket))
    try:
        response = await conn.call(bomb())
        assert response["id"] == 7 and response["error"]["code"] == "bad_request", response
        created = await conn.call(
            {"op": "create_wallet", "id": 8, "user_id": "u", "key_type": "secp256k1"}
        )
        assert created["ok"] is True, created
        signed = await conn.call(
            {"op": "sign_typed_data", "id": 9, "user_id": "u", "typed_data": MAIL}
        )
        assert signed["id"] == 9 and signed["ok"] is True, signed
    finally:
        await conn.aclose()


def test_a_bomb_of_many_small_containers_is_refused_within_the_budget() -> None:
    # No one header announces too much: the walk itself runs out of its budget.
    payload = frame({"message": [[{}] * 15] * 2_800})  # 44,800 values, no header over budget
    assert len(payload) <= DEFAULT_MAX_FRAME_BYTES
    refusal = check_typed_data_frame(payload)
    assert refusal is not None and refusal.request_id == 7
    seconds = best_of(lambda: check_typed_data_frame(payload))
    figures.record(
        "typed_data bomb (small containers)", cases=1, refuse_ms=round(seconds * 1000, 2)
    )


async def test_the_daemons_scan_lets_other_connections_in_between() -> None:
    """The scan the daemon runs yields every CHUNK values, so a frame that walks the whole
    budget does not hold the event loop for all of it (a flood of them by one uid raised
    another uid's sign p50 from 0.2 to ~20 ms when the scan ran in one go)."""
    payload = frame({"message": [[{}] * 15] * 2_800})
    turns = 0
    done = False

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        refusal = await scan_typed_data_frame(payload)
        done = True
    assert refusal is not None and refusal.request_id == 7
    assert turns >= MAX_VALUES // CHUNK - 1, turns
