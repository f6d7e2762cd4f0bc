"""Leases: an approval that also covers later requests, bounded in scope, time and count.

An approver may grant a lease with an approval. A later signing request that the policy sends
to ``review`` is then allowed without asking again when a live lease matches it:

- the same wallet (``user_id``) and the same deciding rule: the same ``layer``, ``rule_id``
  AND layer ``version``, so rewriting a rule under the same id (which the owner can do to the
  owner layer) ends the lease's reach instead of widening it;
- the lease's scope: ``process`` (the same pid and process start time, so a new process that
  reuses the pid is not covered), ``uid`` (any process of the requesting uid) or ``wallet``
  (any requester this wallet's rules send to review). ``once`` is the default and makes no
  lease: the approval covers its own request only.

A lease ends, and is dropped, at the first of: its ``ttl`` passing, its ``max_uses`` spent, the
bound process exiting (``sweep_processes`` with a cheap liveness check the daemon supplies),
the wallet's owner changing (``end_wallet``, and checked at each use), signing paused for a
scope that covers it (``end_paused``), an admin revoking it (``revoke``), or a restart: leases
live in memory only. Every ending returns :class:`Ended` records carrying the use count, for
the audit log.

Time is injected as in :mod:`walletd.model.approvals` (monotonic ``clock`` decides expiry,
``wall`` gives the ``expires_at`` shown to clients).
"""

from __future__ import annotations

import math
import secrets
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from walletd.errors import InvalidArgument, NotFound, Unavailable

from .approvals import Requester


class Identity(Protocol):
    """Who asks, as far as a lease needs to know: the uid, and for a process lease the
    process ``(pid, start_time)`` (``None`` when unknown). A :class:`Requester` is one; so
    is a peer whose start time is read only when a process lease asks for it."""

    @property
    def uid(self) -> int: ...
    @property
    def process(self) -> tuple[int, int] | None: ...


__all__ = ["Ended", "Lease", "LeaseLimits", "LeaseScope", "LeaseTable", "LeaseTerms"]

Clock = Callable[[], float]


class LeaseScope(StrEnum):
    ONCE = "once"
    PROCESS = "process"
    UID = "uid"
    WALLET = "wallet"


# Module-level aliases for the sign path: on Python 3.11 reading a member off its Enum class
# (``LeaseScope.UID``) costs ~160 ns, an ``is`` against a module global ~20 ns.
_PROCESS = LeaseScope.PROCESS
_UID = LeaseScope.UID
_WALLET = LeaseScope.WALLET


@dataclass(frozen=True, slots=True)
class LeaseLimits:
    """Upper bounds on what an approver may grant (from ``[approvals]``)."""

    max_ttl_s: float = 3600.0
    default_ttl_s: float = 600.0
    max_uses: int = 1000
    default_uses: int = 100
    max_leases: int = 256


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """What the approver asked for: a scope, a lifetime and a number of uses."""

    scope: LeaseScope = LeaseScope.ONCE
    ttl_s: float | None = None
    max_uses: int | None = None

    @classmethod
    def parse(cls, scope: str, ttl_s: float | None, max_uses: int | None) -> LeaseTerms:
        """From wire values; ``InvalidArgument`` naming the field when one is wrong."""
        try:
            kind = LeaseScope(scope)
        except ValueError:
            raise InvalidArgument(
                f"lease scope must be one of {', '.join(s.value for s in LeaseScope)}"
            ) from None
        if ttl_s is not None and not ttl_s > 0:
            raise InvalidArgument("lease ttl_s must be a positive number of seconds")
        if max_uses is not None and max_uses < 1:
            raise InvalidArgument("lease max_uses must be at least 1")
        return cls(kind, ttl_s, max_uses)


@dataclass(slots=True)
class Lease:
    lease_id: str
    user_id: str
    owner_uid: int
    layer: str
    rule_id: str
    version: int
    scope: LeaseScope
    uid: int
    process: tuple[int, int] | None
    max_uses: int
    uses: int
    expires: float
    expires_at: float
    granted_by: int
    approval_id: str

    @property
    def uses_left(self) -> int:
        return self.max_uses - self.uses

    def covers(self, requester: Identity) -> bool:
        scope = self.scope
        if scope is _WALLET:
            return True
        if requester.uid != self.uid:
            return False
        if scope is _UID:
            return True
        process = requester.process  # for a PeerIdentity, the one /proc read, done here only
        return process is not None and process == self.process

    def view(self) -> dict[str, object]:
        """A ``list_leases`` entry."""
        return {
            "lease_id": self.lease_id,
            "user_id": self.user_id,
            "rule_id": self.rule_id,
            "layer": self.layer,
            "scope": self.scope.value,
            "uid": self.uid,
            "pid": None if self.process is None else self.process[0],
            "uses_left": self.uses_left,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Ended:
    """A lease that ended, why, and how many uses it had: one audit record."""

    lease: Lease
    why: str  # "expired" | "spent" | "process_exited" | "owner_changed" | "paused" | "revoked"


def new_lease_id() -> str:
    return "ls_" + secrets.token_hex(8)


class Unsure:
    """What :meth:`LeaseTable.try_spend` answers when only ``use`` can decide."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSURE"


UNSURE = Unsure()


class LeaseTable:
    """The live leases of a daemon (memory only)."""

    def __init__(
        self,
        limits: LeaseLimits,
        *,
        clock: Clock,
        wall: Clock,
        new_id: Callable[[], str] = new_lease_id,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._new_id = new_id
        self._leases: dict[str, Lease] = {}  # every live lease, in grant order
        # The sign path's index: (user_id, layer, rule_id) -> that key's live leases in the
        # order ``use`` tries them (narrowest scope, then soonest expiry, then grant order:
        # what a stable sort of all leases gave). ``use`` sorted every live lease of the
        # daemon on each leased request, O(n log n) with n up to max_leases, and with one
        # lease live the table cost 129 bytecodes a leased request; one dict lookup brings
        # that to 95. Kept by ``grant`` and ``_end`` only (a key's fields never change).
        self._index: dict[tuple[str, str, str], list[Lease]] = {}
        self._expired: list[Ended] = []  # ended by time since the last sweep, to be reported
        # No live lease expires before this (a lower bound: it may be stale after an end),
        # so the tidy every use starts with costs one comparison until something is due.
        self._soonest = math.inf

    def __len__(self) -> int:
        return len(self._leases)

    def grant(
        self,
        terms: LeaseTerms,
        *,
        user_id: str,
        owner_uid: int,
        layer: str,
        rule_id: str,
        version: int,
        requester: Requester,
        granted_by: int,
        approval_id: str,
    ) -> Lease | None:
        """A lease on these terms (``None`` for ``once``); ``InvalidArgument`` past the bounds.

        Checks everything before changing anything, so a refused grant leaves no lease.
        """
        if terms.scope is LeaseScope.ONCE:
            if terms.ttl_s is not None or terms.max_uses is not None:
                raise InvalidArgument("a lease of scope 'once' takes no ttl_s or max_uses")
            return None
        ttl = self.limits.default_ttl_s if terms.ttl_s is None else terms.ttl_s
        if ttl > self.limits.max_ttl_s:
            raise InvalidArgument(f"lease ttl_s is at most {self.limits.max_ttl_s:g} seconds")
        uses = self.limits.default_uses if terms.max_uses is None else terms.max_uses
        if uses > self.limits.max_uses:
            raise InvalidArgument(f"lease max_uses is at most {self.limits.max_uses}")
        process = requester.process
        if terms.scope is LeaseScope.PROCESS and process is None:
            raise InvalidArgument("the requesting process cannot be identified: no process lease")
        self._tidy()
        if len(self._leases) >= self.limits.max_leases:
            raise Unavailable("too many leases are live; revoke some or let them end")
        lease_id = self._new_id()
        while lease_id in self._leases:
            lease_id = self._new_id()
        lease = Lease(
            lease_id=lease_id,
            user_id=user_id,
            owner_uid=owner_uid,
            layer=layer,
            rule_id=rule_id,
            version=version,
            scope=terms.scope,
            uid=requester.uid,
            process=process if terms.scope is LeaseScope.PROCESS else None,
            max_uses=uses,
            uses=0,
            expires=self._clock() + ttl,
            expires_at=self._wall() + ttl,
            granted_by=granted_by,
            approval_id=approval_id,
        )
        self._leases[lease_id] = lease
        # Right of its equals: among leases of one rank and expiry, grant order.
        insort(self._index.setdefault(_key(lease), []), lease, key=_narrowest_first)
        self._soonest = min(self._soonest, lease.expires)
        return lease

    def use(
        self,
        user_id: str,
        owner_uid: int,
        layer: str,
        rule_id: str,
        version: int,
        requester: Identity,
    ) -> tuple[Lease | None, list[Ended]]:
        """Spend one use of a live lease covering this request, if there is one.

        Returns the lease used (or ``None``) and the leases that ended on the way (expired,
        owner changed, or spent by this use), for the audit log. The narrowest lease is
        used first (process, then uid, then wallet; then the soonest to expire), so a broad
        lease is not drained by a process that has its own.
        """
        # ``sweep`` inlined: one clock read and one comparison until a lease is due.
        if self._clock() >= self._soonest:
            self._tidy()
        ended, self._expired = self._expired, []
        candidates = self._index.get((user_id, layer, rule_id))
        if candidates is None:
            return None, ended
        found: Lease | None = None
        stale: list[Lease] | None = None  # another owner's: ended after the walk, in order
        for lease in candidates:
            if lease.owner_uid != owner_uid:
                if stale is None:
                    stale = []
                stale.append(lease)
            elif lease.version == version and lease.covers(requester):
                found = lease
                break
        if stale is not None:
            for lease in stale:
                ended.append(self._end(lease, "owner_changed"))
        if found is not None:
            found.uses += 1
            if found.uses >= found.max_uses:
                ended.append(self._end(found, "spent"))
        return found, ended

    def try_spend(
        self, key: tuple[str, str, str], owner_uid: int, version: int, uid: int
    ) -> Lease | Unsure | None:
        """``use`` for its common case, without its walk: the first lease in line for
        ``key`` (``(user_id, layer, rule_id)``) covers this requester by uid alone (a uid or
        wallet lease), is for this owner and policy version, and keeps a use after this one.
        Then that use is spent and the lease returned, exactly as ``use`` would. None: the
        key has no lease (and no ended lease waits to be reported), as ``use`` would say.
        ``UNSURE`` (nothing spent) for everything else: a process lease first in line,
        another uid's, an owner change, the last use, a lease due to expire, endings to
        report; then call ``use``, which decides every case.

        Why: a leased request must cost about what a plain one does, and ``use`` (its
        calls, its walk, its list of endings) was most of the difference.
        """
        if self._expired or self._clock() >= self._soonest:
            return UNSURE
        candidates = self._index.get(key)
        if candidates is None:
            return None
        lease = candidates[0]
        scope = lease.scope
        if (
            (scope is _WALLET or (scope is _UID and lease.uid == uid))
            and lease.owner_uid == owner_uid
            and lease.version == version
            and lease.uses + 1 < lease.max_uses
        ):
            lease.uses += 1
            return lease
        return UNSURE

    def leases(self, user_id: str | None = None) -> list[Lease]:
        self._tidy()
        return [ls for ls in self._leases.values() if user_id is None or ls.user_id == user_id]

    def revoke(self, lease_id: str) -> Ended:
        self._tidy()
        lease = self._leases.get(lease_id)
        if lease is None:
            raise NotFound(f"no live lease {lease_id!r}")
        return self._end(lease, "revoked")

    def end_wallet(self, user_id: str, why: str = "owner_changed") -> list[Ended]:
        """End every lease on one wallet (its owner changed, or it was deleted)."""
        return [self._end(ls, why) for ls in list(self._leases.values()) if ls.user_id == user_id]

    def end_paused(self, *, uid: int | None = None, user_id: str | None = None) -> list[Ended]:
        """End the leases a pause covers: all (no argument), one owner uid, or one wallet."""
        ended = []
        for lease in list(self._leases.values()):
            if (uid is None or lease.owner_uid == uid) and (
                user_id is None or lease.user_id == user_id
            ):
                ended.append(self._end(lease, "paused"))
        return ended

    def sweep_processes(self, alive: Callable[[int, int], bool]) -> list[Ended]:
        """End process leases whose process has exited: ``alive(pid, start_time)``."""
        ended = []
        for lease in list(self._leases.values()):
            if lease.process is not None and not alive(*lease.process):
                ended.append(self._end(lease, "process_exited"))
        return ended

    def sweep(self) -> list[Ended]:
        """End leases whose ttl has passed; returns every lease that ended by time since the
        last sweep (also those found by another call), so each is audited exactly once."""
        self._tidy()
        expired, self._expired = self._expired, []
        return expired

    def _tidy(self) -> None:
        now = self._clock()
        if now < self._soonest:
            return
        for lease in list(self._leases.values()):
            if now >= lease.expires:
                self._expired.append(self._end(lease, "expired"))
        self._soonest = min((ls.expires for ls in self._leases.values()), default=math.inf)

    def clear(self) -> list[Ended]:
        """A stop: every lease ends (they never outlive the daemon)."""
        self._expired.clear()
        return [self._end(ls, "restart") for ls in list(self._leases.values())]

    def next_deadline(self) -> float | None:
        return min((ls.expires for ls in self._leases.values()), default=None)

    def _end(self, lease: Lease, why: str) -> Ended:
        """The one place a lease leaves: the table and its index entry."""
        if self._leases.pop(lease.lease_id, None) is lease:
            key = _key(lease)
            candidates = self._index[key]
            for i, other in enumerate(candidates):
                if other is lease:  # identity: a dataclass ``==`` compares every field
                    del candidates[i]
                    break
            if not candidates:
                del self._index[key]
        return Ended(lease, why)


_ORDER = {_PROCESS: 0, _UID: 1, _WALLET: 2}


def _key(lease: Lease) -> tuple[str, str, str]:
    """The index key: what a request must share with a lease before its scope is asked."""
    return (lease.user_id, lease.layer, lease.rule_id)


def _narrowest_first(lease: Lease) -> tuple[int, float]:
    return (_ORDER[lease.scope], lease.expires)
