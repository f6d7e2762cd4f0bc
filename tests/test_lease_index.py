"""The lease index of walletd.model.leases.LeaseTable against the semantics it replaced.

``use`` once sorted every live lease of the daemon and scanned them all; it now looks up one
``(user_id, layer, rule_id)`` list kept in the order it tries them. A hypothesis state machine
drives the table and :class:`Reference` (that old linear scan and sort, written plainly here)
with the same grants, uses, revokes, pauses, owner changes, process exits and clock advances
on an injected clock, and checks every step that the same lease is used and the same leases
end, for the same reasons, with the same use counts. Then: a use reads no lease of another
key at all, and the order among equal scopes is the old one (soonest expiry, then grant).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from trio.testing import MockClock

from walletd.errors import InvalidArgument, NotFound, Unavailable
from walletd.model.approvals import Requester
from walletd.model.leases import (
    UNSURE,
    Ended,
    Lease,
    LeaseLimits,
    LeaseScope,
    LeaseTable,
    LeaseTerms,
    Unsure,
)

from .support import Clock

REQUESTERS = [
    Requester(uid=1001, pid=4242, start_time=99),
    Requester(uid=1001, pid=4343, start_time=120),  # same uid, another process
    Requester(uid=1001, pid=4242, start_time=5000),  # the pid reused by a new process
    Requester(uid=1001, pid=4242),  # start time unknown: no process lease
    Requester(uid=1002, pid=5151, start_time=7),
]
WALLETS = ["agent", "helper"]
OWNERS = [1001, 1002]  # a use with the other owner is a wallet handed over meanwhile
LAYERS = ["admin", "owner"]
RULES = ["big"]  # one rule: more leases share a key, so order among them matters
VERSIONS = [1, 2]
SCOPES = [LeaseScope.PROCESS, LeaseScope.UID, LeaseScope.WALLET]
MAX_LEASES = 6

# One request of a use, drawn for the state machine's use and try_spend alike.
REQUEST: dict[str, Any] = {
    "requester": st.sampled_from(REQUESTERS),
    "user_id": st.sampled_from(WALLETS),
    "owner_uid": st.sampled_from(OWNERS),
    "layer": st.sampled_from(LAYERS),
    "rule_id": st.sampled_from(RULES),
    "version": st.sampled_from(VERSIONS),
}

# What one ending is, compared across the two: (lease_id, why, uses).
Ending = tuple[str, str, int]


@dataclass
class Ref:
    """One lease of the reference: the fields the old ``use`` read."""

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

    def covers(self, requester: Requester) -> bool:
        if self.scope == LeaseScope.WALLET:
            return True
        if self.scope == LeaseScope.UID:
            return requester.uid == self.uid
        return requester.uid == self.uid and (
            requester.process is not None and requester.process == self.process
        )


class Reference:
    """The old table: a list in grant order, sorted and scanned whole on every use; expiry
    found at the same calls as the table (grant, use, sweep, leases, revoke)."""

    RANK = {LeaseScope.PROCESS: 0, LeaseScope.UID: 1, LeaseScope.WALLET: 2}

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.live: list[Ref] = []
        self.expired: list[Ending] = []
        self.granted = 0

    def end(self, ref: Ref, why: str) -> Ending:
        self.live.remove(ref)
        return (ref.lease_id, why, ref.uses)

    def tidy(self) -> None:
        now = self.clock()
        for ref in list(self.live):
            if now >= ref.expires:
                self.expired.append(self.end(ref, "expired"))

    def sweep(self) -> list[Ending]:
        self.tidy()
        expired, self.expired = self.expired, []
        return expired

    def grant(
        self, scope: LeaseScope, ttl: float, uses: int, requester: Requester, **key: Any
    ) -> str:
        if scope == LeaseScope.PROCESS and requester.process is None:
            raise InvalidArgument("no process")
        self.tidy()
        if len(self.live) >= MAX_LEASES:
            raise Unavailable("full")
        self.granted += 1
        lease_id = f"ls_{self.granted}"
        process = requester.process if scope == LeaseScope.PROCESS else None
        self.live.append(
            Ref(
                lease_id,
                scope=scope,
                uid=requester.uid,
                process=process,
                max_uses=uses,
                uses=0,
                expires=self.clock() + ttl,
                **key,
            )
        )
        return lease_id

    def use(self, requester: Requester, **request: Any) -> tuple[str | None, list[Ending]]:
        ended = self.sweep()
        for ref in sorted(self.live, key=lambda r: (self.RANK[r.scope], r.expires)):
            if (ref.user_id, ref.layer, ref.rule_id) != (
                request["user_id"],
                request["layer"],
                request["rule_id"],
            ):
                continue
            if ref.owner_uid != request["owner_uid"]:
                ended.append(self.end(ref, "owner_changed"))
                continue
            if ref.version == request["version"] and ref.covers(requester):
                ref.uses += 1
                if ref.uses >= ref.max_uses:
                    ended.append(self.end(ref, "spent"))
                return ref.lease_id, ended
        return None, ended

    def end_where(self, why: str, ends: Callable[[Ref], bool]) -> list[Ending]:
        return [self.end(ref, why) for ref in list(self.live) if ends(ref)]


def endings(ended: list[Ended]) -> list[Ending]:
    return [(e.lease.lease_id, e.why, e.lease.uses) for e in ended]


def use_order(leases: list[Lease]) -> list[Lease]:
    """The order the old ``use`` tried a key's leases in: a stable sort of grant order."""
    rank = {LeaseScope.PROCESS: 0, LeaseScope.UID: 1, LeaseScope.WALLET: 2}
    return sorted(leases, key=lambda ls: (rank[ls.scope], ls.expires))


class LeaseIndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = MockClock()
        ids = itertools.count(1)
        self.table = LeaseTable(
            LeaseLimits(max_leases=MAX_LEASES),
            clock=self.clock.current_time,
            wall=Clock(),
            new_id=lambda: f"ls_{next(ids)}",
        )
        self.ref = Reference(self.clock.current_time)

    @rule(
        scope=st.sampled_from(SCOPES),
        ttl=st.sampled_from([1.0, 2.0, 5.0]),
        uses=st.integers(1, 3),
        requester=st.sampled_from(REQUESTERS),
        user_id=st.sampled_from(WALLETS),
        owner_uid=st.sampled_from(OWNERS),
        layer=st.sampled_from(LAYERS),
        rule_id=st.sampled_from(RULES),
        version=st.sampled_from(VERSIONS),
    )
    def grant(
        self, scope: LeaseScope, ttl: float, uses: int, requester: Requester, **key: Any
    ) -> None:
        try:
            expected: str | type[Exception] = self.ref.grant(scope, ttl, uses, requester, **key)
        except (InvalidArgument, Unavailable) as e:
            expected = type(e)
        terms = LeaseTerms(scope, ttl, uses)
        given: dict[str, Any] = {**key, "requester": requester, "granted_by": 2000}
        if isinstance(expected, str):
            lease = self.table.grant(terms, **given, approval_id="ap_1")
            assert lease is not None and lease.lease_id == expected
        else:
            with pytest.raises(expected):
                self.table.grant(terms, **given, approval_id="ap_1")

    @rule(**REQUEST)
    def use(self, requester: Requester, **request: Any) -> None:
        expected = self.ref.use(requester, **request)
        found, ended = self.table.use(**request, requester=requester)
        assert (None if found is None else found.lease_id, endings(ended)) == expected

    @rule(**REQUEST)
    def try_spend(self, requester: Requester, **request: Any) -> None:
        # The sign path's shortcut: when it answers, it is use's answer with nothing ended;
        # when it is unsure it changes nothing, and use (here) decides.
        key = (request["user_id"], request["layer"], request["rule_id"])
        before = [(ls.lease_id, ls.uses) for ls in self.table._leases.values()]
        got = self.table.try_spend(key, request["owner_uid"], request["version"], requester.uid)
        if got is UNSURE:
            assert [(ls.lease_id, ls.uses) for ls in self.table._leases.values()] == before
            self.use(requester, **request)
            return
        assert not isinstance(got, Unsure)
        expected = self.ref.use(requester, **request)
        assert (None if got is None else got.lease_id, []) == expected

    @rule(pick=st.integers(0, MAX_LEASES))
    def revoke(self, pick: int) -> None:
        lease_id = f"ls_{max(1, self.ref.granted - pick)}"  # recent ones, live or ended
        self.ref.tidy()
        refs = [ref for ref in self.ref.live if ref.lease_id == lease_id]
        if not refs:
            with pytest.raises(NotFound):
                self.table.revoke(lease_id)
            return
        expected = self.ref.end(refs[0], "revoked")
        assert endings([self.table.revoke(lease_id)]) == [expected]

    @rule(user_id=st.sampled_from(WALLETS))
    def end_wallet(self, user_id: str) -> None:
        expected = self.ref.end_where("owner_changed", lambda r: r.user_id == user_id)
        assert endings(self.table.end_wallet(user_id)) == expected

    @rule(uid=st.sampled_from([None, *OWNERS]), user_id=st.sampled_from([None, *WALLETS]))
    def pause(self, uid: int | None, user_id: str | None) -> None:
        expected = self.ref.end_where(
            "paused",
            lambda r: (
                (uid is None or r.owner_uid == uid) and (user_id is None or r.user_id == user_id)
            ),
        )
        assert endings(self.table.end_paused(uid=uid, user_id=user_id)) == expected

    @rule(alive=st.sets(st.sampled_from([(4242, 99), (4343, 120)])))
    def process_exits(self, alive: set[tuple[int, int]]) -> None:
        expected = self.ref.end_where(
            "process_exited", lambda r: r.process is not None and r.process not in alive
        )
        ended = self.table.sweep_processes(lambda pid, start: (pid, start) in alive)
        assert endings(ended) == expected

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    def advance(self, seconds: float) -> None:
        self.clock.jump(seconds)

    @rule()
    def sweep(self) -> None:
        assert endings(self.table.sweep()) == self.ref.sweep()

    @rule(user_id=st.sampled_from([None, *WALLETS]))
    def list_leases(self, user_id: str | None) -> None:
        self.ref.tidy()
        expected = [r.lease_id for r in self.ref.live if user_id is None or r.user_id == user_id]
        assert [ls.lease_id for ls in self.table.leases(user_id)] == expected

    @rule()
    def clear(self) -> None:
        self.ref.expired.clear()
        expected = self.ref.end_where("restart", lambda r: True)
        assert endings(self.table.clear()) == expected

    @invariant()
    def same_live_leases(self) -> None:
        assert len(self.table) == len(self.ref.live)
        deadline = min((r.expires for r in self.ref.live), default=None)
        assert self.table.next_deadline() == deadline

    @invariant()
    def index_is_every_live_lease_in_use_order(self) -> None:
        by_key: dict[tuple[str, str, str], list[Lease]] = {}
        for lease in self.table._leases.values():
            by_key.setdefault((lease.user_id, lease.layer, lease.rule_id), []).append(lease)
        expected = {key: [ls.lease_id for ls in use_order(v)] for key, v in by_key.items()}
        index = {key: [ls.lease_id for ls in v] for key, v in self.table._index.items()}
        assert index == expected  # no empty lists left behind either


LeaseIndexMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_lease_index_matches_the_sorted_scan = LeaseIndexMachine.TestCase


# ---------------------------------------------------------------- a use reads one key only

READS: list[str] = []


class Watched(Lease):
    """A lease that records every attribute read (the same slots: ``__class__`` swaps in)."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        READS.append(name)
        return super().__getattribute__(name)


AGENT = REQUESTERS[0]
RULE: dict[str, Any] = {"owner_uid": 1001, "layer": "admin", "rule_id": "big", "version": 3}


def table(clock: MockClock, max_leases: int = 256) -> LeaseTable:
    return LeaseTable(LeaseLimits(max_leases=max_leases), clock=clock.current_time, wall=Clock())


def grant(t: LeaseTable, scope: LeaseScope, ttl_s: float = 600, **key: Any) -> Lease:
    lease = t.grant(
        LeaseTerms(scope, ttl_s, 20),
        **{"user_id": "agent", **RULE, **key},
        requester=AGENT,
        granted_by=2000,
        approval_id="ap_1",
    )
    assert lease is not None
    return lease


def test_a_use_reads_no_lease_of_another_wallet_or_rule() -> None:
    t = table(MockClock(), max_leases=1000)
    others = [grant(t, LeaseScope.UID, user_id=f"other-{n}") for n in range(300)]
    others += [grant(t, LeaseScope.WALLET, rule_id=f"rule-{n}") for n in range(300)]
    wide = grant(t, LeaseScope.WALLET)
    narrow = grant(t, LeaseScope.PROCESS)
    for lease in others:
        lease.__class__ = Watched
    READS.clear()

    found, ended = t.use(user_id="agent", **RULE, requester=AGENT)
    assert found is narrow and ended == []
    assert t.use(user_id="nobody", **RULE, requester=AGENT) == (None, [])
    assert READS == []  # not one of the 600 other leases was looked at
    assert [ls.lease_id for ls in t._index[("agent", "admin", "big")]] == [
        narrow.lease_id,
        wide.lease_id,
    ]
    assert len(t._index) == 601 and len(t) == 602


def test_equal_scopes_go_soonest_expiry_then_grant_order() -> None:
    clock = MockClock()
    t = table(clock)
    late = grant(t, LeaseScope.UID, ttl_s=600)
    first = grant(t, LeaseScope.UID, ttl_s=300)
    second = grant(t, LeaseScope.UID, ttl_s=300)
    process = grant(t, LeaseScope.PROCESS, ttl_s=900)
    order = [process, first, second, late]
    assert t._index[("agent", "admin", "big")] == order
    for lease in order:  # each used until spent (20 uses), then the next
        for _ in range(20):
            found, _ = t.use(user_id="agent", **RULE, requester=AGENT)
            assert found is lease
    assert t.use(user_id="agent", **RULE, requester=AGENT) == (None, [])
    assert t._index == {}


@settings(max_examples=300, deadline=None)
@given(
    grants=st.lists(
        st.tuples(
            st.sampled_from(SCOPES),
            st.sampled_from(REQUESTERS),
            st.integers(1, 4),
            st.sampled_from([1.0, 3.0, 600.0]),
        ),
        max_size=4,
    ),
    steps=st.lists(
        st.tuples(
            st.sampled_from(REQUESTERS),
            st.sampled_from([1001, 1001, 1001, 1002]),  # now and then the wallet changed hands
            st.sampled_from([3, 3, 3, 4]),  # now and then the layer was replaced
            st.sampled_from([0.0, 0.0, 0.5, 2.0]),
        ),
        max_size=20,
    ),
)
def test_try_spend_answers_as_use_would(
    grants: list[tuple[LeaseScope, Requester, int, float]],
    steps: list[tuple[Requester, int, int, float]],
) -> None:
    # Two tables given the same leases on one key: one asked try_spend first (and use when
    # it is unsure), the other asked use only. They spend, end and report alike.
    clock = MockClock()
    tables = []
    for _ in range(2):
        ids = itertools.count(1)
        t = LeaseTable(
            LeaseLimits(max_leases=8),
            clock=clock.current_time,
            wall=Clock(),
            new_id=lambda ids=ids: f"ls_{next(ids)}",  # type: ignore[misc]
        )
        for scope, requester, uses, ttl in grants:
            if scope is LeaseScope.PROCESS and requester.process is None:
                continue
            t.grant(
                LeaseTerms(scope, ttl, uses),
                user_id="agent",
                owner_uid=1001,
                layer="admin",
                rule_id="big",
                version=3,
                requester=requester,
                granted_by=2000,
                approval_id="ap_1",
            )
        tables.append(t)
    fast, plain = tables
    key = ("agent", "admin", "big")
    for requester, owner_uid, version, advance in steps:
        clock.jump(advance)
        request: dict[str, Any] = {"user_id": "agent", "owner_uid": owner_uid}
        request |= {"layer": "admin", "rule_id": "big", "version": version}
        got = fast.try_spend(key, owner_uid, version, requester.uid)
        if got is UNSURE:
            found, ended = fast.use(**request, requester=requester)
        else:
            assert not isinstance(got, Unsure)
            found, ended = got, []
        expected, expected_ended = plain.use(**request, requester=requester)
        assert (None if found is None else found.lease_id) == (
            None if expected is None else expected.lease_id
        )
        assert endings(ended) == endings(expected_ended)
        assert [(ls.lease_id, ls.uses) for ls in fast.leases()] == [
            (ls.lease_id, ls.uses) for ls in plain.leases()
        ]
