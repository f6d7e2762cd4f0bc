"""Every error code in protocol.ErrorCode, produced by a real daemon over a real socket.

Each non-fatal error is followed by a ``hello`` on the same connection: one bad request gets
one error response, and only a broken frame closes a connection.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import walletd_wire as wire
from wallet_client import errors as e
from walletd.model.peer import Peer
from walletd.ops.dispatch import Dispatcher
from walletd.server.serve import Server
from walletd_wire.framing import encode_frame

from . import children
from .support import MakeConfig, StartServer, Wire, call_as_nobody


async def open_wire(server: Server) -> Wire:
    return await Wire.open(server.config.socket)


# {"op": [[[...]]], "id": 1}: 100 000 nested arrays where the op should be.
DEEP_OP = b"\x82\xa2op" + b"\x91" * 100_000 + b"\xc0" + b"\xa2id\x01"


# --------------------------------------------------------------------------- bad_request
# The table of bad payloads (and of every code below that one payload decides) is in
# test_dispatch_errors.py, run against the dispatcher alone. Here: one case per code, as a
# real daemon answers it on a real socket, and the connection serving on after it.


async def test_bad_request(server: Server) -> None:
    conn = await open_wire(server)
    # An empty frame and a frame nested too deeply for msgspec: both once escaped as
    # exceptions (the second one stopped the whole daemon).
    for payload, names in ((b"", "empty"), (DEEP_OP, "nested too deeply")):
        response = await conn.error(payload)
        assert response["error"]["code"] == "bad_request"
        assert response["id"] is None
        assert names in response["error"]["message"]
    response = await conn.error(msgspec.msgpack.encode({"op": "hello", "id": 7, "extra": True}))
    assert response["error"]["code"] == "bad_request"
    assert response["id"] == 7
    assert "extra" in response["error"]["message"]


# --------------------------------------------------------------------------- unknown_op


async def test_unknown_op(server: Server) -> None:
    conn = await open_wire(server)
    response = await conn.error({"op": "frobnicate", "id": 12})
    assert response["id"] == 12
    assert response["error"]["code"] == "unknown_op"
    assert "frobnicate" in response["error"]["message"]


# --------------------------------------------------------------------------- invalid_argument


async def test_invalid_argument(server: Server) -> None:
    conn = await open_wire(server)
    response = await conn.error({"op": "create_wallet", "id": 1, "user_id": "line\nfeed"})
    assert response["error"]["code"] == "invalid_argument", response
    assert response["id"] == 1
    assert "user_id" in response["error"]["message"]


# --------------------------------------------------------------------------- not_found / exists


async def test_not_found(server: Server) -> None:
    conn = await open_wire(server)
    response = await conn.error(
        {"op": "sign_message", "id": 5, "user_id": "ghost", "message": b"m"}
    )
    assert response["error"]["code"] == "not_found", response
    assert response["id"] == 5
    assert "ghost" in response["error"]["message"]


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


@pytest.mark.root
async def test_forbidden_for_another_uid(shared_server: Server) -> None:
    conn = await open_wire(shared_server)
    assert (await conn.call({"op": "create_wallet", "id": 1, "user_id": "root-owned"}))["ok"]
    socket_path = shared_server.config.socket
    result = await trio.to_thread.run_sync(
        lambda: call_as_nobody(children.refused_on_root_owned, socket_path, "root-owned")
    )
    (sign_code, sign_message), (reset_code, _), protocol = result
    assert sign_code == reset_code == "forbidden"
    assert "another uid" in sign_message
    assert protocol == 1  # the same connection goes on after the refusal


@pytest.mark.root
async def test_forbidden_at_the_door(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    config = make_config(
        ephemeral=True, socket=str(run / "walletd.sock"), socket_mode=0o666, allowed_uids=[0]
    )
    server: Server = await start_server(config)
    result = await trio.to_thread.run_sync(
        lambda: call_as_nobody(children.hello_or_refusal, config.socket)
    )
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
        ("quota_exceeded", e.QuotaExceededError),
        ("internal", e.WalletError),
        ("approval_denied", e.ApprovalDeniedError),
        ("approval_timeout", e.ApprovalTimeoutError),
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
