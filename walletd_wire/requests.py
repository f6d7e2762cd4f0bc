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

from .approval_requests import (
    ApprovalId,
    Approve,
    AwaitApproval,
    CancelApproval,
    Deny,
    LeaseId,
    ListLeases,
    ListPending,
    RevokeLease,
)
from .bounded import bounded_map
from .request_base import Int63, Request, RequestId

__all__ = [
    "LIST_LIMITS",
    "MAX_BATCH_ITEMS",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_ENTRIES",
    "MAX_POLICY_RULES_ON_WIRE",
    "MAX_PURPOSE_CHARS",
    "MAX_RITUAL_STEPS",
    "MAX_TYPED_DATA_KEYS",
    "OPS",
    "REQUEST_TYPES",
    "AnyRequest",
    "ApprovalId",
    "Approve",
    "AuditHead",
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
    "ExplainSigning",
    "GetPolicy",
    "GetPrompts",
    "GetPublicKey",
    "GetRemainingAttempts",
    "GetSigningPolicy",
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
    "PauseSigning",
    "RegisterRitual",
    "Request",
    "RequestId",
    "ResetAttempts",
    "ResumeSigning",
    "RevokeLease",
    "RitualStep",
    "RotateKeys",
    "RotationHistory",
    "RotationStatus",
    "SetPolicy",
    "SetSigningPolicy",
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

#: The longest ``purpose`` the decoder accepts. The daemon's own limit is tighter
#: (walletd.model.validation.MAX_PURPOSE_CHARS), so a long purpose is refused with a message
#: saying how long it may be (invalid_argument), not by the decoder (bad_request).
MAX_PURPOSE_CHARS: Final = 4096

Purpose = Annotated[str, Meta(max_length=MAX_PURPOSE_CHARS)]


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


# omit_defaults: a request without a purpose encodes exactly as before the field existed,
# so new clients keep working with daemons that do not know it.
class SignMessage(Request, tag="sign_message", omit_defaults=True):
    user_id: str
    message: bytes
    # Why the caller signs, in its own words; recorded in the audit log with the signature.
    purpose: Purpose | None = None
    # A signature held for human approval: wait this long for the decision (0/nil: answer
    # the pending result at once). Bounded by the daemon's [approvals] max_wait_s.
    wait_s: Annotated[float, Meta(ge=0, le=3600)] | None = None


class VerifySignature(Request, tag="verify_signature"):
    user_id: str
    message: bytes
    signature: bytes
    version: Int63 | None = None  # the key version to check against; None: the current one


class GetPublicKey(Request, tag="get_public_key"):
    user_id: str
    version: Int63 | None = None  # None: the current key


class SignTypedData(Request, tag="sign_typed_data", omit_defaults=True):
    """EIP-712: the ``eth_signTypedData_v4`` document, decoded as a plain map and validated by
    walletd_wire.eip712 (whose refusals are invalid_argument with a message saying why)."""

    user_id: str
    typed_data: Annotated[dict[str, Any], Meta(max_length=MAX_TYPED_DATA_KEYS)]
    purpose: Purpose | None = None  # as in SignMessage
    wait_s: Annotated[float, Meta(ge=0, le=3600)] | None = None  # as in SignMessage


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
    # Paged like audit_log: the newest `limit` records with a smaller seq, oldest first.
    limit: int = 1000
    before_seq: Int63 | None = None


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


class AuditHead(Request, tag="audit_head"):
    """The audit chain's current head as a tagged checkpoint, to keep outside the host."""


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


# ------------------------------------------------------------------ signing policy (issue 15)

#: Rules one ``set_signing_policy`` may carry on the wire. The policy compiler's own limit
#: (walletd.model.policy_rules.MAX_RULES) is lower, so a document with too many rules is
#: refused with invalid_argument saying so, not by the decoder (bad_request).
MAX_POLICY_RULES_ON_WIRE: Final = 256


class GetSigningPolicy(Request, tag="get_signing_policy"):
    user_id: str


class SetSigningPolicy(Request, tag="set_signing_policy"):
    """Replace one layer (``"admin"`` or ``"owner"``) of a wallet's signing policy, if it is
    still at ``expected_version`` (compare-and-set; 0: the layer was never set). ``rules`` is
    the document as given: the daemon's policy compiler validates it whole."""

    user_id: str
    layer: str
    rules: Annotated[list[Any], Meta(max_length=MAX_POLICY_RULES_ON_WIRE)]
    expected_version: Int63


class ExplainSigning(Request, tag="explain_signing"):
    """What the policy would decide for a signature, without making it or consuming a use.
    ``for_op`` (``op`` names the request itself): ``sign_message`` (the default with
    ``message``), ``sign_batch`` (one item) or ``sign_typed_data`` (the default with
    ``typed_data``)."""

    user_id: str
    message: bytes | None = None
    typed_data: Annotated[dict[str, Any], Meta(max_length=MAX_TYPED_DATA_KEYS)] | None = None
    for_op: str | None = None


class PauseSigning(Request, tag="pause_signing"):
    """The kill switch (admins only): ``scope`` is ``"all"``, ``"uid"`` (with ``uid``) or
    ``"wallet"`` (with ``user_id``). Durable until ``resume_signing`` of the same scope."""

    scope: str = "all"
    uid: Int63 | None = None
    user_id: str | None = None


class ResumeSigning(Request, tag="resume_signing"):
    scope: str = "all"
    uid: Int63 | None = None
    user_id: str | None = None


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
    | GetSigningPolicy
    | SetSigningPolicy
    | ExplainSigning
    | PauseSigning
    | ResumeSigning
    | AuditHead
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

#: Every bounded list or map on the wire, keyed ``op.field``, as ``hello`` reports them
#: (``limits.lists``): a client can check a request against them before sending it.
LIST_LIMITS: Final[dict[str, int]] = {
    "sign_batch.messages": MAX_BATCH_ITEMS,
    "verify_batch.items": MAX_BATCH_ITEMS,
    "register_ritual.steps": MAX_RITUAL_STEPS,
    "initiate_recovery.responses": MAX_RITUAL_STEPS,
    "create_backup.metadata": MAX_METADATA_ENTRIES,
    "sign_typed_data.typed_data": MAX_TYPED_DATA_KEYS,
    "explain_signing.typed_data": MAX_TYPED_DATA_KEYS,
    "set_signing_policy.rules": MAX_POLICY_RULES_ON_WIRE,
}
