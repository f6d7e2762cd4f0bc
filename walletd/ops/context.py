"""What every operation shares: the wallet book, the store, the audit chain and the rules for
finding a wallet the caller may use and for committing a change.

The rule for every change: take the writer lock, check, build the statements and audit
entries, commit them (shielded from cancellation), and only then change memory. A failed commit
raises ``storage_error`` and leaves memory exactly as it was.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from walletd.config import Config
from walletd.errors import forbidden, not_found
from walletd.model.audit_chain import AuditChain, AuditEntry
from walletd.model.peer import Actor, Peer
from walletd.model.ritual import Ritual
from walletd.model.validation import check_user_id
from walletd.model.wallets import Wallet, WalletBook
from walletd.ops.policy_state import PolicyState
from walletd.storage import sql
from walletd.storage.sealing import Sealer
from walletd.storage.store import AsyncStore, Statement
from walletd_wire import RotationPolicy

log = structlog.get_logger("walletd")


def group_member(uid: int, gid: int, group: str) -> bool:
    """``uid`` (primary ``gid``) is a member of ``group``; False when the group does not exist.

    Asked of the system's group database at each call (policy writes are rare), so a change
    of membership counts from the next request."""
    try:
        target = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    if target == gid:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return target in os.getgrouplist(name, gid)


def default_policy(config: Config) -> RotationPolicy:
    return RotationPolicy(
        max_age_days=config.rotation_max_age_days,
        max_signatures=config.rotation_max_signatures,
        auto_rotate=config.rotation_auto_rotate,
    )


@dataclass(eq=False)
class Context:
    config: Config
    book: WalletBook
    store: AsyncStore
    chain: AuditChain
    sealer: Sealer
    ephemeral: bool
    clock: Callable[[], float] = time.time
    rituals: dict[str, Ritual] = field(default_factory=dict)
    policy: PolicyState = field(kw_only=True)  # the signing policy (walletd.ops.policy_state)
    writer: trio.Lock = field(default_factory=trio.Lock)
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0

    def now(self) -> float:
        return self.clock()

    # ------------------------------------------------------------------ lookups

    def wallet_for(self, peer: Peer, user_id: str) -> Wallet:
        """The wallet ``peer`` may use, or not_found / forbidden / invalid_argument."""
        wallet = self.book.wallets.get(user_id)
        if wallet is None:
            check_user_id(user_id)  # a malformed id is invalid_argument, not "not found"
            raise not_found(f"no wallet for user {user_id!r}")
        if not peer.may_use(wallet.owner_uid):
            raise forbidden(f"the wallet of user {user_id!r} belongs to another uid")
        return wallet

    def member_of(self, peer: Peer, group: str) -> bool:
        """Whether the peer's uid is in ``group`` (a name or a numeric gid)."""
        return group_member(peer.uid, peer.gid, group)

    def require_admin(self, peer: Peer, what: str) -> None:
        if not peer.is_admin:
            raise forbidden(f"{what} is for admins only")

    # ------------------------------------------------------------------ changes

    def audit(
        self,
        event: str,
        user_id: str | None,
        addresses: list[str],
        actor: Actor,
        *,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Prepare an audit entry for the transaction being built (writer lock held)."""
        return self.chain.prepare(
            timestamp=self.now(),
            event=event,
            user_id=user_id,
            addresses=addresses,
            actor_uid=actor.uid,
            actor_pid=actor.pid,
            outcome=outcome,
            detail=detail,
        )

    async def commit(self, statements: Sequence[Statement], *entries: AuditEntry) -> None:
        """Make ``statements`` and ``entries`` durable in one transaction (writer lock held).

        Shielded: once a commit starts, cancellation waits for it, so a change is never on disk
        while memory still disagrees.
        """
        assert self.writer.locked(), "commit without the writer lock"
        batch = list(statements)
        batch.extend(sql.insert_audit(entry) for entry in entries)
        if entries:
            batch.append(sql.put_audit_head(*self.chain.pending_head()))
        with trio.CancelScope(shield=True):
            try:
                await self.store.write(batch)
            except BaseException:
                self.chain.discard()
                raise
        self.chain.accept()
        for entry in entries:
            log.info(
                entry.event,
                user_id=entry.user_id,
                addresses=entry.addresses,
                actor_uid=entry.actor_uid,
                outcome=entry.outcome,
                **entry.detail,
            )

    async def flush_counters(self, *, final: bool = False) -> int:
        """Write signature counters that changed since the last flush; returns how many.

        ``final`` (a clean shutdown): the counts written are exact and nothing signs after
        them, so the auto-rotate reservations are cleared in the same transaction; a load
        that still finds one knows the daemon did not stop cleanly (see walletd.rotation).
        """
        async with self.writer:
            if not self.book.unflushed and not final:
                return 0
            pending = list(self.book.unflushed)
            rows: list[Statement] = [
                sql.set_signature_count(w.user_id, w.address, w.signature_count) for w in pending
            ]
            if final:
                rows.append(sql.CLEAR_RESERVATIONS)
            self.book.unflushed.clear()
            try:
                with trio.CancelScope(shield=True):
                    await self.store.write(rows)
            except BaseException:
                self.book.unflushed.update(pending)  # try again next time
                raise
            return len(pending)
