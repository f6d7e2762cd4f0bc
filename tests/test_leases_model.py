"""Leases without a daemon: scopes, rule binding, TTL and uses on MockClock, and every end."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from trio.testing import MockClock

from walletd.errors import InvalidArgument, NotFound, Unavailable
from walletd.model.approvals import Requester
from walletd.model.leases import Lease, LeaseLimits, LeaseScope, LeaseTable, LeaseTerms

from .support import Clock

AGENT = Requester(uid=1001, pid=4242, start_time=99)
SAME_UID_OTHER_PROCESS = Requester(uid=1001, pid=4343, start_time=120)
PID_REUSED = Requester(uid=1001, pid=4242, start_time=5000)  # same pid, a new process
OTHER_UID = Requester(uid=1002, pid=5151, start_time=7)
RULE = {"user_id": "agent", "owner_uid": 1001, "layer": "admin", "rule_id": "big", "version": 3}


def leases(clock: MockClock, **limits: float) -> LeaseTable:
    return LeaseTable(
        LeaseLimits(**limits),  # type: ignore[arg-type]
        clock=clock.current_time,
        wall=Clock(1_800_000_000.0),
    )


def grant(
    t: LeaseTable,
    scope: LeaseScope,
    ttl_s: float | None = 600,
    max_uses: int | None = 20,
    requester: Requester = AGENT,
) -> Lease:
    lease = t.grant(
        LeaseTerms(scope, ttl_s, max_uses),
        **RULE,  # type: ignore[arg-type]
        requester=requester,
        granted_by=2000,
        approval_id="ap_1",
    )
    assert lease is not None
    return lease


def use(t: LeaseTable, requester: Requester = AGENT, **changes: object) -> Lease | None:
    found, _ = t.use(**{**RULE, **changes}, requester=requester)  # type: ignore[arg-type]
    return found


@pytest.mark.parametrize(
    ("scope", "requester", "covered"),
    [
        (LeaseScope.PROCESS, AGENT, True),
        (LeaseScope.PROCESS, SAME_UID_OTHER_PROCESS, False),
        (LeaseScope.PROCESS, PID_REUSED, False),
        (LeaseScope.PROCESS, Requester(uid=1001, pid=4242), False),  # start time unknown
        (LeaseScope.PROCESS, OTHER_UID, False),
        (LeaseScope.UID, AGENT, True),
        (LeaseScope.UID, SAME_UID_OTHER_PROCESS, True),
        (LeaseScope.UID, PID_REUSED, True),
        (LeaseScope.UID, OTHER_UID, False),
        (LeaseScope.WALLET, AGENT, True),
        (LeaseScope.WALLET, OTHER_UID, True),
    ],
)
def test_a_lease_covers_requesters_by_its_scope(
    scope: LeaseScope, requester: Requester, covered: bool
) -> None:
    t = leases(MockClock())
    grant(t, scope)
    assert (use(t, requester) is not None) is covered


@pytest.mark.parametrize(
    "changes",
    [
        {"rule_id": "other"},
        {"layer": "owner"},
        {"version": 4},  # the layer was rewritten: the same id may now match more
        {"user_id": "another-wallet"},
    ],
)
def test_a_lease_is_bound_to_its_wallet_and_rule(changes: dict[str, Any]) -> None:
    t = leases(MockClock())
    lease = grant(t, LeaseScope.WALLET)
    assert use(t, **changes) is None
    assert lease.uses == 0 and len(t) == 1


def test_once_makes_no_lease_and_takes_no_terms() -> None:
    t = leases(MockClock())
    assert t.grant(LeaseTerms(), **RULE, requester=AGENT, granted_by=0, approval_id="a") is None  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        t.grant(
            LeaseTerms(LeaseScope.ONCE, 60, None),
            **RULE,  # type: ignore[arg-type]
            requester=AGENT,
            granted_by=0,
            approval_id="a",
        )
    assert len(t) == 0


@pytest.mark.parametrize(
    ("scope", "ttl_s", "max_uses", "requester", "message"),
    [
        (LeaseScope.UID, 3601, 10, AGENT, "ttl_s is at most"),
        (LeaseScope.UID, 60, 1001, AGENT, "max_uses is at most"),
        (LeaseScope.PROCESS, 60, 10, Requester(uid=1001, pid=4242), "cannot be identified"),
    ],
)
def test_grants_past_the_bounds_are_refused_and_make_nothing(
    scope: LeaseScope, ttl_s: float, max_uses: int, requester: Requester, message: str
) -> None:
    t = leases(MockClock(), max_ttl_s=3600, max_uses=1000)
    with pytest.raises(InvalidArgument, match=message):
        grant(t, scope, ttl_s, max_uses, requester)
    assert len(t) == 0


@pytest.mark.parametrize(
    ("scope", "ttl_s", "max_uses"),
    [("forever", 60, 1), ("uid", 0, 1), ("uid", -5, 1), ("uid", 60, 0)],
)
def test_bad_wire_terms_are_invalid_argument(scope: str, ttl_s: float, max_uses: int) -> None:
    with pytest.raises(InvalidArgument):
        LeaseTerms.parse(scope, ttl_s, max_uses)


def test_the_defaults_fill_what_the_approver_left_out() -> None:
    t = leases(MockClock(), default_ttl_s=600, default_uses=100)
    lease = grant(t, LeaseScope.UID, None, None)
    assert (lease.uses_left, lease.expires, lease.expires_at) == (100, 600, 1_800_000_600.0)


def test_a_lease_ends_at_its_ttl() -> None:
    clock = MockClock()
    t = leases(clock)
    lease = grant(t, LeaseScope.PROCESS, ttl_s=600)
    clock.jump(599)
    assert use(t) is lease
    clock.jump(1)
    found, ended = t.use(**RULE, requester=AGENT)  # type: ignore[arg-type]
    assert found is None
    assert [(e.lease.lease_id, e.why, e.lease.uses) for e in ended] == [
        (lease.lease_id, "expired", 1)
    ]
    assert t.leases() == []


def test_a_lease_that_ended_by_time_is_reported_once_whoever_noticed() -> None:
    clock = MockClock()
    t = leases(clock)
    lease = grant(t, LeaseScope.UID, ttl_s=60)
    clock.jump(60)
    assert t.leases() == []  # a listing noticed it
    assert [(e.lease, e.why) for e in t.sweep()] == [(lease, "expired")]
    assert t.sweep() == []


def test_a_lease_ends_when_its_uses_are_spent() -> None:
    t = leases(MockClock())
    lease = grant(t, LeaseScope.UID, max_uses=3)
    assert use(t) is lease and use(t) is lease
    found, ended = t.use(**RULE, requester=AGENT)  # type: ignore[arg-type]
    assert found is lease and [e.why for e in ended] == ["spent"]
    assert lease.uses_left == 0
    assert use(t) is None


def test_an_owner_change_ends_the_lease() -> None:
    t = leases(MockClock())
    grant(t, LeaseScope.WALLET)
    found, ended = t.use(**{**RULE, "owner_uid": 1002}, requester=AGENT)  # type: ignore[arg-type]
    assert found is None and [e.why for e in ended] == ["owner_changed"]
    assert len(t) == 0


def test_end_wallet_ends_only_that_wallets_leases() -> None:
    t = leases(MockClock())
    grant(t, LeaseScope.UID)
    other = t.grant(
        LeaseTerms(LeaseScope.UID, 60, 1),
        **{**RULE, "user_id": "b"},  # type: ignore[arg-type]
        requester=AGENT,
        granted_by=0,
        approval_id="x",
    )
    assert [e.lease.user_id for e in t.end_wallet("agent")] == ["agent"]
    assert t.leases() == [other]


@pytest.mark.parametrize(
    ("pause", "left"),
    [
        ({}, []),  # everything paused
        ({"uid": 1001}, ["b"]),  # the wallets of one owner uid
        ({"user_id": "agent"}, ["b"]),  # one wallet
        ({"user_id": "nobody"}, ["agent", "b"]),
    ],
)
def test_pause_ends_the_leases_it_covers(pause: dict[str, object], left: list[str]) -> None:
    t = leases(MockClock())
    grant(t, LeaseScope.UID)
    t.grant(
        LeaseTerms(LeaseScope.UID, 60, 1),
        **{**RULE, "user_id": "b", "owner_uid": 1002},  # type: ignore[arg-type]
        requester=OTHER_UID,
        granted_by=0,
        approval_id="x",
    )
    ended = t.end_paused(**pause)  # type: ignore[arg-type]
    assert all(e.why == "paused" for e in ended)
    assert sorted(ls.user_id for ls in t.leases()) == left


def test_a_process_lease_ends_when_its_process_exits() -> None:
    t = leases(MockClock())
    bound = grant(t, LeaseScope.PROCESS)
    grant(t, LeaseScope.UID)
    assert t.sweep_processes(lambda pid, start: (pid, start) == (4242, 99)) == []
    ended = t.sweep_processes(lambda pid, start: False)
    assert [(e.lease.lease_id, e.why) for e in ended] == [(bound.lease_id, "process_exited")]
    assert [ls.scope for ls in t.leases()] == [LeaseScope.UID]


def test_revoke_ends_a_lease_and_names_unknown_ones() -> None:
    t = leases(MockClock())
    lease = grant(t, LeaseScope.UID)
    use(t)
    ended = t.revoke(lease.lease_id)
    assert (ended.why, ended.lease.uses) == ("revoked", 1)
    with pytest.raises(NotFound):
        t.revoke(lease.lease_id)
    assert use(t) is None


def test_the_narrowest_lease_is_used_first() -> None:
    t = leases(MockClock())
    wide = grant(t, LeaseScope.WALLET)
    narrow = grant(t, LeaseScope.PROCESS)
    assert use(t) is narrow
    assert use(t, OTHER_UID) is wide


def test_a_restart_ends_every_lease() -> None:
    t = leases(MockClock())
    grant(t, LeaseScope.UID)
    grant(t, LeaseScope.WALLET)
    assert [e.why for e in t.clear()] == ["restart", "restart"]
    assert len(t) == 0


def test_the_number_of_live_leases_is_capped() -> None:
    t = leases(MockClock(), max_leases=2)
    grant(t, LeaseScope.UID)
    grant(t, LeaseScope.UID)
    with pytest.raises(Unavailable):
        grant(t, LeaseScope.UID)


def test_the_list_entry_names_what_the_issue_asks() -> None:
    t = leases(MockClock())
    view = grant(t, LeaseScope.PROCESS, max_uses=5).view()
    assert {"lease_id", "user_id", "rule_id", "scope", "uses_left", "expires_at"} <= set(view)
    assert (view["scope"], view["uses_left"], view["pid"]) == ("process", 5, 4242)
    assert replace(AGENT, start_time=None).process is None
