"""The walletd wire contract: typed requests, results and the response envelope.

Every frame (see :mod:`wallet_client.framing`) carries one MessagePack map. A request is a map
with ``op`` (the operation's name, which is also the client method's name), ``id`` (an unsigned
integer chosen by the client and echoed back) and the operation's fields, named as the client
method's parameters. A response is either::

    {"id": <id>, "ok": true,  "result": {...}}
    {"id": <id or nil>, "ok": false, "error": {"code": "<code>", "message": "<text>"}}

Requests are one tagged union of msgspec Structs (``tag_field="op"``). Fields added later get
defaults so older clients keep working. docs/PROTOCOL.md is the prose version of this module;
keep the two in agreement.

This module is shared by the daemon and the clients, and does no I/O.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct

PROTOCOL_VERSION: Final = 1

#: The largest number of items one ``sign_batch`` / ``verify_batch`` request may carry.
MAX_BATCH_ITEMS: Final = 4096

# msgspec bounds must fit an int64, so ids are 0 .. 2**63-1 (documented in PROTOCOL.md).
Int63 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
RequestId = Int63


class ErrorCode(enum.StrEnum):
    """The closed set of error codes. Codes are for programs; messages are for people."""

    BAD_REQUEST = "bad_request"  # not MessagePack, not a map, missing/mistyped field, empty frame
    UNKNOWN_OP = "unknown_op"  # "op" names no operation this daemon speaks
    INVALID_ARGUMENT = "invalid_argument"  # well-typed but unacceptable value
    NOT_FOUND = "not_found"  # no such wallet / backup / history
    ALREADY_EXISTS = "already_exists"  # the user already has a wallet
    FORBIDDEN = "forbidden"  # the peer may not do this (ownership, admin-only, allow-lists)
    LOCKED = "locked"  # recovery attempts are exhausted
    NO_RITUAL = "no_ritual"  # the wallet has no recovery ritual registered
    INTEGRITY_ERROR = "integrity_error"  # a backup record failed its integrity check
    FRAME_TOO_LARGE = "frame_too_large"  # announced frame length over the limit; connection closes
    UNAVAILABLE = "unavailable"  # the daemon is at its connection limit or shutting down
    STORAGE_ERROR = "storage_error"  # the change could not be made durable; nothing changed
    INTERNAL = "internal"  # a bug in walletd; the message says nothing secret


# --------------------------------------------------------------------------- requests


# gc=False: decoded requests and the hot path's responses hold only plain values, so they
# cannot be part of a reference cycle; not tracking them saves work on every request.
class Request(Struct, tag_field="op", kw_only=True, forbid_unknown_fields=True, gc=False):
    id: RequestId


class Hello(Request, tag="hello"):
    pass


class Status(Request, tag="status"):
    pass


class CreateWallet(Request, tag="create_wallet"):
    user_id: str


class GetWalletAddress(Request, tag="get_wallet_address"):
    user_id: str


class HasWallet(Request, tag="has_wallet"):
    user_id: str


class ListWallets(Request, tag="list_wallets"):
    pass


class DeleteWallet(Request, tag="delete_wallet"):
    user_id: str


class SignMessage(Request, tag="sign_message"):
    user_id: str
    message: bytes


class VerifySignature(Request, tag="verify_signature"):
    user_id: str
    message: bytes
    signature: bytes


class VerifyItem(Struct, forbid_unknown_fields=True):
    message: bytes
    signature: bytes


class SignBatch(Request, tag="sign_batch"):
    user_id: str
    messages: list[bytes]


class VerifyBatch(Request, tag="verify_batch"):
    user_id: str
    items: list[VerifyItem]


class RotateKeys(Request, tag="rotate_keys"):
    user_id: str
    reason: str = "manual"


class NeedsRotation(Request, tag="needs_rotation"):
    user_id: str


class RotationStatus(Request, tag="rotation_status"):
    user_id: str


class RotationHistory(Request, tag="rotation_history"):
    user_id: str


class GetPolicy(Request, tag="get_policy"):
    user_id: str


class SetPolicy(Request, tag="set_policy"):
    user_id: str
    max_age_days: int | None = None
    max_signatures: int | None = None
    auto_rotate: bool | None = None


class BackupWallet(Request, tag="backup_wallet"):
    user_id: str


class CreateBackup(Request, tag="create_backup"):
    user_id: str
    metadata: dict[str, Any] | None = None


class ListBackups(Request, tag="list_backups"):
    user_id: str


class VerifyBackup(Request, tag="verify_backup"):
    user_id: str
    backup_id: str


class DeleteBackup(Request, tag="delete_backup"):
    user_id: str
    backup_id: str


class AuditLog(Request, tag="audit_log"):
    user_id: str | None = None
    since: float | None = None  # Unix time; records at or after it
    limit: int = 1000
    before_seq: Int63 | None = None  # records with a smaller seq: pages back through the log


class AuditVerify(Request, tag="audit_verify"):
    pass


class RitualStep(Struct, forbid_unknown_fields=True):
    """One question of a recovery ritual: the prompt and the SHA-256 hex of its answer."""

    prompt: str
    expected_response_hash: str


class RegisterRitual(Request, tag="register_ritual"):
    user_id: str
    steps: list[RitualStep]


class UnregisterRitual(Request, tag="unregister_ritual"):
    user_id: str


class HasRitual(Request, tag="has_ritual"):
    user_id: str


class GetPrompts(Request, tag="get_prompts"):
    user_id: str


class GetRemainingAttempts(Request, tag="get_remaining_attempts"):
    user_id: str


class IsLocked(Request, tag="is_locked"):
    user_id: str


class InitiateRecovery(Request, tag="initiate_recovery"):
    user_id: str
    responses: list[str]  # SHA-256 hex of each answer, in prompt order


class ResetAttempts(Request, tag="reset_attempts"):
    user_id: str


AnyRequest = (
    Hello
    | Status
    | CreateWallet
    | GetWalletAddress
    | HasWallet
    | ListWallets
    | DeleteWallet
    | SignMessage
    | VerifySignature
    | SignBatch
    | VerifyBatch
    | RotateKeys
    | NeedsRotation
    | RotationStatus
    | RotationHistory
    | GetPolicy
    | SetPolicy
    | BackupWallet
    | CreateBackup
    | ListBackups
    | VerifyBackup
    | DeleteBackup
    | AuditLog
    | AuditVerify
    | RegisterRitual
    | UnregisterRitual
    | HasRitual
    | GetPrompts
    | GetRemainingAttempts
    | IsLocked
    | InitiateRecovery
    | ResetAttempts
)

REQUEST_TYPES: Final[tuple[type[Request], ...]] = AnyRequest.__args__
OPS: Final[tuple[str, ...]] = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)


# --------------------------------------------------------------------------- results


class HelloResult(Struct):
    protocol: int
    server: str
    ops: list[str]


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


class DeletedResult(Struct):
    deleted: bool


class SignatureResult(Struct, gc=False):
    signature: bytes
    address: str  # the key that made it


class ValidResult(Struct):
    valid: bool


class SignedItem(Struct, omit_defaults=True):
    signature: bytes | None = None
    address: str | None = None  # which key signed this item (rotation may happen mid-batch)
    error: ErrorBody | None = None


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


# --------------------------------------------------------------------------- envelope


class ErrorBody(Struct):
    code: str
    message: str


class OkResponse(Struct, gc=False):
    id: int
    ok: bool
    result: Any


class ErrorResponse(Struct):
    id: int | None
    ok: bool
    error: ErrorBody


class Response(Struct, kw_only=True):
    """What a client decodes; ``result`` stays raw until the caller knows its type."""

    id: int | None = None
    ok: bool
    result: msgspec.Raw = msgspec.Raw()  # empty when absent
    error: ErrorBody | None = None


class Envelope(Struct):
    """A lenient view of a request, used only to name what went wrong with a bad one."""

    op: Any = None
    id: Any = None


def ok(request_id: int, result: Any) -> OkResponse:
    return OkResponse(request_id, True, result)


def error(request_id: int | None, code: ErrorCode, message: str) -> ErrorResponse:
    return ErrorResponse(request_id, False, ErrorBody(str(code), message))
