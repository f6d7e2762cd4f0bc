"""Results: the ``result`` map of a successful response, one Struct per shape.

Results are encoded by the daemon and decoded by the clients with the type the call expects;
docs/PROTOCOL.md lists which operation returns which.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from .envelope import ErrorBody

__all__ = [
    "AddressResult",
    "AuditLogResult",
    "AuditRecord",
    "AuditVerifyResult",
    "BackupInfo",
    "BackupListResult",
    "BackupProblem",
    "BackupRecord",
    "BackupVerifyResult",
    "DeletedResult",
    "ExistsResult",
    "HelloResult",
    "LockedResult",
    "NeedsRotationResult",
    "PromptsResult",
    "PublicKeyResult",
    "RecoveryResult",
    "RemainingResult",
    "RemovedResult",
    "RitualInfoResult",
    "RotationHistoryResult",
    "RotationPolicy",
    "RotationRecord",
    "RotationStatusResult",
    "SignBatchResult",
    "SignatureResult",
    "SignedItem",
    "StatusResult",
    "ValidResult",
    "VerifyBatchResult",
    "WalletsResult",
]


class HelloResult(Struct):
    protocol: int
    server: str
    ops: list[str]
    key_types: list[str] = []


class StatusResult(Struct):
    uptime_s: float
    wallets: int  # all wallets for an admin, the caller's own otherwise
    connections: int
    server: str = ""
    ephemeral: bool = False
    requests: int = 0
    max_attempts: int = 0  # recovery attempts before lockout; 0: an older daemon, unknown


class AddressResult(Struct):
    address: str | None


class ExistsResult(Struct):
    exists: bool


class WalletsResult(Struct):
    wallets: dict[str, str]  # user_id -> address
    key_types: dict[str, str] = {}  # user_id -> key type


class DeletedResult(Struct):
    deleted: bool


class SignatureResult(Struct, gc=False):
    signature: bytes
    address: str  # the key that made it
    key_type: str = "hmac-sha256"
    version: int = 1  # which of the wallet's keys made it (get_public_key(version=...))


class PublicKeyResult(Struct):
    key_type: str
    public_key: bytes  # Ed25519: 32 bytes; secp256k1: 33-byte compressed SEC1
    address: str
    version: int
    created_at: float


class ValidResult(Struct):
    valid: bool


class SignedItem(Struct, omit_defaults=True):
    signature: bytes | None = None
    address: str | None = None  # which key signed this item (rotation may happen mid-batch)
    error: ErrorBody | None = None
    version: int | None = None  # that key's version


class SignBatchResult(Struct):
    items: list[SignedItem]


class VerifyBatchResult(Struct):
    valid: list[bool]


class NeedsRotationResult(Struct):
    needs_rotation: bool


class RotationPolicy(Struct):
    # The defaults are those of the library walletd replaces (and of the daemon's own
    # defaults); they only matter when a caller builds a policy, never on the wire.
    max_age_days: int = 90
    max_signatures: int = 10000
    auto_rotate: bool = False


class RotationStatusResult(Struct):
    needs_rotation: bool
    reasons: list[str]  # "max_age", "max_signatures"
    signature_count: int
    key_age_days: float
    policy: RotationPolicy
    address: str


class RotationRecord(Struct):
    user_id: str
    old_wallet_id: str
    new_wallet_id: str
    timestamp: float
    # Defaults so a record can be built the library's way, (user, old, new, timestamp); the
    # daemon always sends both fields. -1 is no uid: the record did not come from a daemon.
    reason: str = "scheduled"
    actor_uid: int = -1
    # The record's place in the rotations table, for paging with before_seq (-1: not from a
    # daemon).
    seq: int = -1


class RotationHistoryResult(Struct):
    records: list[RotationRecord]


class BackupInfo(Struct):
    user_id: str
    wallet_id: str
    key_hash: str
    created_at: float
    backup_ts: float


class BackupRecord(Struct):
    backup_id: str
    user_id: str
    wallet_id: str
    key_hash: str
    timestamp: float
    metadata: dict[str, Any] = {}


class BackupProblem(Struct):
    backup_id: str
    problem: str


class BackupListResult(Struct):
    backups: list[BackupRecord]
    problems: list[BackupProblem] = []


class BackupVerifyResult(Struct):
    valid: bool
    status: str  # "valid" or "stale"


class AuditRecord(Struct):
    seq: int
    timestamp: float
    event: str
    user_id: str | None
    addresses: list[str]
    actor_uid: int
    actor_pid: int
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditLogResult(Struct):
    records: list[AuditRecord]


class AuditVerifyResult(Struct):
    ok: bool
    records: int
    first_broken_seq: int | None = None
    problem: str | None = None


class RitualInfoResult(Struct):
    steps: int
    remaining_attempts: int


class RemovedResult(Struct):
    removed: bool


class PromptsResult(Struct):
    prompts: list[str]


class RemainingResult(Struct):
    remaining: int


class LockedResult(Struct):
    locked: bool


class RecoveryResult(Struct):
    recovered: bool
    address: str | None = None  # the new address on success
