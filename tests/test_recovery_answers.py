"""The clients' recovery, rotation-record and exception fixes for Codomyrmex callers (issue 13).

Recovery takes the answers as typed and hashes them in the client, so a caller switching from
the in-process library neither locks itself out nor sends a secret; anything that is not a
list of strings is refused before a request exists, so no attempt is burned by a type error.
"""

from __future__ import annotations

import msgspec
import pytest

import walletd_wire as wire
from wallet_client import AsyncWalletClient, RitualStep, hash_response
from wallet_client.calls import hash_answers, initiate_recovery_result
from wallet_client.errors import (
    InvalidArgumentError,
    RitualError,
    RitualLockedError,
    StorageError,
    WalletError,
    WalletKeyError,
    WalletNotFoundError,
    error_from_wire,
)

ANSWERS = ["Rex", "Elm Street"]
STEPS = [
    RitualStep("Pet?", hash_response("Rex")),
    RitualStep("Street?", hash_response("Elm Street")),
]


@pytest.fixture
async def alice(client: AsyncWalletClient) -> str:
    address = await client.create_wallet("alice")
    await client.register_ritual("alice", STEPS)
    return address


async def test_plain_answers_recover(client: AsyncWalletClient, alice: str) -> None:
    new = await client.recover("alice", ANSWERS)
    assert new != alice
    assert await client.initiate_recovery("alice", list(ANSWERS)) is True


async def test_hashes_passed_as_answers_are_a_failed_attempt(
    client: AsyncWalletClient, alice: str
) -> None:
    # What a caller of the old hash-taking API would now send: hashed twice, so wrong.
    assert not await client.initiate_recovery("alice", [hash_response(a) for a in ANSWERS])
    assert await client.get_remaining_attempts("alice") == 4


@pytest.mark.parametrize(
    "answers",
    [["Rex", b"Elm Street"], ["Rex", None], [1, 2], "Rex", b"Rex", 42],
    ids=["bytes_item", "none_item", "ints", "bare_str", "bare_bytes", "not_iterable"],
)
async def test_non_string_answers_refused_before_counting(
    client: AsyncWalletClient, alice: str, answers: object
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await client.initiate_recovery("alice", answers)  # type: ignore[arg-type]
    assert "Elm" not in str(info.value) and "Rex" not in str(info.value)
    with pytest.raises(InvalidArgumentError):
        await client.recover("alice", answers)  # type: ignore[arg-type]
    assert await client.get_remaining_attempts("alice") == 5


def test_only_hashes_go_on_the_wire() -> None:
    call = initiate_recovery_result("alice", ANSWERS)
    assert isinstance(call.request, wire.InitiateRecovery)
    assert call.request.responses == [hash_response(a) for a in ANSWERS]
    assert hash_answers([]) == []


def test_rotation_defaults_are_codomyrmex_and_the_wire_is_unchanged() -> None:
    policy = wire.RotationPolicy()
    assert (policy.max_age_days, policy.max_signatures, policy.auto_rotate) == (90, 10000, False)
    record = wire.RotationRecord("u1", "0xaaa", "0xbbb", 1.5)
    assert record.reason == "scheduled"
    # A daemon's full record still encodes to the same map, field for field, in order; `seq`
    # (for paging, issue 12) was added at the end.
    full = wire.RotationRecord("u1", "0xaaa", "0xbbb", 1.5, "manual", 0, 3)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(full))
    assert list(decoded) == [
        "user_id", "old_wallet_id", "new_wallet_id", "timestamp", "reason", "actor_uid", "seq"
    ]  # fmt: skip
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(full), type=wire.RotationRecord) == full


async def test_status_reports_max_attempts(client: AsyncWalletClient) -> None:
    assert (await client.status()).max_attempts == 5


def test_errors_take_codomyrmex_forms_and_keep_wire_codes() -> None:
    assert WalletError().code == "internal" and str(WalletError()) == ""
    err = WalletError("msg", "CUSTOM", {"k": 1})
    assert (err.code, err.details, err.message) == ("CUSTOM", {"k": 1}, "msg")
    assert err.error_dict == {
        "error_type": "WalletError",
        "code": "CUSTOM",
        "message": "msg",
        "details": {"k": 1},
    }
    nf = WalletNotFoundError("bob")
    assert (str(nf), nf.user_id, nf.code, nf.details) == (
        "Wallet not found: bob",
        "bob",
        "not_found",
        {"user_id": "bob"},
    )
    assert str(WalletNotFoundError()) == "Wallet not found"
    assert str(WalletNotFoundError("u", message="Custom")) == "Custom: u"
    key = WalletKeyError(key_type="RSA")
    assert (str(key), key.key_type, key.details) == (
        "Key operation failed",
        "RSA",
        {"key_type": "RSA"},
    )
    assert StorageError().code == "storage_error" and isinstance(StorageError(), WalletKeyError)
    ritual = RitualError(ritual_step="step2")
    assert (str(ritual), ritual.ritual_step, ritual.code) == ("Ritual failed", "step2", "no_ritual")
    assert RitualLockedError().code == "locked"


def test_wire_errors_are_built_by_keyword() -> None:
    # A positional build would have made the message a user id ("Wallet not found: ...").
    err = error_from_wire("not_found", "no wallet for user 'x'")
    assert isinstance(err, WalletNotFoundError)
    assert (str(err), err.code, err.user_id) == ("no wallet for user 'x'", "not_found", "")
    ritual = error_from_wire("locked", "locked: too many attempts")
    assert isinstance(ritual, RitualLockedError) and str(ritual) == "locked: too many attempts"
