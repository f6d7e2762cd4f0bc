"""The approval ops on the wire: list_pending, approve, deny, await_approval, cancel_approval,
list_leases, revoke_lease (handlers of the op table, over :class:`ApprovalDesk`).

Who sees what. Approvers (admins and members of ``approver_group``) see every pending request
and every lease; anyone else sees the requests it made itself and the leases bound to its uid
(an agent may learn that it is waiting, never decide). Deciding is the desk's approver rule;
awaiting and cancelling are for the requesting uid or an admin; revoking is for approvers.

How a wait ends. ``await_approval`` (and a signing request that asked to wait) answers the
signature once approved; ``approval_denied`` when denied or cancelled (the approver's reason in
the message); ``approval_timeout`` once the approval has expired; and, when only the wait ran
out, the ``pending`` result again, so the caller can wait more.
"""

from __future__ import annotations

import walletd_wire as wire
from walletd.config import Config
from walletd.errors import ApprovalDenied, ApprovalTimeout, RequestError
from walletd.model.approvals import ApprovalLimits, Pending, State
from walletd.model.leases import Lease, LeaseLimits, LeaseTerms
from walletd.model.peer import Peer
from walletd.ops.approvals import ApprovalDesk, ApprovalSettings, Outcome
from walletd_wire.approvals import (
    MAX_PENDING_LISTED,
    ApprovalInfo,
    ApproveResult,
    CancelledResult,
    DeniedResult,
    LeaseInfo,
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

__all__ = ["ApprovalOps", "answer", "settings_of"]


def settings_of(config: Config) -> ApprovalSettings:
    """The desk's settings from the ``[approvals]`` table."""
    a = config.approvals
    return ApprovalSettings(
        approver_group=a.approver_group,
        max_wait_s=a.max_wait_s,
        pending=ApprovalLimits(
            pending_ttl_s=a.pending_ttl_s,
            keep_decided_s=a.pending_ttl_s,
            max_per_uid=a.max_pending_per_uid,
            max_total=a.max_pending,
        ),
        leases=LeaseLimits(
            max_ttl_s=a.lease_max_ttl_s,
            default_ttl_s=min(a.lease_default_ttl_s, a.lease_max_ttl_s),
            max_uses=a.lease_max_uses,
            default_uses=min(a.lease_default_uses, a.lease_max_uses),
            max_leases=a.max_leases,
        ),
    )


def pending_result(entry: Pending) -> PendingResult:
    return PendingResult(approval_id=entry.approval_id, expires_at=entry.expires_at)


def answer(outcome: Outcome) -> object:
    """What the requester is answered for an outcome: the signing result, ``pending`` again,
    or the refusal raised."""
    entry = outcome.entry
    if outcome.state is State.APPROVED:
        if isinstance(outcome.result, RequestError):
            raise outcome.result
        return outcome.result
    if outcome.state is State.PENDING:
        return pending_result(entry)
    if outcome.state is State.EXPIRED:
        raise ApprovalTimeout(f"approval {entry.approval_id!r} expired before anyone decided")
    if outcome.state is State.CANCELLED:
        raise ApprovalDenied(f"approval {entry.approval_id!r} was cancelled by its requester")
    reason = f": {entry.deny_reason}" if entry.deny_reason else ""
    raise ApprovalDenied(
        f"approval {entry.approval_id!r} was denied by uid {entry.decided_by}{reason}"
    )


def _info(entry: Pending) -> ApprovalInfo:
    view = entry.view()
    return ApprovalInfo(
        approval_id=entry.approval_id,
        user_id=entry.user_id,
        op=entry.op,
        layer=entry.layer,
        rule_id=entry.rule_id,
        reason=entry.reason,
        summary=dict(entry.summary),
        requester=entry.requester.as_dict(),
        expires_at=entry.expires_at,
        state=str(view["state"]),
    )


def _lease_info(lease: Lease) -> LeaseInfo:
    return LeaseInfo(
        lease_id=lease.lease_id,
        user_id=lease.user_id,
        rule_id=lease.rule_id,
        layer=lease.layer,
        scope=lease.scope.value,
        uid=lease.uid,
        pid=None if lease.process is None else lease.process[0],
        uses_left=lease.uses_left,
        expires_at=lease.expires_at,
    )


class ApprovalOps:
    def __init__(self, desk: ApprovalDesk) -> None:
        self.desk = desk

    def list_pending(self, peer: Peer, req: ListPending) -> PendingListResult:
        everyone = self.desk.may_see_all(peer)
        shown = [
            _info(e) for e in self.desk.pending.pending() if everyone or e.requester.uid == peer.uid
        ]
        return PendingListResult(shown[:MAX_PENDING_LISTED])

    async def approve(self, peer: Peer, req: Approve) -> ApproveResult:
        spec = req.lease
        terms = None if spec is None else LeaseTerms.parse(spec.scope, spec.ttl_s, spec.max_uses)
        entry, lease = await self.desk.decide(peer, req.approval_id, approve=True, terms=terms)
        return ApproveResult(
            approval_id=entry.approval_id, lease=None if lease is None else _lease_info(lease)
        )

    async def deny(self, peer: Peer, req: Deny) -> DeniedResult:
        entry, _ = await self.desk.decide(peer, req.approval_id, approve=False, reason=req.reason)
        return DeniedResult(entry.approval_id)

    async def await_approval(
        self, peer: Peer, req: AwaitApproval
    ) -> wire.SignatureResult | PendingResult:
        result = answer(await self.desk.wait(peer, req.approval_id, req.timeout_s))
        assert isinstance(result, wire.SignatureResult | PendingResult)
        return result

    async def cancel_approval(self, peer: Peer, req: CancelApproval) -> CancelledResult:
        entry = await self.desk.cancel(peer, req.approval_id)
        return CancelledResult(entry.approval_id)

    def list_leases(self, peer: Peer, req: ListLeases) -> LeasesResult:
        everyone = self.desk.may_see_all(peer)
        shown = [
            _lease_info(ls) for ls in self.desk.leases.leases() if everyone or ls.uid == peer.uid
        ]
        return LeasesResult(shown[:MAX_PENDING_LISTED])

    async def revoke_lease(self, peer: Peer, req: RevokeLease) -> RevokedResult:
        ended = await self.desk.revoke(peer, req.lease_id)
        return RevokedResult(lease_id=ended.lease.lease_id, uses=ended.lease.uses)
