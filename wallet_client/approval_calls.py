"""The approval calls, described once for both clients (see :mod:`wallet_client.calls`).

A signature the daemon holds for human approval comes back as a ``pending`` result, told
apart from a signature result by its ``kind``. The signing methods promise a signature, so
they raise it as :class:`PendingApproval` (a ``WalletError`` carrying ``approval_id`` and
``expires_at``): a caller that knows nothing of approvals fails loudly instead of using a
non-signature, and one that does catches it and calls ``await_approval(approval_id)``, which
gives the bytes the signing call would have given. With ``wait=S`` the daemon holds the
request up to S seconds; still undecided then, the call raises ``ApprovalTimeoutError`` with
the ``approval_id``.

A waiting call (``wait=`` / ``await_approval``) extends the client's own deadline by the wait,
so a long wait is not cut by the client's usual timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

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

from .calls import Call, typed_request
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
    "sign_message",
    "sign_message_detailed",
    "sign_typed_data",
    "sign_typed_data_detailed",
    "signature_or_pending",
]

T = TypeVar("T")

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
    return signature_result(raw, waited=waited).signature


def signature_result(raw: msgspec.Raw, *, waited: bool) -> wire.SignatureResult:
    """The signature result; a pending answer is raised, as :func:`signature_bytes` says."""
    result = signature_or_pending(raw)
    if isinstance(result, PendingApproval):
        if waited:
            timeout = ApprovalTimeoutError(
                f"approval {result.approval_id} was not decided in the time waited"
            )
            timeout.approval_id, timeout.expires_at = result.approval_id, result.expires_at
            raise timeout
        raise result
    return result


def _signing(
    request: wire.Request, wait: float | None, convert: Callable[[msgspec.Raw], T]
) -> Call[T]:
    call: Call[T] = Call(request, msgspec.Raw, convert)
    if wait:
        call.wait_s = wait + WAIT_MARGIN_S
    return call


def sign_message(
    user_id: str, message: bytes, purpose: str | None = None, wait: float | None = None
) -> Call[bytes]:
    request = wire.SignMessage(
        id=0, user_id=user_id, message=bytes(message), purpose=purpose, wait_s=wait
    )
    return _signing(request, wait, lambda raw: signature_bytes(raw, waited=bool(wait)))


def sign_message_detailed(
    user_id: str, message: bytes, purpose: str | None = None, wait: float | None = None
) -> Call[wire.SignatureResult]:
    request = wire.SignMessage(
        id=0, user_id=user_id, message=bytes(message), purpose=purpose, wait_s=wait
    )
    return _signing(request, wait, lambda raw: signature_result(raw, waited=bool(wait)))


def sign_typed_data(
    user_id: str,
    typed_data: Mapping[str, Any],
    purpose: str | None = None,
    wait: float | None = None,
) -> Call[bytes]:
    request = typed_request(user_id, typed_data, purpose, wait)
    return _signing(request, wait, lambda raw: signature_bytes(raw, waited=bool(wait)))


def sign_typed_data_detailed(
    user_id: str,
    typed_data: Mapping[str, Any],
    purpose: str | None = None,
    wait: float | None = None,
) -> Call[wire.SignatureResult]:
    request = typed_request(user_id, typed_data, purpose, wait)
    return _signing(request, wait, lambda raw: signature_result(raw, waited=bool(wait)))


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
