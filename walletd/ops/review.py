"""The ``review`` verdict on the sign paths: a lease lets it through, else a person decides.

When the signing policy sends a signature to review (the gate raises
:class:`~walletd.ops.policy_gate.ReviewNeeded`), :meth:`Review.handle`:

1. spends a lease if one covers this wallet, rule (layer, id and layer version) and requester
   (known by ``SO_PEERCRED``; a process lease also reads the pid's start time), and signs
   through :meth:`Review.sign_approved`. The common case never gets here: the gate admits a
   leased review itself when no durable reservation is due
   (:meth:`~walletd.ops.policy_gate.PolicyGate._leased`); this path is for a reservation
   that must be committed first, and for a review decided after a wait;
2. otherwise identifies the requester from ``/proc`` for the person who will decide, holds
   the request on the :class:`~walletd.ops.approvals.ApprovalDesk` and answers the
   ``pending`` result, or, when the request asked to wait (``wait_s``), holds the connection
   until it is decided or the wait runs out (then ``pending`` again).

:meth:`sign_approved` is what an approval (or a lease) runs. It re-checks everything a
signature needs as if the request had just arrived: the wallet and its owner (``wallet_for``
with the requester's peer: a wallet handed to another uid meanwhile is ``forbidden``), the
pause switch, and the policy, which must still say ``allow`` or ``review`` by the same rule;
and it charges the deciding rules' rate limits with the same durable reservations as the
gate. An approval never skips a limit and never outlives a pause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import walletd_wire as wire
from walletd.errors import PolicyDenied
from walletd.model.approvals import Requester
from walletd.model.peer import Peer
from walletd.model.policy_eval import charge, evaluate, reservations
from walletd.model.policy_request import SigningRequest
from walletd.model.policy_rules import Action
from walletd.model.wallets import Wallet
from walletd.ops.approval_ops import answer, pending_result
from walletd.ops.approvals import ApprovalDesk
from walletd.ops.context import Context
from walletd.ops.policy_gate import ReviewNeeded, denial_message, paused_error
from walletd.storage import sql
from walletd.storage.store import Statement
from walletd_wire.approvals import PendingResult

__all__ = ["Review", "SignNow"]

Signed = wire.SignatureResult | Awaitable[wire.SignatureResult]
SignNow = Callable[[Peer, Wallet], Signed]
"""The sign path's own signing, once admitted: ``sign(peer, wallet)``."""


class Review:
    def __init__(self, ctx: Context, desk: ApprovalDesk) -> None:
        self.ctx = ctx
        self.desk = desk

    def handle(
        self,
        peer: Peer,
        wallet: Wallet,
        held: ReviewNeeded,
        *,
        request: SigningRequest,
        summarize: Callable[[], Mapping[str, object]],
        sign: SignNow,
        wait_s: float | None,
    ) -> Awaitable[wire.SignatureResult | PendingResult]:
        """Sign under a lease, or hold for a person. ``summarize()`` builds what the person
        is shown; it is called only for a request that is held."""
        decision = held.decision
        layer, rule_id = decision.layer, decision.rule_id
        assert rule_id is not None, "a layer's default is allow or deny, never review"
        version = self.ctx.policy.policy_of(wallet.user_id).version_of(layer)
        lease = self.desk.lease_for(
            self.desk.identity(peer), wallet, layer=layer, rule_id=rule_id, version=version
        )
        if lease is not None:
            return self.sign_approved(peer, wallet.user_id, request, layer, rule_id, sign)
        requester = self.desk.requester(peer)  # what a person is shown: read only to hold
        return self._hold(
            peer,
            wallet,
            request=request,
            summary=summarize(),
            sign=sign,
            wait_s=wait_s,
            layer=layer,
            rule_id=rule_id,
            version=version,
            reason=decision.reason,
            requester=requester,
        )

    async def _hold(
        self,
        peer: Peer,
        wallet: Wallet,
        *,
        request: SigningRequest,
        summary: Mapping[str, object],
        sign: SignNow,
        wait_s: float | None,
        layer: str,
        rule_id: str,
        version: int,
        reason: str | None,
        requester: Requester,
    ) -> wire.SignatureResult | PendingResult:
        user_id = wallet.user_id

        async def when_approved() -> object:
            # Signed as the requester's peer: its ownership is checked again then.
            return await self.sign_approved(peer, user_id, request, layer, rule_id, sign)

        entry = await self.desk.hold(
            peer,
            requester,
            wallet,
            op=request.op,
            summary=summary,
            layer=layer,
            rule_id=rule_id,
            version=version,
            reason=reason,
            sign=when_approved,
        )
        if not wait_s:
            return pending_result(entry)
        result = answer(await self.desk.wait(peer, entry.approval_id, wait_s))
        assert isinstance(result, wire.SignatureResult | PendingResult)
        return result

    async def sign_approved(
        self,
        peer: Peer,
        user_id: str,
        request: SigningRequest,
        layer: str,
        rule_id: str,
        sign: SignNow,
    ) -> wire.SignatureResult:
        """Re-check and charge as for a new request, then sign (see the module docstring)."""
        ctx = self.ctx
        while True:
            async with ctx.writer:
                wallet = ctx.wallet_for(peer, user_id)
                state = ctx.policy
                if state.paused_for(wallet.user_id, wallet.owner_uid):
                    raise paused_error(wallet.user_id)
                policy = state.policy_of(user_id)
                now = ctx.now()
                decision = evaluate(
                    policy.admin, policy.owner, state.default, request, now, policy.windows
                )
                same_rule = decision.layer == layer and decision.rule_id == rule_id
                if decision.action is Action.DENY or (
                    decision.action is Action.REVIEW and not same_rule
                ):
                    raise PolicyDenied(denial_message(decision))
                needed = reservations(decision, policy.windows, now)
                if not needed:
                    charge(decision, policy.windows, now)
                    break
                statements: list[Statement] = [
                    sql.put_rate_window(user_id, name, rule, window.reserve(now))
                    for name, rule, window in needed
                ]
                await ctx.commit(statements)
        # No await since the checks: the signature is made under what was just decided.
        result = sign(peer, wallet)
        return result if isinstance(result, wire.SignatureResult) else await result
