"""Wire types of human approval (issue 16): the ``pending`` result and the approval ops.

A signing request that the policy sends to ``review`` answers ``ok: true`` with a
:class:`PendingResult` (``{"kind": "pending", "approval_id", "expires_at"}``), unless it asked
to wait (``wait_s``) and was decided in time. ``kind`` is what tells it from a signature
result, which has none; clients check it before decoding the rest.

The ops' requests (``list_pending``, ``approve``, ``deny``, ``await_approval``,
``cancel_approval``, ``list_leases``, ``revoke_lease``) are in :mod:`walletd_wire.requests`,
at the end of the union; here are their results and the lease a grant asks for.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import Meta, Struct

__all__ = [
    "MAX_PENDING_LISTED",
    "ApprovalInfo",
    "ApproveResult",
    "CancelledResult",
    "DeniedResult",
    "LeaseInfo",
    "LeaseSpec",
    "LeasesResult",
    "PendingListResult",
    "PendingResult",
    "RevokedResult",
]

#: The most entries one ``list_pending`` / ``list_leases`` answer carries.
MAX_PENDING_LISTED: Final = 1024


class LeaseSpec(Struct, forbid_unknown_fields=True, kw_only=True):
    """What an approver grants with an approval. ``scope``: ``once`` (no lease), ``process``
    (the same pid and start time), ``uid`` or ``wallet``; the daemon bounds ``ttl_s`` and
    ``max_uses`` (and fills them in when left out)."""

    scope: Annotated[str, Meta(max_length=16)] = "once"
    ttl_s: Annotated[float, Meta(gt=0, le=86_400 * 7)] | None = None
    max_uses: Annotated[int, Meta(ge=1, le=10**6)] | None = None


# --------------------------------------------------------------------------- results


class PendingResult(Struct, kw_only=True):
    """A held signature: ask ``await_approval(approval_id)`` for it until ``expires_at``
    (Unix seconds)."""

    kind: Literal["pending"] = "pending"
    approval_id: str
    expires_at: float


class ApprovalInfo(Struct, kw_only=True):
    """One pending request as an approver sees it (no message bytes: a summary)."""

    approval_id: str
    user_id: str
    op: str
    layer: str | None
    rule_id: str | None
    reason: str | None
    summary: dict[str, Any]
    requester: dict[str, Any]  # uid, pid, start_time, exe, cmdline, unit
    expires_at: float
    state: str


class PendingListResult(Struct):
    pending: list[ApprovalInfo]


class LeaseInfo(Struct, kw_only=True):
    lease_id: str
    user_id: str
    rule_id: str
    layer: str
    scope: str
    uid: int
    pid: int | None
    uses_left: int
    expires_at: float


class ApproveResult(Struct, kw_only=True):
    approval_id: str
    lease: LeaseInfo | None = None


class DeniedResult(Struct):
    approval_id: str


class CancelledResult(Struct):
    approval_id: str


class LeasesResult(Struct):
    leases: list[LeaseInfo]


class RevokedResult(Struct, kw_only=True):
    lease_id: str
    uses: int
