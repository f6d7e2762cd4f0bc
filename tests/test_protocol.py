"""The wire contract (walletd_wire): msgspec round trips and the exact bytes.

The pinned hex strings below are the examples in docs/PROTOCOL.md; if one changes, the wire
changed, and every client in the field with it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio

import walletd_wire as wire
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

H = "a" * 64  # a SHA-256 hex

# One example of every request, with every optional field set where there is one.
EXAMPLES: dict[str, wire.Request] = {
    "hello": wire.Hello(id=1),
    "status": wire.Status(id=2),
    "create_wallet": wire.CreateWallet(id=3, user_id="alice", key_type="ed25519"),
    "get_wallet_address": wire.GetWalletAddress(id=4, user_id="alice"),
    "has_wallet": wire.HasWallet(id=5, user_id="alice"),
    "list_wallets": wire.ListWallets(id=6),
    "delete_wallet": wire.DeleteWallet(id=7, user_id="alice"),
    "sign_message": wire.SignMessage(
        id=8, user_id="alice", message=b"\x00\xffhi", purpose="log in", wait_s=30.0
    ),
    "verify_signature": wire.VerifySignature(
        id=9, user_id="alice", message=b"m", signature=b"\x01" * 32, version=2
    ),
    "sign_batch": wire.SignBatch(id=10, user_id="alice", messages=[b"a", b"", b"\x00"]),
    "verify_batch": wire.VerifyBatch(
        id=11, user_id="alice", items=[wire.VerifyItem(b"a", b"s" * 32), wire.VerifyItem(b"", b"")]
    ),
    "rotate_keys": wire.RotateKeys(id=12, user_id="alice", reason="compromised"),
    "needs_rotation": wire.NeedsRotation(id=13, user_id="alice"),
    "rotation_status": wire.RotationStatus(id=14, user_id="alice"),
    "rotation_history": wire.RotationHistory(id=15, user_id="alice"),
    "get_policy": wire.GetPolicy(id=16, user_id="alice"),
    "set_policy": wire.SetPolicy(
        id=17, user_id="alice", max_age_days=30, max_signatures=100, auto_rotate=True
    ),
    "backup_wallet": wire.BackupWallet(id=18, user_id="alice"),
    "create_backup": wire.CreateBackup(
        id=19, user_id="alice", metadata={"host": "a", "n": [1, 2.5]}
    ),
    "list_backups": wire.ListBackups(id=20, user_id="alice"),
    "verify_backup": wire.VerifyBackup(id=21, user_id="alice", backup_id="0" * 32),
    "delete_backup": wire.DeleteBackup(id=22, user_id="alice", backup_id="0" * 32),
    "audit_log": wire.AuditLog(id=23, user_id="alice", since=1.5, limit=10),
    "audit_verify": wire.AuditVerify(id=24),
    "register_ritual": wire.RegisterRitual(
        id=25, user_id="alice", steps=[wire.RitualStep("first pet?", H)]
    ),
    "unregister_ritual": wire.UnregisterRitual(id=26, user_id="alice"),
    "has_ritual": wire.HasRitual(id=27, user_id="alice"),
    "get_prompts": wire.GetPrompts(id=28, user_id="alice"),
    "get_remaining_attempts": wire.GetRemainingAttempts(id=29, user_id="alice"),
    "is_locked": wire.IsLocked(id=30, user_id="alice"),
    "initiate_recovery": wire.InitiateRecovery(id=31, user_id="alice", responses=[H]),
    "reset_attempts": wire.ResetAttempts(id=32, user_id="alice"),
    "get_public_key": wire.GetPublicKey(id=33, user_id="alice", version=1),
    "sign_typed_data": wire.SignTypedData(
        id=34,
        user_id="alice",
        typed_data={"types": {}, "primaryType": "Mail"},
        purpose="mail",
        wait_s=5.0,
    ),
    "get_signing_policy": wire.GetSigningPolicy(id=35, user_id="alice"),
    "set_signing_policy": wire.SetSigningPolicy(
        id=36,
        user_id="alice",
        layer="owner",
        rules=[{"id": "orders", "action": "allow", "match": {"prefix": "order:"}}],
        expected_version=0,
    ),
    "explain_signing": wire.ExplainSigning(
        id=37, user_id="alice", message=b"order:1", for_op="sign_batch"
    ),
    "pause_signing": wire.PauseSigning(id=38, scope="uid", uid=1000),
    "resume_signing": wire.ResumeSigning(id=39, scope="wallet", user_id="alice"),
    "list_pending": wire.ListPending(id=35),
    "approve": wire.Approve(
        id=36, approval_id="ap_1", lease=wire.LeaseSpec(scope="process", ttl_s=600, max_uses=20)
    ),
    "deny": wire.Deny(id=37, approval_id="ap_1", reason="not this one"),
    "await_approval": wire.AwaitApproval(id=38, approval_id="ap_1", timeout_s=10),
    "cancel_approval": wire.CancelApproval(id=39, approval_id="ap_1"),
    "list_leases": wire.ListLeases(id=40),
    "revoke_lease": wire.RevokeLease(id=41, lease_id="ls_1"),
    "audit_head": wire.AuditHead(id=42),
}

encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(wire.AnyRequest)


def test_examples_cover_every_op() -> None:
    assert set(EXAMPLES) == set(wire.OPS)
    assert len(wire.OPS) == len(set(wire.OPS)) == len(wire.REQUEST_TYPES)


@pytest.mark.parametrize("op", wire.OPS)
def test_every_request_round_trips(op: str) -> None:
    request = EXAMPLES[op]
    encoded = encoder.encode(request)
    assert request_decoder.decode(encoded) == request
    plain = msgspec.msgpack.decode(encoded)
    assert isinstance(plain, dict)
    assert plain["op"] == op
    assert plain["id"] == request.id
    # Every field is on the wire under its own name, and nothing else is.
    assert set(plain) == {"op", *request.__struct_fields__}


def test_a_sign_request_without_purpose_encodes_as_before_the_field() -> None:
    # Older daemons forbid unknown fields: a client that sends no purpose must not send nil.
    plain = msgspec.msgpack.decode(encoder.encode(wire.SignMessage(id=1, user_id="a", message=b"")))
    assert set(plain) == {"op", "id", "user_id", "message"}


@pytest.mark.parametrize("op", wire.OPS)
def test_optional_fields_may_be_omitted(op: str) -> None:
    # A request sent by a client that knows only the required fields decodes with defaults.
    request = EXAMPLES[op]
    cls = type(request)
    fields = msgspec.structs.fields(cls)
    defaults = {f.name: f.default for f in fields if not f.required}
    required = {f.name: getattr(request, f.name) for f in fields if f.required}
    decoded = request_decoder.decode(msgspec.msgpack.encode({"op": op, **required}))
    assert type(decoded) is cls
    for name, default in defaults.items():
        assert getattr(decoded, name) == default


def test_request_ids_are_bounded_unsigned() -> None:
    top = 2**63 - 1
    assert request_decoder.decode(msgspec.msgpack.encode({"op": "hello", "id": top})).id == top
    for bad in (-1, 2**63, 2**64 - 1, True, "1", None):
        with pytest.raises(msgspec.ValidationError):
            request_decoder.decode(msgspec.msgpack.encode({"op": "hello", "id": bad}))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="surprise"):
        request_decoder.decode(msgspec.msgpack.encode({"op": "hello", "id": 1, "surprise": 1}))


def test_error_codes_are_the_documented_closed_set() -> None:
    assert [c.value for c in wire.ErrorCode] == [
        "bad_request",
        "unknown_op",
        "invalid_argument",
        "not_found",
        "already_exists",
        "forbidden",
        "locked",
        "no_ritual",
        "integrity_error",
        "frame_too_large",
        "unavailable",
        "storage_error",
        "internal",
        "policy_denied",
        "paused",
        "quota_exceeded",
        "approval_denied",
        "approval_timeout",
    ]


def test_responses_decode_for_clients() -> None:
    ok = encoder.encode(wire.ok(7, wire.AddressResult("0x" + "0" * 32)))
    assert msgspec.msgpack.decode(ok) == {
        "id": 7,
        "ok": True,
        "result": {"address": "0x" + "0" * 32},
    }
    response = msgspec.msgpack.Decoder(wire.Response).decode(ok)
    assert response.ok and response.id == 7 and response.error is None
    assert (
        msgspec.msgpack.decode(response.result, type=wire.AddressResult).address == "0x" + "0" * 32
    )

    err = encoder.encode(wire.error(None, wire.ErrorCode.BAD_REQUEST, "no"))
    assert msgspec.msgpack.decode(err) == {
        "id": None,
        "ok": False,
        "error": {"code": "bad_request", "message": "no"},
    }
    response = msgspec.msgpack.Decoder(wire.Response).decode(err)
    assert not response.ok and response.id is None
    assert response.error == wire.ReceivedError("bad_request", "no")
    assert len(response.result) == 0


def test_results_tolerate_fields_added_later() -> None:
    # Schema evolution: a newer daemon may add result fields; an older client ignores them.
    encoded = msgspec.msgpack.encode({"address": "0xab", "added_in_v2": [1, 2]})
    assert msgspec.msgpack.decode(encoded, type=wire.AddressResult).address == "0xab"


# --------------------------------------------------------------------------- pinned bytes

HELLO_REQUEST_HEX = "0000000e82a26f70a568656c6c6fa2696401"
SIGN_REQUEST_HEX = (
    "0000003284a26f70ac7369676e5f6d657373616765a7757365725f6964a5616c696365a76d657373616765"
    "c40568656c6c6fa2696402"
)
# {"id": 2, "ok": true, "result": {"signature": bytes(range(32)), "address": "0x" + "ab" * 16,
#  "key_type": "hmac-sha256", "version": 1}}
SIGN_RESPONSE_HEX = (
    "0000008783a2696402a26f6bc3a6726573756c7484a97369676e6174757265c420"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "a761646472657373d92230786162616261626162616261626162616261626162616261626162616261626162"
    "a86b65795f74797065ab686d61632d736861323536a776657273696f6e01"
)
# What walletd answers to SIGN_REQUEST when alice has no wallet (error id echoes the request).
NOT_FOUND_RESPONSE_HEX = (
    "0000004283a2696402a26f6bc2a56572726f7282a4636f6465a96e6f745f666f756e64a76d657373616765"
    "ba6e6f2077616c6c657420666f7220757365722027616c69636527"
)


def test_pinned_hello_request() -> None:
    frame = encode_frame(encoder.encode(wire.Hello(id=1)))
    assert frame.hex() == HELLO_REQUEST_HEX
    # 4-byte length 14, then fixmap(2) {"op": "hello", "id": 1}
    assert msgspec.msgpack.decode(frame[4:]) == {"op": "hello", "id": 1}


def test_pinned_sign_message_request() -> None:
    frame = encode_frame(encoder.encode(wire.SignMessage(id=2, user_id="alice", message=b"hello")))
    assert frame.hex() == SIGN_REQUEST_HEX
    # message is MessagePack bin (c4), not str: messages are bytes in, bytes out.
    assert msgspec.msgpack.decode(frame[4:]) == {
        "op": "sign_message",
        "user_id": "alice",
        "message": b"hello",
        "id": 2,
    }


def test_pinned_sign_message_response() -> None:
    result = wire.SignatureResult(bytes(range(32)), "0x" + "ab" * 16)
    frame = encode_frame(encoder.encode(wire.ok(2, result)))
    assert frame.hex() == SIGN_RESPONSE_HEX


async def test_pinned_bytes_over_a_real_socket(server: Server) -> None:
    stream = await trio.open_unix_socket(server.config.socket)
    async with stream:
        await stream.send_all(bytes.fromhex(SIGN_REQUEST_HEX))
        frames = FrameDecoder()
        while not (got := frames.frames()):
            frames.feed(await stream.receive_some(4096))
        assert got[0] == bytes.fromhex(NOT_FOUND_RESPONSE_HEX)[4:]
        await stream.send_all(bytes.fromhex(HELLO_REQUEST_HEX))
        while not (got := frames.frames()):
            frames.feed(await stream.receive_some(4096))
        hello: dict[str, Any] = msgspec.msgpack.decode(got[0])
        assert hello["id"] == 1 and hello["ok"] is True
        assert hello["result"]["protocol"] == wire.PROTOCOL_VERSION == 1
        assert hello["result"]["ops"] == list(wire.OPS)
