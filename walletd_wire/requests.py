"""Requests: one tagged union of msgspec Structs, ``op`` naming the operation.

A request is a MessagePack map with ``op`` (the operation's name, which is also the client
method's name), ``id`` (an unsigned integer chosen by the client and echoed back) and the
operation's fields, named as the client method's parameters. Unknown fields are refused
(``forbid_unknown_fields``); fields added later get defaults so older clients keep working.
Every list and map is bounded in the type, so nothing is decoded that would be refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from msgspec import Meta, Struct

from .approvals import LeaseSpec

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_TYPED_DATA_KEYS",
    "OPS",
    "REQUEST_TYPES",
    "AnyRequest",
    "ApprovalId",
    "Approve",
    "AuditLog",
    "AuditVerify",
    "AwaitApproval",
    "BackupWallet",
    "CancelApproval",
    "CreateBackup",
    "CreateWallet",
    "DeleteBackup",
    "DeleteWallet",
    "Deny",
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
    "LeaseId",
    "ListBackups",
    "ListLeases",
    "ListPending",
    "ListWallets",
    "NeedsRotation",
    "RegisterRitual",
    "Request",
    "RequestId",
    "ResetAttempts",
    "RevokeLease",
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
    messages: list[bytes]


class VerifyBatch(Request, tag="verify_batch"):
    user_id: str
    items: list[VerifyItem]
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


# --------------------------------------------------------------------------- approvals
# Human approval of signatures the policy sends to review (issue 16); results and LeaseSpec
# are in walletd_wire.approvals.

ApprovalId = Annotated[str, Meta(min_length=1, max_length=64)]
LeaseId = Annotated[str, Meta(min_length=1, max_length=64)]


class ListPending(Request, tag="list_pending"):
    pass


class Approve(Request, tag="approve"):
    approval_id: ApprovalId
    lease: LeaseSpec | None = None


class Deny(Request, tag="deny"):
    approval_id: ApprovalId
    reason: Annotated[str, Meta(max_length=500)] | None = None


class AwaitApproval(Request, tag="await_approval"):
    approval_id: ApprovalId
    timeout_s: Annotated[float, Meta(ge=0, le=86_400)] = 30.0


class CancelApproval(Request, tag="cancel_approval"):
    approval_id: ApprovalId


class ListLeases(Request, tag="list_leases"):
    pass


class RevokeLease(Request, tag="revoke_lease"):
    lease_id: LeaseId


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
    | ListPending
    | Approve
    | Deny
    | AwaitApproval
    | CancelApproval
    | ListLeases
    | RevokeLease
)

REQUEST_TYPES: Final[tuple[type[Request], ...]] = AnyRequest.__args__
OPS: Final[tuple[str, ...]] = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)
