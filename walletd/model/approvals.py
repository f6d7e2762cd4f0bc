"""Pending approvals: signing requests held for a person to decide, and who may decide them.

A signing request that the policy sends to ``review`` (and that no lease covers) becomes a
:class:`Pending`: an ``approval_id``, the wallet and op, a bounded summary for the approver,
the requester as the kernel reports it, and the request itself (``payload``, opaque here and
never shown). It lives in a :class:`PendingTable` until one of:

- an approver approves it (``approve``): the daemon signs and parks the result in the entry
  until the requester collects it (``take``) or the entry is dropped;
- an approver denies it, the requester cancels it, or it expires (``pending_ttl_s``, default
  five minutes): refused from then on.

A decided entry is kept for ``keep_decided_s`` so that a requester that did not wait can still
learn the outcome with ``await_approval``; it no longer counts against the caps.

Caps. At most ``max_per_uid`` entries may be pending for one requesting uid and
``max_total`` in all, so an agent cannot flood the approver's queue or the daemon's memory:
``add`` past a cap raises ``Unavailable`` and changes nothing.

Time is injected: ``clock`` gives monotonic seconds (trio's clock in the daemon, so tests use
``MockClock``) and decides expiry; ``wall`` gives Unix seconds, used only for the
``expires_at`` shown to clients. Nothing here survives a restart, on purpose: a restart
forgets every pending approval and lease (the safe default: nothing is approved by accident).

The approver rule (``check_approver``): admins and members of the ``approver_group`` may
decide, and never the uid that asked, even an admin or a member of the group. The daemon
compares the deciding connection's ``SO_PEERCRED`` uid with the requester's
``SO_PEERCRED`` uid recorded at request time; neither value comes from a client.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from walletd.errors import Forbidden, InvalidArgument, NotFound, Unavailable

__all__ = [
    "ApprovalLimits",
    "Pending",
    "PendingTable",
    "Requester",
    "State",
    "check_approver",
]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Requester:
    """The process that asked, as the kernel reports it.

    ``uid`` and ``pid`` come from ``SO_PEERCRED``; the rest from ``/proc/PID`` when it could
    be read (``None`` when the process had already exited or is not ours to read).
    ``start_time`` is field 22 of ``/proc/PID/stat`` (clock ticks after boot): with the pid it
    names one process, so a later process reusing the pid is a different requester.
    """

    uid: int
    pid: int
    start_time: int | None = None
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    unit: str | None = None

    @property
    def process(self) -> tuple[int, int] | None:
        """``(pid, start_time)``, or ``None`` when the start time is unknown."""
        return None if self.start_time is None else (self.pid, self.start_time)

    def as_dict(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "pid": self.pid,
            "start_time": self.start_time,
            "exe": self.exe,
            "cmdline": list(self.cmdline),
            "unit": self.unit,
        }


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ApprovalLimits:
    """The bounds of the pending queue (the daemon fills these from ``[approvals]``)."""

    pending_ttl_s: float = 300.0
    keep_decided_s: float = 300.0
    max_per_uid: int = 8
    max_total: int = 64

    def __post_init__(self) -> None:
        if self.pending_ttl_s <= 0 or self.keep_decided_s < 0:
            raise ValueError("pending_ttl_s must be positive and keep_decided_s not negative")
        if self.max_per_uid < 1 or self.max_total < self.max_per_uid:
            raise ValueError("need 1 <= max_per_uid <= max_total")


@dataclass(slots=True)
class Pending:
    """One held signing request. ``payload`` and ``result`` are the daemon's, never shown."""

    approval_id: str
    user_id: str
    owner_uid: int
    op: str
    summary: Mapping[str, object]
    requester: Requester
    created: float
    expires: float
    expires_at: float
    layer: str | None = None
    rule_id: str | None = None
    version: int = 0  # the deciding layer's version: a lease binds to it
    reason: str | None = None
    payload: object = field(default=None, repr=False)
    state: State = State.PENDING
    decided_by: int | None = None
    decided_at: float | None = None
    deny_reason: str | None = None
    result: object = field(default=None, repr=False)

    def view(self) -> dict[str, object]:
        """What an approver sees (``list_pending``): no payload, no result."""
        return {
            "approval_id": self.approval_id,
            "user_id": self.user_id,
            "op": self.op,
            "layer": self.layer,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "summary": dict(self.summary),
            "requester": self.requester.as_dict(),
            "expires_at": self.expires_at,
            "state": self.state.value,
        }


def check_approver(
    *, approver_uid: int, is_admin: bool, in_approver_group: bool, requester_uid: int
) -> None:
    """Raise ``Forbidden`` unless this peer may decide a request made by ``requester_uid``.

    The uid test comes first and has no exception: an agent whose uid is an admin or in the
    approver group still cannot approve (or deny) its own requests, so nothing in the
    requester's power decides for it.
    """
    if approver_uid == requester_uid:
        raise Forbidden("the requesting uid cannot decide its own approval")
    if not (is_admin or in_approver_group):
        raise Forbidden("deciding approvals needs an admin or a member of approver_group")


def new_approval_id() -> str:
    # Random, so an id says nothing about other requests (ids are not secrets: every
    # operation on one still checks who is asking).
    return "ap_" + secrets.token_hex(8)


class PendingTable:
    """The pending approvals of a daemon, by ``approval_id``, with caps and expiry."""

    def __init__(
        self,
        limits: ApprovalLimits,
        *,
        clock: Clock,
        wall: Clock,
        new_id: Callable[[], str] = new_approval_id,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._new_id = new_id
        self._entries: dict[str, Pending] = {}
        self._pending_by_uid: dict[int, int] = {}
        self._expired: list[Pending] = []  # expired since the last sweep, to be reported

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._entries.values()))

    def pending_count(self, uid: int | None = None) -> int:
        if uid is None:
            return sum(self._pending_by_uid.values())
        return self._pending_by_uid.get(uid, 0)

    def add(
        self,
        *,
        user_id: str,
        owner_uid: int,
        op: str,
        summary: Mapping[str, object],
        requester: Requester,
        payload: object,
        layer: str | None = None,
        rule_id: str | None = None,
        version: int = 0,
        reason: str | None = None,
    ) -> Pending:
        """Hold a new request; ``Unavailable`` (and nothing held) when a cap is reached."""
        self._tidy()
        if self.pending_count() >= self.limits.max_total:
            raise Unavailable("too many signing requests are waiting for approval; retry later")
        if self.pending_count(requester.uid) >= self.limits.max_per_uid:
            raise Unavailable("this uid has too many signing requests waiting for approval")
        now = self._clock()
        approval_id = self._new_id()
        while approval_id in self._entries:  # a collision of 64 random bits: draw again
            approval_id = self._new_id()
        entry = Pending(
            approval_id=approval_id,
            user_id=user_id,
            owner_uid=owner_uid,
            op=op,
            summary=summary,
            requester=requester,
            created=now,
            expires=now + self.limits.pending_ttl_s,
            expires_at=self._wall() + self.limits.pending_ttl_s,
            layer=layer,
            rule_id=rule_id,
            version=version,
            reason=reason,
            payload=payload,
        )
        self._entries[approval_id] = entry
        self._count(requester.uid, +1)
        return entry

    def get(self, approval_id: str) -> Pending:
        """The entry (expired ones turned ``EXPIRED`` first); ``NotFound`` when unknown."""
        entry = self._entries.get(approval_id)
        if entry is None:
            raise NotFound(f"no approval {approval_id!r} (decided long ago, or never made)")
        self._expire_if_due(entry, self._clock())
        return entry

    def pending(self) -> list[Pending]:
        """Entries still waiting for a decision, oldest first."""
        self._tidy()
        return [e for e in self._entries.values() if e.state is State.PENDING]

    def approve(self, approval_id: str, *, by_uid: int) -> Pending:
        return self._decide(approval_id, State.APPROVED, by_uid, None)

    def deny(self, approval_id: str, *, by_uid: int, reason: str | None) -> Pending:
        return self._decide(approval_id, State.DENIED, by_uid, reason)

    def cancel(self, approval_id: str, *, by_uid: int) -> Pending:
        return self._decide(approval_id, State.CANCELLED, by_uid, None)

    def undo_approval(self, approval_id: str) -> None:
        """Put an approved entry back to pending (the daemon could not sign it after all)."""
        entry = self._entries.get(approval_id)
        if entry is not None and entry.state is State.APPROVED and entry.result is None:
            entry.state, entry.decided_by, entry.decided_at = State.PENDING, None, None
            self._count(entry.requester.uid, +1)

    def set_result(self, approval_id: str, result: object) -> None:
        """Park the signature of an approved entry; the request itself is dropped."""
        entry = self.get(approval_id)
        if entry.state is not State.APPROVED:
            raise InvalidArgument(f"approval {approval_id!r} is {entry.state.value}")
        entry.result, entry.payload = result, None

    def take(self, approval_id: str) -> object:
        """The result of an approved entry, handed out once: the entry is dropped after."""
        entry = self.get(approval_id)
        if entry.state is not State.APPROVED or entry.result is None:
            raise InvalidArgument(f"approval {approval_id!r} has no result to collect")
        del self._entries[approval_id]
        return entry.result

    def sweep(self) -> list[Pending]:
        """Expire what is due and drop decided entries past ``keep_decided_s``.

        Returns the entries that expired since the last sweep, including those found expired
        by a lookup or another call (the daemon audits each exactly once)."""
        self._tidy()
        expired, self._expired = self._expired, []
        return expired

    def _tidy(self) -> None:
        now = self._clock()
        for entry in list(self._entries.values()):
            self._expire_if_due(entry, now)
            if entry.decided_at is not None and (
                now >= entry.decided_at + self.limits.keep_decided_s
            ):
                del self._entries[entry.approval_id]

    def clear(self) -> list[Pending]:
        """Forget everything (a stop); returns what was still pending."""
        left = [e for e in self._entries.values() if e.state is State.PENDING]
        self._entries.clear()
        self._pending_by_uid.clear()
        self._expired.clear()
        return left

    def next_deadline(self) -> float | None:
        """The earliest ``expires`` of a pending entry (when a sweep has work next)."""
        due = [e.expires for e in self._entries.values() if e.state is State.PENDING]
        return min(due, default=None)

    # -- internals --------------------------------------------------------------------

    def _decide(self, approval_id: str, state: State, by_uid: int, reason: str | None) -> Pending:
        entry = self.get(approval_id)
        if entry.state is not State.PENDING:
            raise InvalidArgument(f"approval {approval_id!r} is already {entry.state.value}")
        entry.state = state
        entry.decided_by = by_uid
        entry.decided_at = self._clock()
        entry.deny_reason = reason
        if state is not State.APPROVED:
            entry.payload = None  # refused: the message need not stay in memory
        self._count(entry.requester.uid, -1)
        return entry

    def _expire_if_due(self, entry: Pending, now: float) -> bool:
        if entry.state is State.PENDING and now >= entry.expires:
            entry.state = State.EXPIRED
            entry.decided_at = now
            entry.payload = None
            self._count(entry.requester.uid, -1)
            self._expired.append(entry)
            return True
        return False

    def _count(self, uid: int, delta: int) -> None:
        left = self._pending_by_uid.get(uid, 0) + delta
        if left > 0:
            self._pending_by_uid[uid] = left
        else:
            self._pending_by_uid.pop(uid, None)
