"""The approval desk: holding ``review`` signatures for a person, leases, waiting, and audit.

The signing gate hands a request the policy sent to ``review`` to :meth:`ApprovalDesk.lease_for`
first: a live lease for the same wallet, rule and requester lets it through at once. Otherwise
:meth:`ApprovalDesk.hold` queues it (a :class:`~walletd.model.approvals.Pending`, with a
``sign`` callable that makes the signature when it is approved) and writes the
``approval_requested`` audit record before anyone can see it.

Approvers decide with :meth:`decide`: the approver rule (``check_approver``: admins and members
of ``approver_group``, never the requesting uid) is checked against the deciding connection's
kernel uid. An approval runs the request's ``sign`` (which re-checks ownership, pause and the
policy's limits: an approval never skips them) and parks the signature for the requester.

Waiting is per entry: a ``trio.Event`` set when it is decided, so a waiting connection sleeps
without polling and other connections are not affected; waits are bounded by ``max_wait_s``
and by the entry's own expiry. The background :meth:`run` expires entries and leases on time
and ends process leases whose process exited, writing their audit records (with the use count
of each lease).

Everything here is in memory: a restart ends every pending approval and every lease.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
import trio

from walletd.errors import Forbidden, InvalidArgument, RequestError, Unavailable
from walletd.model.approvals import (
    ApprovalLimits,
    Pending,
    PendingTable,
    Requester,
    State,
    check_approver,
)
from walletd.model.audit_chain import AuditEntry
from walletd.model.leases import (
    Ended,
    Identity,
    Lease,
    LeaseLimits,
    LeaseScope,
    LeaseTable,
    LeaseTerms,
)
from walletd.model.peer import DAEMON, Actor, Peer
from walletd.model.wallets import Wallet
from walletd.ops.approval_audit import entry_record, lease_record
from walletd.ops.context import Context
from walletd.ops.requester import PeerIdentity, process_alive, read_requester, start_time_of

log = structlog.get_logger("walletd")

Sign = Callable[[], Awaitable[object]]

#: How often process leases are checked for an exited process (one /proc read per lease).
PROCESS_SWEEP_S = 2.0
#: At most one ``approval_refused`` log line per uid in this many seconds.
REFUSAL_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    """The daemon's ``[approvals]`` settings, as values."""

    approver_group: str | None = None
    max_wait_s: float = 300.0
    pending: ApprovalLimits = field(default_factory=ApprovalLimits)
    leases: LeaseLimits = field(default_factory=LeaseLimits)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a held request ended, for the one who asked: ``state`` and, when approved, the
    ``result`` of signing (a result, or the ``RequestError`` signing raised)."""

    entry: Pending
    state: State
    result: object = None


class ApprovalDesk:
    def __init__(
        self,
        ctx: Context,
        settings: ApprovalSettings,
        *,
        clock: Callable[[], float] = trio.current_time,
        wall: Callable[[], float] = time.time,
        alive: Callable[[int, int], bool] = process_alive,
        identify: Callable[[int, int], Requester] = read_requester,
        start_time: Callable[[int], int | None] = start_time_of,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.pending = PendingTable(settings.pending, clock=clock, wall=wall)
        self.leases = LeaseTable(settings.leases, clock=clock, wall=wall)
        self._clock = clock
        self._alive = alive
        self._identify = identify
        self._start_time = start_time
        self._decided: dict[str, trio.Event] = {}
        self._ended: list[Ended] = []
        self._refusals_logged: dict[int, float] = {}
        self.changed = trio.Event()  # set (and replaced) whenever the queue changes
        self.closing = False
        self._approver_gid = _resolve_group(settings.approver_group)

    # ------------------------------------------------------------------ who

    def requester(self, peer: Peer) -> Requester:
        """The full ``/proc`` record of the peer's process, for a held request (~100 µs)."""
        return self._identify(peer.uid, peer.pid)

    def identity(self, peer: Peer) -> PeerIdentity:
        """The peer as a lease lookup sees it: no ``/proc`` read unless a process lease asks."""
        return PeerIdentity(peer.uid, peer.pid, self._start_time)

    def in_approver_group(self, peer: Peer) -> bool:
        if self._approver_gid is None:
            return False
        if peer.gid == self._approver_gid:
            return True
        try:
            name = pwd.getpwuid(peer.uid).pw_name
        except KeyError:
            return False
        return self._approver_gid in os.getgrouplist(name, peer.gid)

    def check_decider(self, peer: Peer, entry: Pending) -> None:
        check_approver(
            approver_uid=peer.uid,
            is_admin=peer.is_admin,
            in_approver_group=self.in_approver_group(peer),
            requester_uid=entry.requester.uid,
        )

    def may_see_all(self, peer: Peer) -> bool:
        return peer.is_admin or self.in_approver_group(peer)

    def check_follower(self, peer: Peer, entry: Pending) -> None:
        """Awaiting or cancelling: the requesting uid, or an admin."""
        if peer.uid != entry.requester.uid and not peer.is_admin:
            raise Forbidden(f"approval {entry.approval_id!r} was asked for by another uid")

    # ------------------------------------------------------------------ the sign path

    def lease_for(
        self, requester: Identity, wallet: Wallet, *, layer: str, rule_id: str, version: int
    ) -> Lease | None:
        """Spend one use of a lease covering this request, if one is live (no await)."""
        lease, ended = self.leases.use(
            wallet.user_id, wallet.owner_uid, layer, rule_id, version, requester
        )
        if ended:
            self._ended.extend(ended)
            self._touch()
        return lease

    async def hold(
        self,
        peer: Peer,
        requester: Requester,
        wallet: Wallet,
        *,
        op: str,
        summary: Mapping[str, object],
        layer: str | None,
        rule_id: str | None,
        version: int,
        reason: str | None,
        sign: Sign,
    ) -> Pending:
        """Queue a request for approval; ``Unavailable`` past the caps (nothing queued)."""
        if self.closing:
            raise Unavailable("walletd is shutting down")
        try:
            entry = self.pending.add(
                user_id=wallet.user_id,
                owner_uid=wallet.owner_uid,
                op=op,
                summary=summary,
                requester=requester,
                payload=sign,
                layer=layer,
                rule_id=rule_id,
                version=version,
                reason=reason,
            )
        except Unavailable:
            self._log_refusal(requester.uid)
            raise
        ctx = self.ctx
        try:
            async with ctx.writer:
                record = entry_record(self.ctx, "approval_requested", entry, Actor.of(peer))
                await ctx.commit([], record)
        except BaseException:
            self.pending.cancel(entry.approval_id, by_uid=DAEMON.uid)
            raise
        self._decided[entry.approval_id] = trio.Event()
        self._touch()
        return entry

    # ------------------------------------------------------------------ deciding

    async def decide(
        self,
        peer: Peer,
        approval_id: str,
        *,
        approve: bool,
        terms: LeaseTerms | None = None,
        reason: str | None = None,
    ) -> tuple[Pending, Lease | None]:
        """Approve (sign, and grant a lease on ``terms``) or deny one pending request."""
        entry = self.pending.get(approval_id)
        self.check_decider(peer, entry)
        lease: Lease | None = None
        if not approve:
            self.pending.deny(approval_id, by_uid=peer.uid, reason=reason)
            await self._audit(entry_record(self.ctx, "approval_denied", entry, Actor.of(peer)))
            self._wake(entry)
            return entry, None
        if terms is not None:
            # Validate the lease before deciding, so bad terms leave the request pending.
            lease = self._grant(entry, terms, peer)
        self.pending.approve(approval_id, by_uid=peer.uid)
        sign = entry.payload
        assert callable(sign)
        try:
            result: object = await sign()
        except RequestError as exc:
            result = exc  # the requester learns why (wallet deleted, paused, limit ...)
            if lease is not None:
                self.leases.revoke(lease.lease_id)  # nothing was signed: nothing to extend
                lease = None
        self.pending.set_result(approval_id, result)
        records = [entry_record(self.ctx, "approval_approved", entry, Actor.of(peer))]
        if lease is not None:
            records.append(lease_record(self.ctx, "lease_granted", lease, Actor.of(peer)))
        await self._audit(*records)
        self._wake(entry)
        return entry, lease

    def _grant(self, entry: Pending, terms: LeaseTerms, peer: Peer) -> Lease | None:
        if terms.scope is LeaseScope.ONCE:
            if terms.ttl_s is not None or terms.max_uses is not None:
                raise InvalidArgument("a lease of scope 'once' takes no ttl_s or max_uses")
            return None
        if entry.layer is None or entry.rule_id is None:
            raise InvalidArgument("this request was not sent to review by a rule: no lease")
        return self.leases.grant(
            terms,
            user_id=entry.user_id,
            owner_uid=entry.owner_uid,
            layer=entry.layer,
            rule_id=entry.rule_id,
            version=entry.version,
            requester=entry.requester,
            granted_by=peer.uid,
            approval_id=entry.approval_id,
        )

    async def cancel(self, peer: Peer, approval_id: str) -> Pending:
        entry = self.pending.get(approval_id)
        self.check_follower(peer, entry)
        self.pending.cancel(approval_id, by_uid=peer.uid)
        await self._audit(entry_record(self.ctx, "approval_cancelled", entry, Actor.of(peer)))
        self._wake(entry)
        return entry

    async def revoke(self, peer: Peer, lease_id: str) -> Ended:
        if not self.may_see_all(peer):
            raise Forbidden("revoking a lease needs an admin or a member of approver_group")
        ended = self.leases.revoke(lease_id)
        await self._audit(
            lease_record(self.ctx, "lease_ended", ended.lease, Actor.of(peer), ended.why)
        )
        return ended

    # ------------------------------------------------------------------ waiting

    async def wait(self, peer: Peer, approval_id: str, timeout_s: float) -> Outcome:
        """Wait up to ``timeout_s`` (bounded by ``max_wait_s`` and the entry's expiry).

        A still-pending outcome means the wait ran out; an approved one hands the result
        over (once: the entry is dropped)."""
        entry = self.pending.get(approval_id)
        self.check_follower(peer, entry)
        event = self._decided.get(approval_id)
        undecided = entry.state is State.PENDING or (
            entry.state is State.APPROVED and entry.result is None  # being signed right now
        )
        if undecided and event is not None:
            budget = min(timeout_s, self.settings.max_wait_s, entry.expires - self._clock())
            with trio.move_on_after(max(0.0, budget)):
                await event.wait()
        if self.closing:
            raise Unavailable("walletd is shutting down; the approval ended with it")
        entry = self.pending.get(approval_id)  # expires it if its time is up
        if entry.state is State.EXPIRED:
            await self.sweep()
        if entry.state is State.APPROVED and entry.result is not None:
            self._decided.pop(approval_id, None)
            return Outcome(entry, State.APPROVED, self.pending.take(approval_id))
        return Outcome(entry, entry.state)

    # ------------------------------------------------------------------ time

    async def sweep(self) -> None:
        """Expire due entries and leases, end leases of exited processes, and audit it all."""
        records: list[AuditEntry] = []
        for entry in self.pending.sweep():
            records.append(entry_record(self.ctx, "approval_expired", entry, DAEMON))
            self._wake(entry)
        ended = self._ended + self.leases.sweep() + self.leases.sweep_processes(self._alive)
        for lease in self.leases.leases():
            # A wallet deleted or handed to another uid (recovery) ends its leases.
            wallet = self.ctx.book.get(lease.user_id)
            if wallet is None or wallet.owner_uid != lease.owner_uid:
                ended.extend(self.leases.end_wallet(lease.user_id))
        self._ended = []
        records.extend(lease_record(self.ctx, "lease_ended", e.lease, DAEMON, e.why) for e in ended)
        for approval_id in [a for a in self._decided if a not in _ids(self.pending)]:
            del self._decided[approval_id]
        if records:
            await self._audit(*records)
            self._touch()

    async def run(self) -> None:
        """Background: sweep at the next deadline, and every ``PROCESS_SWEEP_S``."""
        while True:
            due = [d for d in (self.pending.next_deadline(), self.leases.next_deadline()) if d]
            wake = min([*due, self._clock() + PROCESS_SWEEP_S])
            with trio.move_on_at(wake):
                await trio.sleep_forever()
            try:
                await self.sweep()
            except RequestError as exc:
                log.error("approval_sweep_failed", error=exc.message)

    def close(self) -> None:
        """A stop: refuse new holds, wake every waiter (each answers ``pending``, at once,
        rather than hold the shutdown), and forget everything (in memory only, on purpose)."""
        self.closing = True
        for event in self._decided.values():
            event.set()
        left = self.pending.clear()
        ended = self.leases.clear()
        log.info("approvals_closed", pending_dropped=len(left), leases_ended=len(ended))

    def on_pause(self, uid: int | None, user_id: str | None) -> None:
        """A pause began (``PolicyState.pause_hooks``): the leases it covers end now, so a
        resume does not bring them back."""
        self.end_leases(self.leases.end_paused(uid=uid, user_id=user_id))

    def end_leases(self, ended: list[Ended]) -> None:
        """Leases ended by a pause or an owner change: audited by the next sweep."""
        if ended:
            self._ended.extend(ended)
            self._touch()

    # ------------------------------------------------------------------ internals

    def _wake(self, entry: Pending) -> None:
        event = self._decided.get(entry.approval_id)
        if event is not None:
            event.set()
        self._touch()

    def _touch(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def _audit(self, *records: AuditEntry) -> None:
        async with self.ctx.writer:
            await self.ctx.commit([], *records)

    def _log_refusal(self, uid: int) -> None:
        now = self._clock()
        last = self._refusals_logged.get(uid)
        if last is None or now - last >= REFUSAL_LOG_EVERY_S:
            self._refusals_logged[uid] = now
            log.warning(
                "approval_refused",
                requester_uid=uid,
                pending_for_uid=self.pending.pending_count(uid),
                pending_total=self.pending.pending_count(),
            )


def _ids(table: PendingTable) -> set[str]:
    return {entry.approval_id for entry in table}


def _resolve_group(name: str | None) -> int | None:
    # The same rule as admin_group (walletd.server.credentials.resolve_group), which the ops
    # layer may not import: a name, or a numeric gid.
    if name is None:
        return None
    return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
