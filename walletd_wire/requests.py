"""Requests: one tagged union of msgspec Structs, ``op`` naming the operation.

A request is a MessagePack map with ``op`` (the operation's name, which is also the client
method's name), ``id`` (an unsigned integer chosen by the client and echoed back) and the
operation's fields, named as the client method's parameters. Unknown fields are refused
(``forbid_unknown_fields``); fields added later get defaults so older clients keep working.
Every list and map is bounded in the type, so nothing is decoded that would be refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from msgspec import Meta, Struct

from .bounded import bounded_map

__all__ = [
    "LIST_LIMITS",
    "MAX_BATCH_ITEMS",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_ENTRIES",
    "MAX_RITUAL_STEPS",
    "MAX_TYPED_DATA_KEYS",
    "OPS",
    "REQUEST_TYPES",
    "AnyRequest",
    "AuditLog",
    "AuditVerify",
    "BackupWallet",
    "CreateBackup",
    "CreateWallet",
    "DeleteBackup",
    "DeleteWallet",
    "GetPolicy",
    "GetPrompts",
    "GetPublicKey",
    "GetRemainingAttempts",
    "GetWalletAddress",
    "HasRitual",
    "HasWallet",
    "Hello",
    "InitiateRecovery",
    "Int63",
    "IsLocked",
    "ListBackups",
    "ListWallets",
    "NeedsRotation",
    "RegisterRitual",
    "Request",
    "RequestId",
    "ResetAttempts",
    "RitualStep",
    "RotateKeys",
    "RotationHistory",
    "RotationStatus",
    "SetPolicy",
    "SignBatch",
    "SignMessage",
    "SignTypedData",
    "Status",
    "UnregisterRitual",
    "VerifyBackup",
    "VerifyBatch",
    "VerifyItem",
    "VerifySignature",
]

#: The largest number of items one ``sign_batch`` / ``verify_batch`` request may carry.
MAX_BATCH_ITEMS: Final = 4096

#: Top-level keys a ``sign_typed_data`` document may carry on the wire. EIP-712 has four;
#: the bound is looser so that an extra key is refused by walletd_wire.eip712 with a message
#: saying which keys are allowed (invalid_argument), not by the decoder (bad_request).
MAX_TYPED_DATA_KEYS: Final = 16

#: Steps of a recovery ritual, and so responses of one attempt.
MAX_RITUAL_STEPS: Final = 16

#: ``create_backup.metadata``: entries per map or list, and levels of maps/lists (the
#: metadata map itself is level 1). Descriptive data; its JSON is also capped (16 KiB).
MAX_METADATA_ENTRIES: Final = 64
MAX_METADATA_DEPTH: Final = 3

# typed_data keeps ``Any`` below its top level: the spelled-out bounded type grows as 2**depth
# and EIP-712 allows 16 levels (msgspec needs 15 s to build that decoder). The daemon scans such
# a frame's values and depth before decoding it (walletd/ops/typed_data_bound.py), and
# walletd_wire.eip712 bounds the document after the decode (MAX_VALUES).
if TYPE_CHECKING:
    Metadata = dict[str, Any]
else:
    Metadata = bounded_map(
        depth=MAX_METADATA_DEPTH, max_map=MAX_METADATA_ENTRIES, max_list=MAX_METADATA_ENTRIES
    )

# msgspec bounds must fit an int64, so ids are 0 .. 2**63-1 (documented in PROTOCOL.md).
Int63 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
RequestId = Int63


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
    key_type: str = "hmac-sha256"  # or "ed25519", "secp256k1"; hello lists them


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
    version: Int63 | None = None  # the key version to check against; None: the current one


class GetPublicKey(Request, tag="get_public_key"):
    user_id: str
    version: Int63 | None = None  # None: the current key


class SignTypedData(Request, tag="sign_typed_data"):
    """EIP-712: the ``eth_signTypedData_v4`` document, decoded as a plain map and validated by
    walletd_wire.eip712 (whose refusals are invalid_argument with a message saying why)."""

    user_id: str
    typed_data: Annotated[dict[str, Any], Meta(max_length=MAX_TYPED_DATA_KEYS)]


class VerifyItem(Struct, forbid_unknown_fields=True):
    message: bytes
    signature: bytes


class SignBatch(Request, tag="sign_batch"):
    user_id: str
    messages: Annotated[list[bytes], Meta(max_length=MAX_BATCH_ITEMS)]


class VerifyBatch(Request, tag="verify_batch"):
    user_id: str
    items: Annotated[list[VerifyItem], Meta(max_length=MAX_BATCH_ITEMS)]
    version: Int63 | None = None


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
    metadata: Metadata | None = None


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
    steps: Annotated[list[RitualStep], Meta(max_length=MAX_RITUAL_STEPS)]


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
    # SHA-256 hex of each answer, in prompt order. More than a ritual can have steps is
    # refused by the decoder; a wrong count within that is a failed attempt.
    responses: Annotated[list[str], Meta(max_length=MAX_RITUAL_STEPS)]


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
    | GetPublicKey
    | SignTypedData
)

REQUEST_TYPES: Final[tuple[type[Request], ...]] = AnyRequest.__args__
OPS: Final[tuple[str, ...]] = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)

#: Every bounded list or map on the wire, keyed ``op.field``, as ``hello`` reports them
#: (``limits.lists``): a client can check a request against them before sending it.
LIST_LIMITS: Final[dict[str, int]] = {
    "sign_batch.messages": MAX_BATCH_ITEMS,
    "verify_batch.items": MAX_BATCH_ITEMS,
    "register_ritual.steps": MAX_RITUAL_STEPS,
    "initiate_recovery.responses": MAX_RITUAL_STEPS,
    "create_backup.metadata": MAX_METADATA_ENTRIES,
    "sign_typed_data.typed_data": MAX_TYPED_DATA_KEYS,
}
