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
    "ExplainResult",
    "HelloResult",
    "LimitInfo",
    "Limits",
    "LockedResult",
    "NeedsRotationResult",
    "PauseInfo",
    "PolicyLayerInfo",
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
    "SigningPausesResult",
    "SigningPolicyResult",
    "StatusResult",
    "ValidResult",
    "VerifyBatchResult",
    "WalletsResult",
]


class Limits(Struct):
    """What a request may hold, so a client can check before sending (``hello.limits``)."""

    max_frame_bytes: int
    max_batch_items: int
    lists: dict[str, int]  # every bounded list or map on the wire, keyed "op.field"


class HelloResult(Struct):
    protocol: int
    server: str
    ops: list[str]
    key_types: list[str] = []
    limits: Limits | None = None  # None from a daemon older than the limits


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
    key_type: str = "hmac-sha256"
    version: int = 1  # the key version the status is about


class RotationRecord(Struct):
    user_id: str
    old_wallet_id: str
    new_wallet_id: str
    timestamp: float
    # Defaults so a record can be built the library's way, (user, old, new, timestamp); the
    # daemon always sends both fields. -1 is no uid: the record did not come from a daemon.
    reason: str = "scheduled"
    actor_uid: int = -1


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


# ------------------------------------------------------------------ signing policy (issue 15)


class PolicyLayerInfo(Struct):
    version: int  # 0: never set (an empty layer)
    rules: list[dict[str, Any]]  # the normalised document
    updated_at: float | None = None
    updated_by_uid: int | None = None


class SigningPolicyResult(Struct):
    user_id: str
    admin: PolicyLayerInfo
    owner: PolicyLayerInfo
    default: str  # the daemon's [signing] default: what a layer yields when no rule matches
    paused: bool = False  # signing is paused for this wallet (by any scope)


class LimitInfo(Struct):
    layer: str
    rule_id: str
    count: int
    window_s: int
    remaining: int  # uses left in the current window, before this request


class ExplainResult(Struct):
    action: str  # "allow", "review" or "deny"
    layer: str  # the layer whose verdict decided
    rule_id: str | None  # None: that layer's default decided
    reason: str | None
    admin_rule_id: str | None
    owner_rule_id: str | None
    limits: list[LimitInfo]
    paused: bool = False  # when true, the request would be refused as paused whatever this says


class PauseInfo(Struct):
    scope: str  # "all", "uid" or "wallet"
    uid: int | None
    user_id: str | None
    since: float
    actor_uid: int


class SigningPausesResult(Struct):
    pauses: list[PauseInfo]
