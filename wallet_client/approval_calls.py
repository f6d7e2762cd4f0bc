"""The approval calls, described once for both clients (see :mod:`wallet_client.calls`).

A signature the daemon holds for human approval comes back as a ``pending`` result, told
apart from a signature result by its ``kind``. The clients return it as a
:class:`PendingApproval` value where a method can say so (``sign_message_detailed``), and
raise it where a method promises signature bytes (``sign_message`` without ``wait``), so a
caller that knows nothing of approvals fails loudly instead of using a non-signature.
``await_approval`` gives the bytes the signing call would have given.

A waiting call (``wait=`` / ``await_approval``) extends the client's own deadline by the wait,
so a long wait is not cut by the client's usual timeout.
"""

from __future__ import annotations

from typing import Any

import msgspec

import walletd_wire as wire
from walletd_wire.approvals import (
    ApprovalInfo,
    ApproveResult,
    CancelledResult,
    DeniedResult,
    LeaseInfo,
    LeaseSpec,
    LeasesResult,
    PendingListResult,
    PendingResult,
    RevokedResult,
)
from walletd_wire.requests import (
    Approve,
    AwaitApproval,
    CancelApproval,
    Deny,
    ListLeases,
    ListPending,
    RevokeLease,
)

from .calls import Call
from .errors import ApprovalTimeoutError, ProtocolError, WalletError

__all__ = [
    "PendingApproval",
    "approve",
    "await_approval",
    "cancel_approval",
    "deny",
    "list_leases",
    "list_pending",
    "revoke_lease",
    "signature_or_pending",
]

#: Seconds a waiting call allows beyond its wait for the daemon's answer to arrive.
WAIT_MARGIN_S = 5.0


class PendingApproval(WalletError):
    """A signature held for approval: ask ``await_approval(approval_id)`` for it until
    ``expires_at`` (Unix seconds). Returned as a value, or raised by methods that return
    signature bytes."""

    code = "pending"

    def __init__(self, approval_id: str, expires_at: float) -> None:
        super().__init__(
            f"the signature is held for approval {approval_id} until {expires_at:.0f}",
            code="pending",
        )
        self.approval_id = approval_id
        self.expires_at = expires_at


class _Kind(msgspec.Struct):
    kind: str | None = None


def signature_or_pending(raw: msgspec.Raw) -> wire.SignatureResult | PendingApproval:
    """A signing result: the signature, or the pending approval the daemon answered."""
    try:
        if msgspec.msgpack.decode(raw, type=_Kind).kind == "pending":
            held = msgspec.msgpack.decode(raw, type=PendingResult)
            return PendingApproval(held.approval_id, held.expires_at)
        return msgspec.msgpack.decode(raw, type=wire.SignatureResult)
    except msgspec.MsgspecError as exc:
        raise ProtocolError(f"unexpected result from the daemon: {exc}") from exc


def signature_bytes(raw: msgspec.Raw, *, waited: bool) -> bytes:
    """The signature; a pending answer is raised (``ApprovalTimeoutError`` after a wait)."""
    result = signature_or_pending(raw)
    if isinstance(result, PendingApproval):
        if waited:
            timeout = ApprovalTimeoutError(
                f"approval {result.approval_id} was not decided in the time waited"
            )
            timeout.approval_id, timeout.expires_at = result.approval_id, result.expires_at
            raise timeout
        raise result
    return result.signature


def list_pending() -> Call[list[ApprovalInfo]]:
    return Call(ListPending(id=0), PendingListResult, lambda r: r.pending)


def approve(approval_id: str, lease: LeaseSpec | None = None) -> Call[ApproveResult]:
    return Call(Approve(id=0, approval_id=approval_id, lease=lease), ApproveResult, _same)


def deny(approval_id: str, reason: str | None = None) -> Call[DeniedResult]:
    return Call(Deny(id=0, approval_id=approval_id, reason=reason), DeniedResult, _same)


def await_approval(approval_id: str, timeout_s: float = 30.0) -> Call[bytes]:
    call: Call[bytes] = Call(
        AwaitApproval(id=0, approval_id=approval_id, timeout_s=timeout_s),
        msgspec.Raw,
        lambda raw: signature_bytes(raw, waited=True),
    )
    call.wait_s = timeout_s + WAIT_MARGIN_S
    return call


def cancel_approval(approval_id: str) -> Call[CancelledResult]:
    return Call(CancelApproval(id=0, approval_id=approval_id), CancelledResult, _same)


def list_leases() -> Call[list[LeaseInfo]]:
    return Call(ListLeases(id=0), LeasesResult, lambda r: r.leases)


def revoke_lease(lease_id: str) -> Call[RevokedResult]:
    return Call(RevokeLease(id=0, lease_id=lease_id), RevokedResult, _same)


def _same(value: Any) -> Any:
    return value
