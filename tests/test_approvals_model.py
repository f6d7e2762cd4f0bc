"""The pending-approval queue and the approver rule, without a daemon (MockClock for time)."""

from __future__ import annotations

import pytest
from trio.testing import MockClock

from walletd.errors import Forbidden, InvalidArgument, NotFound, Unavailable
from walletd.model.approvals import (
    ApprovalLimits,
    Pending,
    PendingTable,
    Requester,
    State,
    check_approver,
)

from .support import Clock

AGENT = Requester(uid=1001, pid=4242, start_time=99, exe="/usr/bin/agent", cmdline=("agent",))
OTHER = Requester(uid=1002, pid=5151, start_time=7)
SECRET = b"transfer 5 ETH to 0xabc"


def table(clock: MockClock, wall: Clock | None = None, **limits: float) -> PendingTable:
    return PendingTable(
        ApprovalLimits(**limits),  # type: ignore[arg-type]
        clock=clock.current_time,
        wall=wall or Clock(),
    )


def hold(t: PendingTable, requester: Requester = AGENT, user_id: str = "agent") -> Pending:
    return t.add(
        user_id=user_id,
        owner_uid=requester.uid,
        op="sign_message",
        summary={"kind": "text", "text": "hello"},
        requester=requester,
        payload=SECRET,
        layer="admin",
        rule_id="big",
        reason="big transfers",
    )


def test_a_held_request_shows_its_facts_and_never_its_payload() -> None:
    wall = Clock(1_800_000_000.0)
    t = table(MockClock(), wall, pending_ttl_s=300)
    entry = hold(t)
    view = entry.view()
    assert view["state"] == "pending"
    assert view["expires_at"] == 1_800_000_300.0
    assert view["requester"] == AGENT.as_dict()
    assert (view["rule_id"], view["layer"], view["reason"]) == ("big", "admin", "big transfers")
    assert SECRET not in repr(view).encode()
    assert SECRET.decode() not in repr(entry)
    assert t.get(entry.approval_id) is entry
    assert entry.approval_id.startswith("ap_")


@pytest.mark.parametrize(
    ("per_uid", "total", "requesters", "refused_at"),
    [
        (2, 10, [AGENT, AGENT, AGENT], 2),  # the per-uid cap
        (2, 3, [AGENT, OTHER, OTHER, AGENT], 3),  # the total cap, though AGENT has room
        (1, 2, [AGENT, OTHER], None),  # one each fits
    ],
)
def test_the_pending_caps_refuse_with_unavailable_and_hold_nothing(
    per_uid: int, total: int, requesters: list[Requester], refused_at: int | None
) -> None:
    t = table(MockClock(), max_per_uid=per_uid, max_total=total)
    for i, requester in enumerate(requesters):
        if i == refused_at:
            before = len(t)
            with pytest.raises(Unavailable):
                hold(t, requester)
            assert len(t) == before
        else:
            hold(t, requester)


def test_a_decision_frees_a_place_under_the_cap() -> None:
    t = table(MockClock(), max_per_uid=1, max_total=4)
    first = hold(t)
    with pytest.raises(Unavailable):
        hold(t)
    t.deny(first.approval_id, by_uid=0, reason="no")
    hold(t)
    assert t.pending_count(AGENT.uid) == 1


def test_a_pending_approval_expires_at_its_ttl_and_is_refused_then() -> None:
    clock = MockClock()
    t = table(clock, pending_ttl_s=300)
    entry = hold(t)
    clock.jump(299.9)
    assert t.get(entry.approval_id).state is State.PENDING
    assert t.next_deadline() == pytest.approx(300.0)
    clock.jump(0.1)
    assert [e.approval_id for e in t.sweep()] == [entry.approval_id]
    assert t.sweep() == []  # reported once
    assert entry.state is State.EXPIRED and entry.payload is None
    with pytest.raises(InvalidArgument, match="expired"):
        t.approve(entry.approval_id, by_uid=0)
    assert t.pending_count() == 0


def test_expiry_is_seen_without_a_sweep() -> None:
    clock = MockClock()
    t = table(clock, pending_ttl_s=10)
    entry = hold(t)
    clock.jump(10)
    assert t.get(entry.approval_id).state is State.EXPIRED
    assert t.pending() == []
    assert t.sweep() == [entry]  # still reported, once, for the audit log
    assert t.sweep() == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("approve", "approve"),
        ("approve", "deny"),
        ("deny", "approve"),
        ("cancel", "approve"),
        ("deny", "cancel"),
    ],
)
def test_an_approval_is_decided_once(first: str, second: str) -> None:
    t = table(MockClock())
    entry = hold(t)
    decide = {
        "approve": lambda: t.approve(entry.approval_id, by_uid=0),
        "deny": lambda: t.deny(entry.approval_id, by_uid=0, reason="r"),
        "cancel": lambda: t.cancel(entry.approval_id, by_uid=AGENT.uid),
    }
    decide[first]()
    state = entry.state
    with pytest.raises(InvalidArgument, match="already"):
        decide[second]()
    assert entry.state is state and entry.decided_by is not None


def test_a_refusal_drops_the_request_and_an_approval_keeps_it_until_signed() -> None:
    t = table(MockClock())
    denied, approved = hold(t), hold(t)
    t.deny(denied.approval_id, by_uid=0, reason="looks wrong")
    assert denied.payload is None and denied.deny_reason == "looks wrong"
    t.approve(approved.approval_id, by_uid=0)
    assert approved.payload == SECRET
    t.set_result(approved.approval_id, b"sig")
    assert approved.payload is None
    assert t.take(approved.approval_id) == b"sig"
    with pytest.raises(NotFound):
        t.take(approved.approval_id)  # handed out once


def test_a_result_cannot_be_taken_before_it_exists() -> None:
    t = table(MockClock())
    entry = hold(t)
    with pytest.raises(InvalidArgument):
        t.take(entry.approval_id)
    with pytest.raises(InvalidArgument):
        t.set_result(entry.approval_id, b"sig")


def test_undo_puts_an_unsigned_approval_back_in_the_queue() -> None:
    t = table(MockClock(), max_per_uid=1)
    entry = hold(t)
    t.approve(entry.approval_id, by_uid=0)
    t.undo_approval(entry.approval_id)
    assert entry.state is State.PENDING and t.pending_count(AGENT.uid) == 1


def test_decided_entries_are_kept_for_a_while_then_forgotten() -> None:
    clock = MockClock()
    t = table(clock, keep_decided_s=60)
    entry = hold(t)
    t.deny(entry.approval_id, by_uid=0, reason=None)
    clock.jump(59)
    assert t.get(entry.approval_id).state is State.DENIED
    clock.jump(1)
    t.sweep()
    with pytest.raises(NotFound):
        t.get(entry.approval_id)


def test_clear_forgets_everything_and_reports_what_was_pending() -> None:
    t = table(MockClock())
    a, b = hold(t), hold(t, OTHER)
    t.approve(b.approval_id, by_uid=0)
    assert [e.approval_id for e in t.clear()] == [a.approval_id]
    assert len(t) == 0 and t.pending_count() == 0


@pytest.mark.parametrize(
    ("approver_uid", "is_admin", "in_group", "requester_uid", "allowed"),
    [
        (2000, False, True, 1001, True),  # a member of approver_group
        (0, True, False, 1001, True),  # an admin
        (2000, False, False, 1001, False),  # a bystander
        (1001, False, True, 1001, False),  # the requester, though in the group
        (1001, True, True, 1001, False),  # the requester, though an admin
        (0, True, False, 0, False),  # root asked: another approver must decide
    ],
)
def test_the_approver_rule(
    approver_uid: int, is_admin: bool, in_group: bool, requester_uid: int, allowed: bool
) -> None:
    def check() -> None:
        check_approver(
            approver_uid=approver_uid,
            is_admin=is_admin,
            in_approver_group=in_group,
            requester_uid=requester_uid,
        )

    if allowed:
        check()
    else:
        with pytest.raises(Forbidden):
            check()


@pytest.mark.parametrize(
    "limits",
    [
        {"pending_ttl_s": 0},
        {"keep_decided_s": -1},
        {"max_per_uid": 0},
        {"max_per_uid": 5, "max_total": 4},
    ],
)
def test_impossible_limits_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ApprovalLimits(**limits)  # type: ignore[arg-type]
