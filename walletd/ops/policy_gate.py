"""The signing policy on the sign paths: pause check, evaluation, durable limits, denials.

The sign paths call the gate only for wallets in ``PolicyState.watched`` (see
:mod:`walletd.ops.policy_state`), after the ownership check. :meth:`PolicyGate.admit` answers
synchronously in the common cases (allowed with the use already covered by a durable
reservation; paused; a denial already written this minute) and returns an awaitable only when
something must be committed first:

- a rate-window reservation (``walletd.model.rate_window``): the reservation records are
  committed, then the request is evaluated AGAIN (the await may have let other requests use
  the window) and charged with no await in between, so no use is ever past what is durable;
- the first ``signing_denied`` audit record of a wallet and rule in a minute. Later denials
  of that minute are counted in memory and written as one record with their ``count`` when
  the minute has ended (the background flusher) or at a clean stop, so a loop that is denied
  cannot flood the audit chain.

A use is charged when the gate admits a signature, just before the signature is made; a
signature that then fails (a rotation that could not be stored) still counts: the window
errs strict, never lenient. A ``review`` verdict raises :class:`ReviewNeeded` once the daemon
holds reviews (``holds_reviews``; see :mod:`walletd.ops.review`), which the single sign paths
turn into a pending approval; a batch item sent to review is refused with ``policy_denied``
(one held request per signature: sign that item on its own). Without it, ``review`` is
refused with ``policy_denied``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

import structlog
import trio

import walletd_wire as wire
from walletd.errors import PolicyDenied, RequestError, SigningPaused, not_found
from walletd.model.audit_chain import AuditEntry
from walletd.model.leases import UNSURE
from walletd.model.peer import DAEMON, Actor, Peer
from walletd.model.policy_compiled import Admission
from walletd.model.policy_eval import (
    Decision,
    charge,
    evaluate,
    reservations,
)
from walletd.model.policy_request import SigningRequest
from walletd.model.policy_rules import Action
from walletd.model.rate_window import ReservationNeeded
from walletd.model.wallets import Wallet
from walletd.ops.approvals import ApprovalDesk
from walletd.ops.context import Context
from walletd.ops.policy_state import DENIAL_MINUTE, DenialBucket, PolicyState, WalletPolicy
from walletd.storage import sql
from walletd.storage.store import Statement

log = structlog.get_logger("walletd")

#: At most this many distinct uids are named in one aggregated denial record.
MAX_UIDS_IN_RECORD = 16


class ReviewNeeded(Exception):
    """The policy sends this signature to a person (not an error: the sign path holds it)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("review")
        self.decision = decision


def denial_message(decision: Decision) -> str:
    """Names the rule and layer, never what was to be signed."""
    rule = decision.rule_id
    which = f"rule {rule!r}" if rule is not None else "the daemon's default ([signing] default)"
    if decision.action is Action.REVIEW:
        return (
            f"{which} of the {decision.layer} layer sends this signature to human review, "
            "which a batch cannot wait for; sign it on its own"
        )
    reason = f" ({decision.reason})" if decision.reason else ""
    return f"signing refused by {which} of the {decision.layer} layer{reason}"


def paused_error(user_id: str) -> SigningPaused:
    return SigningPaused(
        f"signing with the wallet of user {user_id!r} is paused by an admin "
        "(walletctl resume lifts it)"
    )


# Reading an Enum member off its class costs ~160 ns on Python 3.11; the sign path reads this.
_REVIEW = Action.REVIEW
_TYPED_OP = "sign_typed_data"


def _request(op: str, wallet: Wallet, subject: bytes | SigningRequest) -> SigningRequest:
    """The request a slow path needs, from what the compiled admission was given."""
    if isinstance(subject, SigningRequest):
        return subject
    return SigningRequest(op, wallet.key_type, subject)


def _prepare(state: PolicyState, wallet: Wallet, op: str) -> tuple[WalletPolicy, Admission]:
    """The wallet's policy and compiled admission for ``op``, kept in ``state.ready`` until
    the next change of any policy (``PolicyState.refresh_watched`` empties it)."""
    policy = state.wallets.get(wallet.user_id) or state.unset
    admission = policy.admissions.get(
        policy.admin, policy.owner, state.default, op, wallet.key_type
    )
    ready = state.ready[op, wallet.user_id, wallet.key_type] = (policy, admission)
    return ready


class PolicyGate:
    """Admits (and charges) or refuses signatures for wallets that have a policy."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.holds_reviews = False  # set by the daemon once its approval desk exists
        self.desk: ApprovalDesk | None = None  # the same desk, for leases (set with it)

    @property
    def state(self) -> PolicyState:
        return self.ctx.policy

    # ------------------------------------------------------------------ one signature

    def admit(self, peer: Peer, wallet: Wallet, request: SigningRequest) -> Awaitable[None] | None:
        """``admit_subject`` for a request object (batch items, typed data)."""
        subject = request if request.op == _TYPED_OP else request.message
        assert subject is not None, "a message op always carries its message"
        return self.admit_subject(peer, wallet, request.op, subject, request)

    def admit_subject(
        self,
        peer: Peer,
        wallet: Wallet,
        op: str,
        subject: bytes | SigningRequest,
        request: SigningRequest | None = None,
    ) -> Awaitable[None] | None:
        """None: admitted and charged. Raises PolicyDenied / SigningPaused / ReviewNeeded.
        An awaitable when a reservation or the minute's first denial record must be
        committed first. ``subject`` is what the compiled admission takes: the message for
        a message op, the request for ``sign_typed_data``; ``sign_message`` passes its
        message alone, and a ``SigningRequest`` is built only if a slow path needs one."""
        state = self.ctx.policy
        if state.pauses and state.paused_for(wallet.user_id, wallet.owner_uid):
            raise paused_error(wallet.user_id)
        ready = state.ready.get((op, wallet.user_id, wallet.key_type))
        if ready is None:
            ready = _prepare(state, wallet, op)
        policy, admission = ready
        now = self.ctx.clock()
        try:
            # All or nothing, and it refuses a use no durable reservation covers: the common
            # case needs no separate reservations() check.
            decision = admission(subject, now, policy.windows)
        except ReservationNeeded:
            return self._admit_slow(peer, wallet, request or _request(op, wallet, subject))
        if decision is None:
            return None
        # Refused or held: the decision says which rule, which layer.
        if decision.action is _REVIEW and self.holds_reviews and op != "sign_batch":
            if self._leased(peer, wallet, policy, decision, now):
                return None
            raise ReviewNeeded(decision)
        if self._count_denial(peer, wallet, decision, now):
            raise PolicyDenied(denial_message(decision))
        return self._first_denial(peer, wallet, decision)

    def _leased(
        self, peer: Peer, wallet: Wallet, policy: WalletPolicy, decision: Decision, now: float
    ) -> bool:
        """Whether a live lease lets this review through now: then one of its uses is spent
        and the decision's limits are charged, exactly as for an ``allow`` (nothing has
        waited since the decision), and the signature is made on the plain path. False
        leaves it to :class:`~walletd.ops.review.Review`: held for a person, or a lease
        whose limits need a durable reservation first."""
        desk = self.desk
        if desk is None:
            return False
        rule_id = decision.rule_id
        assert rule_id is not None, "a layer's default is allow or deny, never review"
        layer = decision.layer
        version = policy.version_of(layer)
        limited = decision.limited
        if not limited:
            # Most review rules have no limit, so nothing to reserve or charge, and the
            # lease table's common case answers at once (LeaseTable.try_spend).
            key = (wallet.user_id, layer, rule_id)
            spent = desk.leases.try_spend(key, wallet.owner_uid, version, peer.uid)
            if spent is not UNSURE:
                return spent is not None
        elif reservations(decision, policy.windows, now):
            return False
        lease = desk.lease_for(
            desk.identity(peer), wallet, layer=layer, rule_id=rule_id, version=version
        )
        if lease is None:
            return False
        if limited:
            charge(decision, policy.windows, now)
        return True

    async def _first_denial(self, peer: Peer, wallet: Wallet, decision: Decision) -> None:
        """Write the minute's first denial record of this wallet and rule, then refuse."""
        async with self.ctx.writer:
            await self.ctx.commit([], self._denial_entry(peer, wallet, decision))
        raise PolicyDenied(denial_message(decision))

    async def _admit_slow(self, peer: Peer, wallet: Wallet, request: SigningRequest) -> None:
        ctx = self.ctx
        while True:
            async with ctx.writer:
                # Re-check after the wait: deleted, handed over or paused meanwhile.
                if ctx.wallet_for(peer, wallet.user_id) is not wallet:
                    raise not_found(f"the wallet of user {wallet.user_id!r} was deleted")
                state = self.state
                if state.paused_for(wallet.user_id, wallet.owner_uid):
                    raise paused_error(wallet.user_id)
                policy = state.policy_of(wallet.user_id)
                now = ctx.now()
                decision = evaluate(
                    policy.admin, policy.owner, state.default, request, now, policy.windows
                )
                if (
                    decision.action is Action.REVIEW
                    and self.holds_reviews
                    and request.op != "sign_batch"
                ):
                    raise ReviewNeeded(decision)
                if decision.action is not Action.ALLOW:
                    if not self._count_denial(peer, wallet, decision, now):
                        await ctx.commit([], self._denial_entry(peer, wallet, decision))
                    raise PolicyDenied(denial_message(decision))
                needed = reservations(decision, policy.windows, now)
                if not needed:
                    charge(decision, policy.windows, now)
                    return
                statements: list[Statement] = [
                    sql.put_rate_window(wallet.user_id, layer, rule_id, window.reserve(now))
                    for layer, rule_id, window in needed
                ]
                await ctx.commit(statements)
            # Loop: evaluate again (the commit let other requests run, and a layer may have
            # been replaced meanwhile), now covered by the reservation, and charge.

    # ------------------------------------------------------------------ a batch

    def admit_many(
        self, peer: Peer, wallet: Wallet, requests: Sequence[SigningRequest]
    ) -> list[wire.ErrorBody | None] | Awaitable[list[wire.ErrorBody | None]]:
        """Per item: None (admitted and charged, in order) or the error of its refusal.
        A pause refuses the whole batch (raised)."""
        if self.state.paused_for(wallet.user_id, wallet.owner_uid):
            raise paused_error(wallet.user_id)
        out: list[wire.ErrorBody | None] = []
        for index, request in enumerate(requests):
            try:
                pending = self.admit(peer, wallet, request)
            except (PolicyDenied, SigningPaused) as exc:
                out.append(wire.ErrorBody(exc.code, exc.message))
                continue
            if pending is not None:
                return self._admit_many_slow(peer, wallet, requests, out, index, pending)
            out.append(None)
        return out

    async def _admit_many_slow(
        self,
        peer: Peer,
        wallet: Wallet,
        requests: Sequence[SigningRequest],
        out: list[wire.ErrorBody | None],
        index: int,
        pending: Awaitable[None],
    ) -> list[wire.ErrorBody | None]:
        for position in range(index, len(requests)):
            try:
                if position != index:
                    pending_next = self.admit(peer, wallet, requests[position])
                    if pending_next is not None:
                        await pending_next
                else:
                    await pending
            except (PolicyDenied, SigningPaused) as exc:
                out.append(wire.ErrorBody(exc.code, exc.message))
                continue
            out.append(None)
        return out

    # ------------------------------------------------------------------ denials

    def _count_denial(self, peer: Peer, wallet: Wallet, decision: Decision, now: float) -> bool:
        """True when this minute already has its first record for this wallet and rule: the
        denial is counted for the aggregate. False: the caller writes the first record."""
        key = (wallet.user_id, decision.layer, decision.rule_id or "(default)")
        minute = int(now // DENIAL_MINUTE)
        denials = self.state.denials
        bucket = denials.get(key)
        if bucket is not None and bucket.minute == minute:
            if bucket.count == 0:
                bucket.first_at = now
            bucket.count += 1
            bucket.last_at = now
            if len(bucket.uids) < MAX_UIDS_IN_RECORD:
                bucket.uids.add(peer.uid)
            return True
        if bucket is not None and bucket.count:
            # Last minute's aggregate not flushed yet: keep it under an older key so the
            # flusher writes it; the new minute starts with this first denial.
            denials[(*key[:2], f"{key[2]}@{bucket.minute}")] = bucket
        denials[key] = DenialBucket(
            minute=minute, address=wallet.address, action=decision.action.value
        )
        return False

    def _denial_entry(self, peer: Peer, wallet: Wallet, decision: Decision) -> AuditEntry:
        return self.ctx.audit(
            "signing_denied",
            wallet.user_id,
            [wallet.address],
            Actor.of(peer),
            outcome="denied",
            detail={
                "rule_id": decision.rule_id,
                "layer": decision.layer,
                "action": decision.action.value,
                "count": 1,
            },
        )

    async def flush_denials(self, *, final: bool = False) -> int:
        """Write the aggregates of minutes that have ended (all of them when ``final``);
        returns how many records were written."""
        ctx = self.ctx
        async with ctx.writer:
            denials = self.state.denials
            minute_now = int(ctx.now() // DENIAL_MINUTE)
            due = [
                (key, bucket)
                for key, bucket in denials.items()
                if bucket.count and (final or bucket.minute < minute_now)
            ]
            if not due:
                # Drop buckets of ended minutes that had only their first denial.
                for key in [k for k, b in denials.items() if b.minute < minute_now]:
                    del denials[key]
                return 0
            entries = []
            for (user_id, layer, rule_key), bucket in due:
                rule_id = rule_key.split("@", 1)[0]
                entries.append(
                    ctx.audit(
                        "signing_denied",
                        user_id,
                        [bucket.address] if bucket.address else [],
                        DAEMON,
                        outcome="denied",
                        detail={
                            "rule_id": None if rule_id == "(default)" else rule_id,
                            "layer": layer,
                            "action": bucket.action,
                            "count": bucket.count,
                            "aggregated": True,
                            "first_at": bucket.first_at,
                            "last_at": bucket.last_at,
                            "uids": sorted(bucket.uids),
                        },
                    )
                )
            await ctx.commit([], *entries)
            for key, bucket in due:
                if final or bucket.minute < minute_now or "@" in key[2]:
                    denials.pop(key, None)
                else:
                    bucket.count = 0
            return len(entries)

    async def flush_loop(self) -> None:
        """Background: write ended minutes' aggregates (checked every second)."""
        while True:
            await trio.sleep(1.0)
            try:
                await self.flush_denials()
            except RequestError as exc:
                log.error("denial_flush_failed", error=exc.message)

    async def final_flush(self) -> None:
        """A clean stop: every pending aggregate, and every rate window's exact record."""
        await self.flush_denials(final=True)
        ctx = self.ctx
        async with ctx.writer:
            rows = [sql.put_rate_window(*r) for r in self.state.exact_records()]
            if rows and not ctx.ephemeral:
                with trio.CancelScope(shield=True):
                    await ctx.store.write(rows)
