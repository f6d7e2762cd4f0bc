"""What each client method says, shared by the blocking and the trio client (sans-IO).

Each public function here describes one client method: the request to send and how to turn
the daemon's result into the method's return value (a :class:`Call`). The request numbering,
framing and response mapping are in :mod:`wallet_client.client_core`; the signing-policy
calls in :mod:`wallet_client.calls_policy`. The two clients only move bytes; everything about
*what* is said lives here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

import walletd_wire as wire

# Re-exported: the clients and older imports find the core here too.
from .client_core import MAX_RESPONSE_BYTES as MAX_RESPONSE_BYTES
from .client_core import Call as Call
from .client_core import ClientCore as ClientCore
from .client_core import _call, _same
from .errors import InvalidArgumentError, ProtocolError, RitualError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_SOCKET = "/run/walletd/walletd.sock"
DEFAULT_TIMEOUT = 30.0


def hash_response(answer: str) -> str:
    """The SHA-256 hex of a ritual answer: what the client sends instead of the answer.

    The answer is hashed exactly as typed (UTF-8, no trimming or case folding), so the same
    text must be given at registration and at recovery.
    """
    return hashlib.sha256(answer.encode("utf-8")).hexdigest()


class BackupList(list[dict[str, Any]]):
    """``list_backups`` result: the records (newest first) plus files that failed to verify."""

    problems: list[dict[str, str]]

    def __init__(self, records: Iterable[dict[str, Any]], problems: list[dict[str, str]]):
        super().__init__(records)
        self.problems = problems


# --------------------------------------------------------------------------- calls


def hello() -> Call[wire.HelloResult]:
    return _call(wire.Hello(id=0), wire.HelloResult, _same)


def status() -> Call[wire.StatusResult]:
    return _call(wire.Status(id=0), wire.StatusResult, _same)


def create_wallet(user_id: str, key_type: str = "hmac-sha256") -> Call[str]:
    return _call(
        wire.CreateWallet(id=0, user_id=user_id, key_type=key_type), wire.AddressResult, _address
    )


def get_public_key(user_id: str, version: int | None = None) -> Call[wire.PublicKeyResult]:
    return _call(
        wire.GetPublicKey(id=0, user_id=user_id, version=version), wire.PublicKeyResult, _same
    )


def get_wallet_address(user_id: str) -> Call[str | None]:
    return _call(
        wire.GetWalletAddress(id=0, user_id=user_id), wire.AddressResult, lambda r: r.address
    )


def has_wallet(user_id: str) -> Call[bool]:
    return _call(wire.HasWallet(id=0, user_id=user_id), wire.ExistsResult, lambda r: r.exists)


def list_wallets() -> Call[dict[str, str]]:
    return _call(wire.ListWallets(id=0), wire.WalletsResult, lambda r: r.wallets)


def delete_wallet(user_id: str) -> Call[bool]:
    return _call(wire.DeleteWallet(id=0, user_id=user_id), wire.DeletedResult, lambda r: r.deleted)


# The signing calls (sign_message, sign_typed_data and their _detailed forms) are in
# wallet_client.approval_calls: their answer may be a signature held for approval.


# MessagePack integers are at most 64 bits; EIP-712's uint256 and int256 are not. Larger
# values travel as decimal strings, which EIP-712 (and walletd) read as the same integer.
_MSGPACK_INT_MIN, _MSGPACK_INT_MAX = -(2**63), 2**64 - 1


def _wire_typed_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _MSGPACK_INT_MIN <= value <= _MSGPACK_INT_MAX:
        return str(value)
    if isinstance(value, Mapping):
        return {key: _wire_typed_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire_typed_value(item) for item in value]
    return value


def typed_request(
    user_id: str, typed_data: Mapping[str, Any], purpose: str | None, wait_s: float | None
) -> wire.SignTypedData:
    """A ``sign_typed_data`` request, integers beyond 64 bits as decimal strings."""
    typed = _wire_typed_value(dict(typed_data))
    return wire.SignTypedData(
        id=0, user_id=user_id, typed_data=typed, purpose=purpose, wait_s=wait_s
    )


def verify_signature(
    user_id: str, message: bytes, signature: bytes, version: int | None = None
) -> Call[bool]:
    request = wire.VerifySignature(
        id=0,
        user_id=user_id,
        message=bytes(message),
        signature=bytes(signature),
        version=version,
    )
    return _call(request, wire.ValidResult, lambda r: r.valid)


def sign_batch(user_id: str, messages: Sequence[bytes]) -> Call[list[wire.SignedItem]]:
    request = wire.SignBatch(id=0, user_id=user_id, messages=[bytes(m) for m in messages])
    return _call(request, wire.SignBatchResult, lambda r: r.items)


def verify_batch(
    user_id: str, items: Iterable[tuple[bytes, bytes]], version: int | None = None
) -> Call[list[bool]]:
    pairs = [wire.VerifyItem(bytes(message), bytes(signature)) for message, signature in items]
    return _call(
        wire.VerifyBatch(id=0, user_id=user_id, items=pairs, version=version),
        wire.VerifyBatchResult,
        lambda r: r.valid,
    )


def rotate_keys(user_id: str, reason: str = "manual") -> Call[str]:
    return _call(
        wire.RotateKeys(id=0, user_id=user_id, reason=reason), wire.AddressResult, _address
    )


def needs_rotation(user_id: str) -> Call[bool]:
    return _call(
        wire.NeedsRotation(id=0, user_id=user_id),
        wire.NeedsRotationResult,
        lambda r: r.needs_rotation,
    )


def rotation_status(user_id: str) -> Call[wire.RotationStatusResult]:
    return _call(wire.RotationStatus(id=0, user_id=user_id), wire.RotationStatusResult, _same)


def rotation_history(
    user_id: str, *, limit: int = 1000, before_seq: int | None = None
) -> Call[list[wire.RotationRecord]]:
    return _call(
        wire.RotationHistory(id=0, user_id=user_id, limit=limit, before_seq=before_seq),
        wire.RotationHistoryResult,
        lambda r: r.records,
    )


def get_policy(user_id: str) -> Call[wire.RotationPolicy]:
    return _call(wire.GetPolicy(id=0, user_id=user_id), wire.RotationPolicy, _same)


def set_policy(
    user_id: str,
    *,
    max_age_days: int | None = None,
    max_signatures: int | None = None,
    auto_rotate: bool | None = None,
) -> Call[wire.RotationPolicy]:
    request = wire.SetPolicy(
        id=0,
        user_id=user_id,
        max_age_days=max_age_days,
        max_signatures=max_signatures,
        auto_rotate=auto_rotate,
    )
    return _call(request, wire.RotationPolicy, _same)


def backup_wallet(user_id: str) -> Call[dict[str, Any]]:
    return _call(wire.BackupWallet(id=0, user_id=user_id), wire.BackupInfo, msgspec.structs.asdict)


def create_backup(user_id: str, metadata: Mapping[str, Any] | None = None) -> Call[dict[str, Any]]:
    request = wire.CreateBackup(
        id=0, user_id=user_id, metadata=None if metadata is None else dict(metadata)
    )
    return _call(request, wire.BackupRecord, msgspec.structs.asdict)


def list_backups(user_id: str) -> Call[BackupList]:
    def convert(result: wire.BackupListResult) -> BackupList:
        return BackupList(
            (msgspec.structs.asdict(b) for b in result.backups),
            [msgspec.structs.asdict(x) for x in result.problems],
        )

    return _call(wire.ListBackups(id=0, user_id=user_id), wire.BackupListResult, convert)


def verify_backup(user_id: str, backup_id: str) -> Call[bool]:
    return _call(
        wire.VerifyBackup(id=0, user_id=user_id, backup_id=backup_id),
        wire.BackupVerifyResult,
        lambda r: r.valid,
    )


def delete_backup(user_id: str, backup_id: str) -> Call[bool]:
    return _call(
        wire.DeleteBackup(id=0, user_id=user_id, backup_id=backup_id),
        wire.DeletedResult,
        lambda r: r.deleted,
    )


def audit_log(
    user_id: str | None = None,
    *,
    since: float | None = None,
    limit: int = 1000,
    before_seq: int | None = None,
) -> Call[list[wire.AuditRecord]]:
    return _call(
        wire.AuditLog(id=0, user_id=user_id, since=since, limit=limit, before_seq=before_seq),
        wire.AuditLogResult,
        lambda r: r.records,
    )


def audit_verify() -> Call[wire.AuditVerifyResult]:
    return _call(wire.AuditVerify(id=0), wire.AuditVerifyResult, _same)


def audit_head() -> Call[wire.AuditHeadResult]:
    return _call(wire.AuditHead(id=0), wire.AuditHeadResult, _same)


def register_ritual(user_id: str, steps: Sequence[wire.RitualStep]) -> Call[int]:
    if not steps:
        # As in the library this replaces: an empty ritual is refused before anything is sent.
        raise RitualError("a ritual needs at least one step", code="invalid_argument")
    sent = [wire.RitualStep(s.prompt, s.expected_response_hash) for s in steps]
    return _call(
        wire.RegisterRitual(id=0, user_id=user_id, steps=sent),
        wire.RitualInfoResult,
        lambda r: r.steps,
    )


def unregister_ritual(user_id: str) -> Call[bool]:
    return _call(
        wire.UnregisterRitual(id=0, user_id=user_id), wire.RemovedResult, lambda r: r.removed
    )


def has_ritual(user_id: str) -> Call[bool]:
    return _call(wire.HasRitual(id=0, user_id=user_id), wire.ExistsResult, lambda r: r.exists)


def get_prompts(user_id: str) -> Call[list[str]]:
    return _call(wire.GetPrompts(id=0, user_id=user_id), wire.PromptsResult, lambda r: r.prompts)


def get_remaining_attempts(user_id: str) -> Call[int]:
    return _call(
        wire.GetRemainingAttempts(id=0, user_id=user_id),
        wire.RemainingResult,
        lambda r: r.remaining,
    )


def is_locked(user_id: str) -> Call[bool]:
    return _call(wire.IsLocked(id=0, user_id=user_id), wire.LockedResult, lambda r: r.locked)


def initiate_recovery_result(user_id: str, answers: Sequence[str]) -> Call[wire.RecoveryResult]:
    """Answer a ritual with the answers as typed; only their :func:`hash_response` is sent.

    The daemon counts every attempt, so anything that is not a list of strings is refused
    here, before a request exists: a hash-shaped mistake must not burn an attempt silently.
    """
    return _call(
        wire.InitiateRecovery(id=0, user_id=user_id, responses=hash_answers(answers)),
        wire.RecoveryResult,
        _same,
    )


def hash_answers(answers: Sequence[str]) -> list[str]:
    """:func:`hash_response` of each answer; InvalidArgumentError for a non-string item.

    A bare string is refused too: it is a sequence of one-character answers, never meant.
    """
    if isinstance(answers, str | bytes | bytearray) or not isinstance(answers, Iterable):
        raise InvalidArgumentError("the answers must be a list of strings, one per prompt")
    hashed = []
    for number, answer in enumerate(answers, 1):
        if not isinstance(answer, str):
            # The type only: the value may be a secret.
            raise InvalidArgumentError(
                f"answer {number} must be a string, not {type(answer).__name__}"
            )
        hashed.append(hash_response(answer))
    return hashed


def reset_attempts(user_id: str) -> Call[int]:
    return _call(
        wire.ResetAttempts(id=0, user_id=user_id), wire.RemainingResult, lambda r: r.remaining
    )


def _address(result: wire.AddressResult) -> str:
    if result.address is None:
        raise ProtocolError("the daemon returned no address")
    return result.address


def recovered_address(result: wire.RecoveryResult) -> str:
    """``recover()``'s return value: the new address, or RitualError when the ritual failed."""
    if not result.recovered or result.address is None:
        raise RitualError("the ritual was not answered correctly", code="recovery_failed")
    return result.address
