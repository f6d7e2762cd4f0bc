"""Every error code in protocol.ErrorCode, produced by a real daemon over a real socket.

Each non-fatal error is followed by a ``hello`` on the same connection: one bad request gets
one error response, and only a broken frame closes a connection.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import walletd_wire as wire
from wallet_client import errors as e
from walletd.config import Config
from walletd.model.peer import Peer
from walletd.ops.dispatch import Dispatcher
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

from .support import run_as_nobody

StartServer = Callable[..., Any]
MakeConfig = Callable[..., Config]


class Wire:
    """A raw client: frames whatever it is given and decodes responses as plain maps."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.frames = FrameDecoder(1 << 30)

    @classmethod
    async def open(cls, path: str) -> Wire:
        return cls(await trio.open_unix_socket(path))

    async def send(self, message: Any) -> None:
        payload = message if isinstance(message, bytes) else msgspec.msgpack.encode(message)
        await self.stream.send_all(encode_frame(payload))

    async def receive(self) -> dict[str, Any] | None:
        """The next response, or None once the daemon has closed the connection."""
        with trio.fail_after(10):
            while (frame := self.frames.next_frame()) is None:
                try:
                    data = await self.stream.receive_some(1 << 16)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    return None
                self.frames.feed(data)
        response: dict[str, Any] = msgspec.msgpack.decode(frame)
        return response

    async def call(self, message: Any) -> dict[str, Any]:
        await self.send(message)
        response = await self.receive()
        assert response is not None, "the daemon closed the connection"
        return response

    async def error(self, message: Any) -> dict[str, Any]:
        """Send ``message``, expect an error response, and check the connection still works."""
        response = await self.call(message)
        assert response["ok"] is False, response
        assert set(response) == {"id", "ok", "error"}
        assert set(response["error"]) == {"code", "message"}
        hello = await self.call({"op": "hello", "id": 4242})
        assert hello["ok"] is True and hello["id"] == 4242
        return response

    async def aclose(self) -> None:
        await self.stream.aclose()


async def open_wire(server: Server) -> Wire:
    return await Wire.open(server.config.socket)


# --------------------------------------------------------------------------- bad_request

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


@pytest.mark.parametrize(
    ("payload", "expected_id", "names"),
    [
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
            msgspec.msgpack.encode({"op": "hello", "id": 9}) + b"\x00", None, "", id="trailing"
        ),
        pytest.param(b"", None, "empty", id="zero-length-frame"),
        # Regression: msgspec raises RecursionError (not a MsgspecError) for deep nesting; it
        # escaped the dispatcher and the connection, and stopped the whole daemon.
        pytest.param(DEEP_METADATA, None, "nested too deeply", id="deeply-nested-metadata"),
        pytest.param(DEEP_OP, None, "nested too deeply", id="deeply-nested-op"),
    ],
)
async def test_bad_request(server: Server, payload: bytes, expected_id: Any, names: str) -> None:
    conn = await open_wire(server)
    response = await conn.error(payload)
    assert response["error"]["code"] == "bad_request"
    assert response["id"] == expected_id
    assert names in response["error"]["message"]


async def test_bad_request_message_names_the_field_not_the_value(server: Server) -> None:
    secret = b"top-secret-message-bytes"
    conn = await open_wire(server)
    response = await conn.error(
        {"op": "verify_signature", "id": 1, "user_id": "a", "message": secret, "signature": 12}
    )
    assert response["error"]["code"] == "bad_request"
    assert "`$.signature`" in response["error"]["message"]
    assert "top-secret" not in response["error"]["message"]


# --------------------------------------------------------------------------- unknown_op


async def test_unknown_op(server: Server) -> None:
    conn = await open_wire(server)
    response = await conn.error({"op": "frobnicate", "id": 12})
    assert response["id"] == 12
    assert response["error"]["code"] == "unknown_op"
    assert "frobnicate" in response["error"]["message"]
    # A very long op name is not echoed in full.
    response = await conn.error({"op": "x" * 10_000, "id": 13})
    assert response["error"]["code"] == "unknown_op"
    assert len(response["error"]["message"]) < 200


# --------------------------------------------------------------------------- invalid_argument

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


@pytest.mark.parametrize("user_id", BAD_USER_IDS, ids=repr)
@pytest.mark.parametrize(
    "op", ["create_wallet", "get_wallet_address", "has_wallet", "delete_wallet", "sign_message"]
)
async def test_invalid_user_id(server: Server, op: str, user_id: str) -> None:
    conn = await open_wire(server)
    request: dict[str, Any] = {"op": op, "id": 1, "user_id": user_id}
    if op == "sign_message":
        request["message"] = b"m"
    response = await conn.error(request)
    assert response["error"]["code"] == "invalid_argument", response
    assert response["id"] == 1
    assert "user_id" in response["error"]["message"]


@pytest.mark.parametrize("user_id", ["a" * 256, "é" * 128, "日本語", "a b", "🙂", "x"], ids=repr)
async def test_valid_user_ids_at_the_edges(server: Server, user_id: str) -> None:
    conn = await open_wire(server)
    created = await conn.call({"op": "create_wallet", "id": 1, "user_id": user_id})
    assert created["ok"] is True, created
    listed = await conn.call({"op": "list_wallets", "id": 2})
    assert listed["result"]["wallets"] == {user_id: created["result"]["address"]}


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"max_age_days": 0}, "max_age_days"),
        ({"max_age_days": -5}, "max_age_days"),
        ({"max_age_days": 36501}, "max_age_days"),
        ({"max_signatures": 0}, "max_signatures"),
        ({"max_signatures": 10**12 + 1}, "max_signatures"),
    ],
)
async def test_invalid_policy_values(server: Server, fields: dict[str, Any], names: str) -> None:
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    response = await conn.error({"op": "set_policy", "id": 2, "user_id": "a", **fields})
    assert response["error"]["code"] == "invalid_argument"
    assert names in response["error"]["message"]
    policy = await conn.call({"op": "get_policy", "id": 3, "user_id": "a"})
    assert policy["result"] == {"max_age_days": 90, "max_signatures": 10000, "auto_rotate": False}


@pytest.mark.parametrize(
    "request_fields",
    [
        {"op": "rotate_keys", "reason": ""},
        {"op": "rotate_keys", "reason": "bad\nreason"},
        {"op": "verify_backup", "backup_id": "../../etc/passwd"},
        {"op": "audit_log", "limit": 0},
        {"op": "create_backup", "metadata": {"blob": b"\x00"}},
        {"op": "create_backup", "metadata": {"big": "x" * 20_000}},
        {"op": "sign_batch", "messages": [b""] * (wire.MAX_BATCH_ITEMS + 1)},
        {"op": "register_ritual", "steps": [{"prompt": "q", "expected_response_hash": "nothex"}]},
        {"op": "register_ritual", "steps": []},
    ],
    ids=lambda f: f["op"],
)
async def test_other_invalid_arguments(server: Server, request_fields: dict[str, Any]) -> None:
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    response = await conn.error({"id": 2, "user_id": "a", **request_fields})
    assert response["error"]["code"] == "invalid_argument", response


@pytest.mark.parametrize(
    "metadata",
    [
        {"nested": {1: "int key", "a": "str key"}},  # json.dumps(sort_keys) used to crash here
        {"nested": {1: "int key"}},  # would silently come back as "1"
        {"x": float("nan")},
        {"x": [float("inf")]},
        {"deep": DEEP_BUT_DECODABLE},
    ],
    ids=["mixed-keys", "int-key", "nan", "inf", "deep"],
)
async def test_metadata_must_be_plain_json(server: Server, metadata: dict[str, Any]) -> None:
    # Regression: non-string keys below the top level reached json.dumps and became `internal`.
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    request = {"op": "create_backup", "id": 2, "user_id": "a", "metadata": metadata}
    response = await conn.error(request)
    assert response["error"]["code"] == "invalid_argument", response
    listed = await conn.call({"op": "list_backups", "id": 3, "user_id": "a"})
    assert listed["result"]["backups"] == []


# --------------------------------------------------------------------------- not_found / exists


async def test_not_found(server: Server) -> None:
    conn = await open_wire(server)
    for op in ("sign_message", "delete_wallet", "verify_signature", "rotate_keys", "get_policy"):
        request: dict[str, Any] = {"op": op, "id": 5, "user_id": "ghost"}
        if op in ("sign_message", "verify_signature"):
            request["message"] = b"m"
        if op == "verify_signature":
            request["signature"] = b"s" * 32
        response = await conn.error(request)
        assert response["error"]["code"] == "not_found", (op, response)
        assert response["id"] == 5
        assert "ghost" in response["error"]["message"]
    assert (await conn.call({"op": "create_wallet", "id": 6, "user_id": "a"}))["ok"]
    response = await conn.error(
        {"op": "verify_backup", "id": 7, "user_id": "a", "backup_id": "0" * 32}
    )
    assert response["error"]["code"] == "not_found"


async def test_already_exists(server: Server) -> None:
    conn = await open_wire(server)
    first = await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"})
    response = await conn.error({"op": "create_wallet", "id": 2, "user_id": "a"})
    assert response["error"]["code"] == "already_exists"
    assert response["id"] == 2
    again = await conn.call({"op": "get_wallet_address", "id": 3, "user_id": "a"})
    assert again["result"]["address"] == first["result"]["address"]


# --------------------------------------------------------------------------- forbidden


@pytest.fixture
async def shared_server(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> Server:
    """An in-process server whose socket other uids can reach."""
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    config = make_config(ephemeral=True, socket=str(run / "walletd.sock"), socket_mode=0o666)
    started: Server = await start_server(config)
    return started


async def test_forbidden_for_another_uid(shared_server: Server) -> None:
    conn = await open_wire(shared_server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "root-owned"}))["ok"]
    code = (
        "c = WalletClient(ARGS[0])\n"
        "out = []\n"
        "for call in (lambda: c.sign_message('root-owned', b'x'),\n"
        "             lambda: c.reset_attempts('root-owned')):\n"
        "    try:\n        call(); out.append('ok')\n"
        "    except errors.WalletError as exc:\n        out.append([exc.code, exc.message])\n"
        "out.append(c.hello().protocol)\n"
        "result = out\n"
    )
    result = await trio.to_thread.run_sync(
        lambda: run_as_nobody(code, args=[shared_server.config.socket])
    )
    (sign_code, sign_message), (reset_code, _), protocol = result
    assert sign_code == reset_code == "forbidden"
    assert "another uid" in sign_message
    assert protocol == 1  # the same connection goes on after the refusal


async def test_forbidden_at_the_door(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    config = make_config(
        ephemeral=True, socket=str(run / "walletd.sock"), socket_mode=0o666, allowed_uids=[0]
    )
    server: Server = await start_server(config)
    code = (
        "c = WalletClient(ARGS[0])\n"
        "try:\n    c.hello(); result = 'ok'\n"
        "except errors.WalletError as exc:\n    result = [type(exc).__name__, exc.code]\n"
    )
    result = await trio.to_thread.run_sync(lambda: run_as_nobody(code, args=[config.socket]))
    assert result == ["PermissionDeniedError", "forbidden"]
    assert not server.connections


# --------------------------------------------------------------------------- rituals

STEPS = [{"prompt": "first pet?", "expected_response_hash": "ab" * 32}]


async def test_no_ritual_and_locked(start_server: StartServer, make_config: MakeConfig) -> None:
    server: Server = await start_server(make_config(ephemeral=True, max_attempts=1))
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    for op in ("get_prompts", "get_remaining_attempts", "is_locked"):
        response = await conn.error({"op": op, "id": 2, "user_id": "a"})
        assert response["error"]["code"] == "no_ritual", op
    registered = await conn.call({"op": "register_ritual", "id": 3, "user_id": "a", "steps": STEPS})
    assert registered["result"] == {"steps": 1, "remaining_attempts": 1}
    wrong = "cd" * 32
    failed = await conn.call(
        {"op": "initiate_recovery", "id": 4, "user_id": "a", "responses": [wrong]}
    )
    assert failed["result"]["recovered"] is False
    response = await conn.error(
        {"op": "initiate_recovery", "id": 5, "user_id": "a", "responses": ["ab" * 32]}
    )
    assert response["error"]["code"] == "locked"
    assert "ab" * 32 not in response["error"]["message"]
    locked = await conn.call({"op": "is_locked", "id": 6, "user_id": "a"})
    assert locked["result"] == {"locked": True}


# --------------------------------------------------------------------------- integrity_error


async def test_integrity_error(start_server: StartServer, make_config: MakeConfig) -> None:
    config = make_config()  # on disk: backups are files
    server: Server = await start_server(config)
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    backup = (await conn.call({"op": "create_backup", "id": 2, "user_id": "a"}))["result"]
    path = config.backups_path / f"{backup['backup_id']}.json"
    document = json.loads(path.read_text())
    document["record"]["key_hash"] = "0" * 64
    path.write_text(json.dumps(document))
    response = await conn.error(
        {"op": "verify_backup", "id": 3, "user_id": "a", "backup_id": backup["backup_id"]}
    )
    assert response["error"]["code"] == "integrity_error"
    assert backup["backup_id"] in response["error"]["message"]


# --------------------------------------------------------------------------- storage_error


async def test_storage_error_when_backups_cannot_be_written(
    start_server: StartServer, make_config: MakeConfig, tmp_path: Path
) -> None:
    # The durability tests cover storage_error on the database; this one needs no fault
    # injection: the backup directory's path is taken by a regular file.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    server: Server = await start_server(make_config(backup_dir=str(blocker / "backups")))
    conn = await open_wire(server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "a"}))["ok"]
    before = await conn.call({"op": "audit_log", "id": 2})
    response = await conn.error({"op": "create_backup", "id": 3, "user_id": "a"})
    assert response["error"]["code"] == "storage_error"
    after = await conn.call({"op": "audit_log", "id": 4})
    assert after["result"] == before["result"]  # nothing was recorded


# --------------------------------------------------------------------------- frame_too_large


async def test_frame_too_large_closes_without_reading_the_payload(server: Server) -> None:
    conn = await open_wire(server)
    assert (await conn.call({"op": "hello", "id": 1}))["ok"]
    await conn.stream.send_all(struct.pack(">I", 2 << 20))  # only the prefix, no payload
    response = await conn.receive()
    assert response is not None
    assert response["ok"] is False and response["id"] is None
    assert response["error"]["code"] == "frame_too_large"
    assert str(2 << 20) in response["error"]["message"]
    assert await conn.receive() is None  # EOF: the stream lost its framing


async def test_frames_before_an_oversized_prefix_are_answered_first(server: Server) -> None:
    conn = await open_wire(server)
    hello = encode_frame(msgspec.msgpack.encode({"op": "hello", "id": 7}))
    await conn.stream.send_all(hello + hello.replace(b"\x07", b"\x08") + struct.pack(">I", 2 << 20))
    first, second, refusal = await conn.receive(), await conn.receive(), await conn.receive()
    assert first is not None and first["id"] == 7 and first["ok"]
    assert second is not None and second["id"] == 8 and second["ok"]
    assert refusal is not None and refusal["error"]["code"] == "frame_too_large"
    assert await conn.receive() is None


# --------------------------------------------------------------------------- unavailable


async def test_unavailable_at_the_connection_limit(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, max_connections=1))
    first = await open_wire(server)
    assert (await first.call({"op": "hello", "id": 1}))["ok"]
    second = await open_wire(server)
    response = await second.receive()
    assert response is not None
    assert response == {
        "id": None,
        "ok": False,
        "error": {"code": "unavailable", "message": response["error"]["message"]},
    }
    assert "connection limit" in response["error"]["message"]
    assert await second.receive() is None
    assert (await first.call({"op": "hello", "id": 2}))["ok"]  # the first is unaffected


# --------------------------------------------------------------------------- internal


def test_internal_is_a_bug_and_says_nothing() -> None:
    """`internal` is unreachable from the wire by design (every refusal is a RequestError);
    it is what a handler bug turns into. A failing handler shows the mapping."""

    def broken(peer: Peer, request: Any) -> Any:
        raise RuntimeError("secret key bytes deadbeef")

    handlers: dict[Any, Any] = {t: broken for t in wire.REQUEST_TYPES}
    dispatcher = Dispatcher(handlers)
    request = dispatcher.decode(msgspec.msgpack.encode({"op": "hello", "id": 9}))
    assert isinstance(request, wire.Hello)
    response = dispatcher.run(Peer(uid=0, gid=0, pid=1, is_admin=True), request)
    assert isinstance(response, wire.ErrorResponse)
    assert response.id == 9
    assert response.error.code == "internal"
    assert "deadbeef" not in response.error.message


# --------------------------------------------------------------------------- client mapping


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("bad_request", e.ProtocolError),
        ("unknown_op", e.ProtocolError),
        ("frame_too_large", e.ProtocolError),
        ("invalid_argument", e.InvalidArgumentError),
        ("not_found", e.WalletNotFoundError),
        ("already_exists", e.WalletExistsError),
        ("forbidden", e.PermissionDeniedError),
        ("locked", e.RitualLockedError),
        ("no_ritual", e.RitualError),
        ("integrity_error", e.BackupIntegrityError),
        ("unavailable", e.DaemonUnavailableError),
        ("storage_error", e.StorageError),
        ("internal", e.WalletError),
        ("from_a_newer_daemon", e.WalletError),
    ],
)
def test_error_codes_map_to_exceptions(code: str, cls: type[e.WalletError]) -> None:
    exc = e.error_from_wire(code, "why")
    assert type(exc) is cls
    assert exc.code == code and exc.message == "why" and str(exc) == "why"
    assert isinstance(exc, e.WalletError)


def test_every_code_has_a_mapping() -> None:
    mapped = {c for c in wire.ErrorCode if type(e.error_from_wire(c, "")) is not e.WalletError}
    assert set(wire.ErrorCode) - mapped == {wire.ErrorCode.INTERNAL}
    assert issubclass(e.StorageError, e.WalletKeyError)
    assert issubclass(e.RitualLockedError, e.RitualError)
