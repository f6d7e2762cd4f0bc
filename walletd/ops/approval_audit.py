"""The audit records of approvals and leases: what was asked, by which program, who decided.

Records name the requester as the kernel reported it (uid, pid, executable, unit) and the rule
that sent the request to review; never the message or its summary text (the chain is read by
more people than the approver). Lease records carry the use count, so the record of a lease's
end says how much it was used.
"""

from __future__ import annotations

from typing import Any

from walletd.model.approvals import Pending
from walletd.model.audit_chain import AuditEntry
from walletd.model.leases import Lease
from walletd.model.peer import Actor
from walletd.ops.context import Context

__all__ = ["entry_record", "lease_record"]


def entry_record(ctx: Context, event: str, entry: Pending, actor: Actor) -> AuditEntry:
    """The record of a pending request's step: requested, approved, denied, cancelled, expired."""
    wallet = ctx.book.get(entry.user_id)
    detail: dict[str, Any] = {
        "approval_id": entry.approval_id,
        "op": entry.op,
        "layer": entry.layer,
        "rule_id": entry.rule_id,
        "requester_uid": entry.requester.uid,
        "requester_pid": entry.requester.pid,
        "requester_exe": entry.requester.exe,
        "requester_unit": entry.requester.unit,
    }
    if entry.deny_reason is not None:
        detail["reason"] = entry.deny_reason[:200]
    outcome = "denied" if event in ("approval_denied", "approval_expired") else "ok"
    return ctx.audit(
        event,
        entry.user_id,
        [wallet.address] if wallet is not None else [],
        actor,
        outcome=outcome,
        detail=detail,
    )


def lease_record(
    ctx: Context, event: str, lease: Lease, actor: Actor, why: str | None = None
) -> AuditEntry:
    """The record of a lease granted or ended (``why``), with its use count."""
    detail: dict[str, Any] = {
        "lease_id": lease.lease_id,
        "approval_id": lease.approval_id,
        "rule_id": lease.rule_id,
        "layer": lease.layer,
        "scope": lease.scope.value,
        "uid": lease.uid,
        "pid": None if lease.process is None else lease.process[0],
        "max_uses": lease.max_uses,
        "uses": lease.uses,
        "granted_by": lease.granted_by,
    }
    if why is not None:
        detail["why"] = why
    return ctx.audit(event, lease.user_id, [], actor, detail=detail)
