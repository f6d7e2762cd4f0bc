"""Error responses decided by ``Dispatcher.respond(peer, payload)``, without a socket.

Most refusals depend on nothing but one frame's payload and the daemon's state, so they are
tested the way h11 tests its state machine: bytes in, one response out, compared as the map a
client would decode. The connection adds nothing to these cases (it hands the payload over and
writes the response back); test_errors.py keeps one test per error code over a real socket,
which also checks that the connection goes on serving after the refusal.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest

import walletd_wire as wire
from walletd.config import Config
from walletd.model.peer import Peer
from walletd.ops.daemon import Daemon, build_daemon
from walletd.ops.dispatch import Dispatcher

from .adversarial.wire import BAD_UTF8_BYTES, BAD_UTF8_MARK
from .conftest import FAST_SCRYPT
from .test_protocol import NOT_FOUND_RESPONSE_HEX, SIGN_REQUEST_HEX

# The test process is what the socket tests connect as: root (or the daemon's own uid), an
# admin either way.
ADMIN = Peer(uid=os.getuid(), gid=os.getgid(), pid=os.getpid(), is_admin=True)
OTHER = Peer(uid=65534, gid=65534, pid=1, is_admin=False)

encode = msgspec.msgpack.encode

# --------------------------------------------------------------------------- the tables

_BACKUP_HEAD = {"op": "create_backup", "id": 1, "user_id": "a"}
# A map whose last value (under "metadata") is 100 000 nested one-element arrays: 100 KB.
DEEP_METADATA = (
    b"\x84"
    + msgspec.msgpack.encode(_BACKUP_HEAD)[1:]
    + msgspec.msgpack.encode("metadata")
    + b"\x81\xa1x"
    + b"\x91" * 100_000
    + b"\xc0"
)
DEEP_BUT_DECODABLE: Any = []
for _ in range(40):
    DEEP_BUT_DECODABLE = [DEEP_BUT_DECODABLE]
DEEP_OP = b"\x82\xa2op" + b"\x91" * 100_000 + b"\xc0" + b"\xa2id\x01"


BAD_REQUESTS = [
    pytest.param(b"\xc1", None, "MessagePack", id="not-msgpack"),
    pytest.param(b"\x82\xa2op", None, "MessagePack", id="truncated-msgpack"),
    pytest.param(msgspec.msgpack.encode([1, 2]), None, "map", id="array"),
    pytest.param(msgspec.msgpack.encode(5), None, "map", id="int"),
    pytest.param(msgspec.msgpack.encode("hello"), None, "map", id="str"),
    pytest.param(msgspec.msgpack.encode({"id": 3}), 3, "op", id="missing-op"),
    pytest.param(msgspec.msgpack.encode({"op": 7, "id": 3}), 3, "op", id="op-not-str"),
    pytest.param(
        msgspec.msgpack.encode({"op": "create_wallet", "id": 4}), 4, "user_id", id="no-user"
    ),
    pytest.param(
        msgspec.msgpack.encode({"op": "create_wallet", "id": 5, "user_id": 5}),
        5,
        "user_id",
        id="user-id-int",
    ),
    pytest.param(
        msgspec.msgpack.encode({"op": "sign_message", "id": 6, "user_id": "a", "message": "s"}),
        6,
        "message",
        id="message-str-not-bin",
    ),
    pytest.param(
        msgspec.msgpack.encode({"op": "hello", "id": 7, "extra": True}),
        7,
        "extra",
        id="unknown-field",
    ),
    pytest.param(msgspec.msgpack.encode({"op": "hello"}), None, "id", id="missing-id"),
    pytest.param(msgspec.msgpack.encode({"op": "hello", "id": -1}), None, "id", id="id<0"),
    pytest.param(msgspec.msgpack.encode({"op": "hello", "id": 2**63}), None, "id", id="id-big"),
    pytest.param(msgspec.msgpack.encode({"op": "hello", "id": "1"}), None, "id", id="id-str"),
    pytest.param(
        msgspec.msgpack.encode({"op": "set_policy", "id": 8, "user_id": "a", "auto_rotate": 1}),
        8,
        "auto_rotate",
        id="policy-wrong-type",
    ),
    pytest.param(
        msgspec.msgpack.encode({"op": "hello", "id": 9}) + b"\x00",
        9,
        "1 bytes after the request map",
        id="trailing",
    ),
    pytest.param(b"", None, "empty", id="zero-length-frame"),
    # Regression: msgspec raises RecursionError (not a MsgspecError) for deep nesting; it
    # escaped the dispatcher and the connection, and stopped the whole daemon.
    # The id before the deep value is read (and kept) since the failure path scans the map.
    pytest.param(DEEP_METADATA, 1, "nested too deeply", id="deeply-nested-metadata"),
    pytest.param(DEEP_OP, None, "nested too deeply", id="deeply-nested-op"),
]

BAD_USER_IDS = [
    "",
    "a" * 257,
    "é" * 129,  # 258 bytes of UTF-8 in 129 characters
    "a\x00b",
    "tab\there",
    "line\nfeed",
    "del\x7f",
    "nel\x85",
    "c1\x9f",
]

VALID_USER_IDS = ["a" * 256, "é" * 128, "日本語", "a b", "🙂", "x"]

INVALID_POLICY_VALUES = [
    ({"max_age_days": 0}, "max_age_days"),
    ({"max_age_days": -5}, "max_age_days"),
    ({"max_age_days": 36501}, "max_age_days"),
    ({"max_signatures": 0}, "max_signatures"),
    ({"max_signatures": 10**12 + 1}, "max_signatures"),
]

OTHER_INVALID_ARGUMENTS: list[dict[str, Any]] = [
    {"op": "rotate_keys", "reason": ""},
    {"op": "rotate_keys", "reason": "bad\nreason"},
    {"op": "verify_backup", "backup_id": "../../etc/passwd"},
    {"op": "audit_log", "limit": 0},
    {"op": "create_backup", "metadata": {"big": "x" * 20_000}},
    {"op": "register_ritual", "steps": [{"prompt": "q", "expected_response_hash": "nothex"}]},
    {"op": "register_ritual", "steps": []},
]

METADATA_NOT_PLAIN_JSON = [
    {"x": float("nan")},
    {"x": [float("inf")]},
]
METADATA_IDS = ["nan", "inf"]

# Refused by the decoder's bounded types (walletd_wire.bounded) before anything is built.
REFUSED_BY_THE_DECODER = [
    pytest.param({"op": "create_backup", "metadata": {"blob": b"\x00"}}, id="metadata-bytes"),
    # json.dumps(sort_keys) used to crash on the first; the second came back as "1".
    pytest.param({"op": "create_backup", "metadata": {"n": {1: "a", "b": "c"}}}, id="mixed-keys"),
    pytest.param({"op": "create_backup", "metadata": {"nested": {1: "int"}}}, id="int-key"),
    pytest.param({"op": "create_backup", "metadata": {"deep": DEEP_BUT_DECODABLE}}, id="deep"),
    pytest.param(
        {"op": "create_backup", "metadata": {str(i): i for i in range(65)}}, id="metadata-wide"
    ),
    pytest.param(
        {"op": "sign_batch", "messages": [b""] * (wire.MAX_BATCH_ITEMS + 1)}, id="sign-batch"
    ),
    pytest.param(
        {"op": "initiate_recovery", "responses": ["0" * 64] * 17}, id="recovery-responses"
    ),
]


class Responder:
    """A dispatcher of a real (ephemeral) daemon, answering payloads as plain maps."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def answer(self, message: Any, peer: Peer = ADMIN) -> dict[str, Any]:
        """The response to ``message`` (bytes, or a map to encode), as a client decodes it."""
        payload = message if isinstance(message, bytes) else encode(message)
        response = self.dispatcher.respond(peer, payload)
        if isinstance(response, Awaitable):
            response = await response
        # Through the wire encoding, so that what is compared is what a client would read.
        decoded: dict[str, Any] = msgspec.msgpack.decode(encode(response))
        return decoded

    async def call(self, message: Any, peer: Peer = ADMIN) -> dict[str, Any]:
        response = await self.answer(message, peer)
        assert response["ok"] is True, response
        return response

    async def error(self, message: Any, peer: Peer = ADMIN) -> dict[str, Any]:
        """Expect an error response of exactly the documented shape."""
        response = await self.answer(message, peer)
        assert response["ok"] is False, response
        assert set(response) == {"id", "ok", "error"}
        assert set(response["error"]) == {"code", "message"}
        return response


MakeResponder = Callable[..., Responder]


@pytest.fixture
def make_responder() -> Iterator[MakeResponder]:
    daemons: list[Daemon] = []

    def make(**overrides: Any) -> Responder:
        config = Config(**{"ephemeral": True, **FAST_SCRYPT, **overrides})
        daemons.append(build_daemon(config))
        return Responder(daemons[-1].dispatcher)

    yield make
    for daemon in daemons:
        daemon.store.close()


@pytest.fixture
def daemon(make_responder: MakeResponder) -> Responder:
    return make_responder()


# --------------------------------------------------------------------------- bad_request


@pytest.mark.parametrize(("payload", "expected_id", "names"), BAD_REQUESTS)
async def test_bad_request(
    daemon: Responder, payload: bytes, expected_id: int | None, names: str
) -> None:
    response = await daemon.error(payload)
    assert response["error"]["code"] == "bad_request"
    assert response["id"] == expected_id
    assert names in response["error"]["message"]


async def test_bad_request_message_names_the_field_not_the_value(daemon: Responder) -> None:
    secret = b"top-secret-message-bytes"
    response = await daemon.error(
        {"op": "verify_signature", "id": 1, "user_id": "a", "message": secret, "signature": 12}
    )
    assert response["error"]["code"] == "bad_request"
    assert "`$.signature`" in response["error"]["message"]
    assert "top-secret" not in response["error"]["message"]


@pytest.mark.parametrize(
    "doc",
    [
        {"op": "create_wallet", "user_id": BAD_UTF8_MARK},
        {"op": "sign_message", "user_id": BAD_UTF8_MARK, "message": b"m"},
        {"op": "create_backup", "user_id": "x", "metadata": {BAD_UTF8_MARK: 1}},
        {"op": "create_backup", "user_id": "x", "metadata": {"k": [BAD_UTF8_MARK]}},
        {"op": "rotate_keys", "user_id": "x", "reason": BAD_UTF8_MARK},
        {"op": BAD_UTF8_MARK},
    ],
    ids=["user_id", "sign", "metadata-key", "metadata-value", "reason", "op"],
)
async def test_invalid_utf8_is_bad_request(daemon: Responder, doc: dict[str, Any]) -> None:
    """A MessagePack str holding invalid UTF-8 makes msgspec raise UnicodeDecodeError (not a
    MsgspecError); it once escaped the dispatcher. tests/adversarial/test_security_edges.py
    sends one of these to a real daemon."""
    payload = encode({"id": 1, **doc}).replace(BAD_UTF8_MARK.encode(), BAD_UTF8_BYTES)
    response = await daemon.error(payload)
    assert response["error"]["code"] == "bad_request", response
    assert response["id"] in (1, None)


# --------------------------------------------------------------------------- unknown_op


async def test_unknown_op(daemon: Responder) -> None:
    response = await daemon.error({"op": "frobnicate", "id": 12})
    assert response["id"] == 12
    assert response["error"]["code"] == "unknown_op"
    assert "frobnicate" in response["error"]["message"]
    # A very long op name is not echoed in full.
    response = await daemon.error({"op": "x" * 10_000, "id": 13})
    assert response["error"]["code"] == "unknown_op"
    assert len(response["error"]["message"]) < 200


# --------------------------------------------------------------------------- invalid_argument


@pytest.mark.parametrize("user_id", BAD_USER_IDS, ids=repr)
@pytest.mark.parametrize(
    "op", ["create_wallet", "get_wallet_address", "has_wallet", "delete_wallet", "sign_message"]
)
async def test_invalid_user_id(daemon: Responder, op: str, user_id: str) -> None:
    request: dict[str, Any] = {"op": op, "id": 1, "user_id": user_id}
    if op == "sign_message":
        request["message"] = b"m"
    response = await daemon.error(request)
    assert response["error"]["code"] == "invalid_argument", response
    assert response["id"] == 1
    assert "user_id" in response["error"]["message"]


@pytest.mark.parametrize("user_id", VALID_USER_IDS, ids=repr)
async def test_valid_user_ids_at_the_edges(daemon: Responder, user_id: str) -> None:
    created = await daemon.call({"op": "create_wallet", "id": 1, "user_id": user_id})
    listed = await daemon.call({"op": "list_wallets", "id": 2})
    assert listed["result"]["wallets"] == {user_id: created["result"]["address"]}


@pytest.mark.parametrize(("fields", "names"), INVALID_POLICY_VALUES)
async def test_invalid_policy_values(daemon: Responder, fields: dict[str, Any], names: str) -> None:
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await daemon.error({"op": "set_policy", "id": 2, "user_id": "a", **fields})
    assert response["error"]["code"] == "invalid_argument"
    assert names in response["error"]["message"]
    policy = await daemon.call({"op": "get_policy", "id": 3, "user_id": "a"})
    assert policy["result"] == {"max_age_days": 90, "max_signatures": 10000, "auto_rotate": False}


@pytest.mark.parametrize("request_fields", OTHER_INVALID_ARGUMENTS, ids=lambda f: f["op"])
async def test_other_invalid_arguments(daemon: Responder, request_fields: dict[str, Any]) -> None:
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await daemon.error({"id": 2, "user_id": "a", **request_fields})
    assert response["error"]["code"] == "invalid_argument", response


@pytest.mark.parametrize("request_fields", REFUSED_BY_THE_DECODER)
async def test_bounds_refused_by_the_decoder(
    daemon: Responder, request_fields: dict[str, Any]
) -> None:
    """Over-long lists and maps, over-deep or non-JSON metadata: bad_request from the decoder,
    the id kept, nothing stored."""
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await daemon.error({"id": 2, "user_id": "a", **request_fields})
    assert response["error"]["code"] == "bad_request", response
    assert response["id"] == 2
    listed = await daemon.call({"op": "list_backups", "id": 3, "user_id": "a"})
    assert listed["result"]["backups"] == []


@pytest.mark.parametrize("metadata", METADATA_NOT_PLAIN_JSON, ids=METADATA_IDS)
async def test_metadata_must_be_plain_json(daemon: Responder, metadata: dict[str, Any]) -> None:
    # Regression: non-string keys below the top level reached json.dumps and became `internal`.
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    request = {"op": "create_backup", "id": 2, "user_id": "a", "metadata": metadata}
    response = await daemon.error(request)
    assert response["error"]["code"] == "invalid_argument", response
    listed = await daemon.call({"op": "list_backups", "id": 3, "user_id": "a"})
    assert listed["result"]["backups"] == []


# --------------------------------------------------------------------------- not_found / exists


@pytest.mark.parametrize(
    "op", ["sign_message", "delete_wallet", "verify_signature", "rotate_keys", "get_policy"]
)
async def test_not_found(daemon: Responder, op: str) -> None:
    request: dict[str, Any] = {"op": op, "id": 5, "user_id": "ghost"}
    if op in ("sign_message", "verify_signature"):
        request["message"] = b"m"
    if op == "verify_signature":
        request["signature"] = b"s" * 32
    response = await daemon.error(request)
    assert response["error"]["code"] == "not_found", (op, response)
    assert response["id"] == 5
    assert "ghost" in response["error"]["message"]


async def test_backup_not_found(daemon: Responder) -> None:
    await daemon.call({"op": "create_wallet", "id": 6, "user_id": "a"})
    response = await daemon.error(
        {"op": "verify_backup", "id": 7, "user_id": "a", "backup_id": "0" * 32}
    )
    assert response["error"]["code"] == "not_found"


async def test_not_found_bytes_are_the_documented_ones(daemon: Responder) -> None:
    # docs/PROTOCOL.md's example, decided without a socket (test_protocol.py sends it to one).
    response = daemon.dispatcher.respond(ADMIN, bytes.fromhex(SIGN_REQUEST_HEX)[4:])
    assert not isinstance(response, Awaitable)
    assert encode(response) == bytes.fromhex(NOT_FOUND_RESPONSE_HEX)[4:]


async def test_already_exists(daemon: Responder) -> None:
    first = await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await daemon.error({"op": "create_wallet", "id": 2, "user_id": "a"})
    assert response["error"]["code"] == "already_exists"
    assert response["id"] == 2
    again = await daemon.call({"op": "get_wallet_address", "id": 3, "user_id": "a"})
    assert again["result"]["address"] == first["result"]["address"]


# --------------------------------------------------------------------------- forbidden


@pytest.mark.parametrize(
    ("request_fields", "names"),
    [
        ({"op": "sign_message", "message": b"x"}, "another uid"),
        ({"op": "get_wallet_address"}, "another uid"),
        ({"op": "delete_wallet"}, "another uid"),
        ({"op": "rotate_keys"}, "another uid"),
        ({"op": "set_policy", "max_signatures": 5}, "another uid"),
        ({"op": "reset_attempts"}, "admins only"),  # not even the owner may
    ],
    ids=lambda v: v["op"] if isinstance(v, dict) else v.replace(" ", "-"),
)
async def test_forbidden_for_another_uid(
    daemon: Responder, request_fields: dict[str, Any], names: str
) -> None:
    """The ownership rule alone (test_errors.py shows the kernel's uid reaching it)."""
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "root-owned"})
    response = await daemon.error({"id": 2, "user_id": "root-owned", **request_fields}, OTHER)
    assert response["error"]["code"] == "forbidden", response
    assert response["id"] == 2
    assert names in response["error"]["message"]
    still = await daemon.call({"op": "has_wallet", "id": 3, "user_id": "root-owned"})
    assert still["result"] == {"exists": True}


# --------------------------------------------------------------------------- rituals

STEPS = [{"prompt": "first pet?", "expected_response_hash": "ab" * 32}]


@pytest.mark.parametrize("op", ["get_prompts", "get_remaining_attempts", "is_locked"])
async def test_no_ritual(daemon: Responder, op: str) -> None:
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await daemon.error({"op": op, "id": 2, "user_id": "a"})
    assert response["error"]["code"] == "no_ritual", op
    assert response["id"] == 2


async def test_locked_after_the_last_attempt(make_responder: MakeResponder) -> None:
    daemon = make_responder(max_attempts=1)
    await daemon.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    registered = await daemon.call(
        {"op": "register_ritual", "id": 3, "user_id": "a", "steps": STEPS}
    )
    assert registered["result"] == {"steps": 1, "remaining_attempts": 1}
    failed = await daemon.call(
        {"op": "initiate_recovery", "id": 4, "user_id": "a", "responses": ["cd" * 32]}
    )
    assert failed["result"]["recovered"] is False
    response = await daemon.error(
        {"op": "initiate_recovery", "id": 5, "user_id": "a", "responses": ["ab" * 32]}
    )
    assert response["error"]["code"] == "locked"
    assert "ab" * 32 not in response["error"]["message"]
    locked = await daemon.call({"op": "is_locked", "id": 6, "user_id": "a"})
    assert locked["result"] == {"locked": True}
