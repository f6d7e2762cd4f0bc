"""The approval desk over an in-process daemon's context: holding, deciding, waiting (one
waiter does not hold up others), leases and their ends, sweeps and the audit records.

Peers are built by hand here (the uid rules are the desk's, not the socket's); the tests with
real separate uids go through the daemon. Time is trio's MockClock (autojump).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

from wallet_client import AsyncWalletClient
from walletd.errors import Forbidden, InvalidArgument, NotFound, Unavailable
from walletd.model.approvals import ApprovalLimits, Requester, State
from walletd.model.leases import LeaseLimits, LeaseScope, LeaseTerms
from walletd.model.peer import Peer
from walletd.model.wallets import Wallet
from walletd.ops.approvals import ApprovalDesk, ApprovalSettings
from walletd.server.serve import Server

from .support import MakeConfig, StartServer

APPROVER_GID = 4321
AGENT = Peer(uid=1001, gid=1001, pid=4242, is_admin=False)
AGENT_IN_GROUP = Peer(uid=1001, gid=APPROVER_GID, pid=4242, is_admin=False)
APPROVER = Peer(uid=2002, gid=APPROVER_GID, pid=7000, is_admin=False)
BYSTANDER = Peer(uid=3003, gid=3003, pid=8000, is_admin=False)
ADMIN = Peer(uid=0, gid=0, pid=1, is_admin=True)
PROCESSES = {4242: 99, 4343: 120}  # pid -> start time of the processes "running"


def identify(uid: int, pid: int) -> Requester:
    return Requester(uid=uid, pid=pid, start_time=PROCESSES.get(pid), exe="/usr/bin/agent")


def alive(pid: int, start: int) -> bool:
    return PROCESSES.get(pid) == start


@pytest.fixture
async def server(start_server: StartServer, make_config: MakeConfig) -> Server:
    # MockClock jumps of minutes must not reap the test client's connection as idle.
    started: Server = await start_server(make_config(ephemeral=True, idle_timeout=10**6))
    return started


@pytest.fixture
async def wallet(client: AsyncWalletClient, server: Server) -> Wallet:
    await client.create_wallet("agent")
    found = server.daemon.ctx.book.get("agent")
    assert found is not None
    return found


@pytest.fixture
def desk(server: Server) -> ApprovalDesk:
    settings = ApprovalSettings(
        approver_group=str(APPROVER_GID),
        max_wait_s=120,
        pending=ApprovalLimits(pending_ttl_s=300, max_per_uid=2, max_total=3),
        leases=LeaseLimits(max_ttl_s=3600),
    )
    return ApprovalDesk(
        server.daemon.ctx, settings, alive=alive, identify=identify, start_time=PROCESSES.get
    )


@contextmanager
def autojump(clock: MockClock) -> Iterator[None]:
    """Let virtual time run on its own, but only where no socket I/O is awaited: a jump
    while a client waits for the daemon would fire the client's timeout."""
    clock.autojump_threshold = 0
    try:
        yield
    finally:
        clock.autojump_threshold = math.inf


class Signer:
    """The ``sign`` callable a held request carries: counts calls, returns a fixed result."""

    def __init__(self, result: object = b"signature") -> None:
        self.calls = 0
        self.result = result

    async def __call__(self) -> object:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        return self.result


async def hold(
    desk: ApprovalDesk,
    wallet: Wallet,
    peer: Peer = AGENT,
    sign: Callable[[], Awaitable[object]] | None = None,
) -> str:
    entry = await desk.hold(
        peer,
        desk.requester(peer),
        wallet,
        op="sign_message",
        summary={"kind": "text", "text": "order:buy"},
        layer="admin",
        rule_id="big",
        version=1,
        reason="big orders",
        sign=sign or Signer(),
    )
    return entry.approval_id


async def events(client: AsyncWalletClient) -> list[tuple[str, int, dict[str, Any]]]:
    records = await client.audit_log("agent")
    return [
        (r.event, r.actor_uid, r.detail)
        for r in records
        if "approval" in r.event or "lease" in r.event
    ]


async def test_approve_signs_once_and_hands_the_result_over(
    desk: ApprovalDesk, wallet: Wallet, client: AsyncWalletClient
) -> None:
    sign = Signer()
    approval_id = await hold(desk, wallet, sign=sign)
    assert [e.approval_id for e in desk.pending.pending()] == [approval_id]
    entry, lease = await desk.decide(APPROVER, approval_id, approve=True)
    assert lease is None and sign.calls == 1 and entry.decided_by == APPROVER.uid
    outcome = await desk.wait(AGENT, approval_id, 10)
    assert (outcome.state, outcome.result) == (State.APPROVED, b"signature")
    with pytest.raises(NotFound):
        await desk.wait(AGENT, approval_id, 10)  # handed over once
    log = await events(client)
    assert [(e, uid) for e, uid, _ in log] == [
        ("approval_requested", AGENT.uid),
        ("approval_approved", APPROVER.uid),
    ]
    assert log[0][2]["requester_pid"] == 4242 and log[0][2]["rule_id"] == "big"


@pytest.mark.parametrize(
    ("decider", "allowed"),
    [
        (APPROVER, True),
        (ADMIN, True),
        (BYSTANDER, False),
        (AGENT, False),
        (AGENT_IN_GROUP, False),  # in the approver group, but it asked
        (Peer(uid=1001, gid=1001, pid=9, is_admin=True), False),  # an admin, but it asked
    ],
)
async def test_only_an_approver_who_did_not_ask_may_decide(
    desk: ApprovalDesk, wallet: Wallet, decider: Peer, allowed: bool
) -> None:
    for approve in (True, False):
        approval_id = await hold(desk, wallet)
        if allowed:
            await desk.decide(decider, approval_id, approve=approve)
        else:
            with pytest.raises(Forbidden):
                await desk.decide(decider, approval_id, approve=approve)
            assert desk.pending.get(approval_id).state is State.PENDING
            await desk.cancel(AGENT, approval_id)


async def test_deny_wakes_the_waiter_with_the_reason(
    desk: ApprovalDesk, wallet: Wallet, client: AsyncWalletClient
) -> None:
    sign = Signer()
    approval_id = await hold(desk, wallet, sign=sign)
    got: list[State] = []

    async def waiter() -> None:
        got.append((await desk.wait(AGENT, approval_id, 60)).state)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()  # the waiter is parked in wait()
        assert got == []
        await desk.decide(APPROVER, approval_id, approve=False, reason="not today")
    assert got == [State.DENIED] and sign.calls == 0
    assert desk.pending.get(approval_id).deny_reason == "not today"
    assert (await events(client))[-1][:2] == ("approval_denied", APPROVER.uid)


async def test_one_waiter_does_not_hold_up_another(
    desk: ApprovalDesk, wallet: Wallet, mock_clock: MockClock
) -> None:
    slow, fast = await hold(desk, wallet), await hold(desk, wallet)
    done: dict[str, float] = {}

    async def wait_for(approval_id: str) -> None:
        await desk.wait(AGENT, approval_id, 100)
        done[approval_id] = trio.current_time()

    # Time moves by hand, not by autojump: deciding commits in a worker thread, and an
    # autojump clock would jump to the waiters' deadlines while the loop waits on it.
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_for, slow)
        nursery.start_soon(wait_for, fast)
        await wait_all_tasks_blocked()
        mock_clock.jump(1)
        await desk.decide(APPROVER, fast, approve=True)
        await wait_all_tasks_blocked()
        assert fast in done and slow not in done
        mock_clock.jump(99)
    assert done[fast] - start == pytest.approx(1)
    assert done[slow] - start == pytest.approx(100)  # its own timeout: still pending
    assert desk.pending.get(slow).state is State.PENDING


async def test_waits_are_bounded_by_max_wait_and_by_expiry(
    desk: ApprovalDesk, wallet: Wallet, mock_clock: MockClock, client: AsyncWalletClient
) -> None:
    approval_id = await hold(desk, wallet)
    start = trio.current_time()
    with autojump(mock_clock):
        outcome = await desk.wait(AGENT, approval_id, 10_000)
        assert outcome.state is State.PENDING
        assert trio.current_time() - start == pytest.approx(120)  # max_wait_s
        assert (await desk.wait(AGENT, approval_id, 10_000)).state is State.PENDING
    mock_clock.jump(60)  # by hand: the expiry's audit record is written next
    outcome = await desk.wait(AGENT, approval_id, 10_000)
    assert outcome.state is State.EXPIRED
    assert trio.current_time() - start == pytest.approx(300)  # pending_ttl_s
    with pytest.raises(InvalidArgument, match="expired"):
        await desk.decide(APPROVER, approval_id, approve=True)
    assert (await events(client))[-1][0] == "approval_expired"


async def test_the_background_sweep_expires_and_audits_on_time(
    desk: ApprovalDesk, wallet: Wallet, mock_clock: MockClock, client: AsyncWalletClient
) -> None:
    approval_id = await hold(desk, wallet)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(desk.run)
        mock_clock.jump(299)
        await wait_all_tasks_blocked()
        assert desk.pending.get(approval_id).state is State.PENDING
        mock_clock.jump(2)
        for _ in range(1000):  # the sweep's commit runs in the store's thread
            if [e for e, _, _ in await events(client)][-1] == "approval_expired":
                break
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    assert [e for e, _, _ in await events(client)][-1] == "approval_expired"


async def test_the_caps_refuse_and_log_once_per_minute(
    desk: ApprovalDesk, wallet: Wallet, capsys: pytest.CaptureFixture[str]
) -> None:
    await hold(desk, wallet)
    await hold(desk, wallet)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await hold(desk, wallet)  # per uid
    other = Peer(uid=1005, gid=1005, pid=4343, is_admin=False)
    await hold(desk, wallet, other)
    with pytest.raises(Unavailable):
        await hold(desk, wallet, Peer(uid=1006, gid=1006, pid=4343, is_admin=False))  # total
    assert desk.pending.pending_count() == 3
    assert len(desk._refusals_logged) == 2  # one line per uid, not one per refusal


async def test_cancel_is_for_the_requester_or_an_admin(
    desk: ApprovalDesk, wallet: Wallet, client: AsyncWalletClient
) -> None:
    approval_id = await hold(desk, wallet)
    for peer in (BYSTANDER, APPROVER):
        with pytest.raises(Forbidden):
            await desk.cancel(peer, approval_id)
        with pytest.raises(Forbidden):
            await desk.wait(peer, approval_id, 1)
    await desk.cancel(AGENT, approval_id)
    assert (await desk.wait(AGENT, approval_id, 1)).state is State.CANCELLED
    assert (await events(client))[-1][:2] == ("approval_cancelled", AGENT.uid)


async def test_a_process_lease_covers_that_process_until_it_exits(
    desk: ApprovalDesk, wallet: Wallet, client: AsyncWalletClient
) -> None:
    approval_id = await hold(desk, wallet)
    terms = LeaseTerms(LeaseScope.PROCESS, 600, 20)
    _, lease = await desk.decide(APPROVER, approval_id, approve=True, terms=terms)
    assert lease is not None
    rule: dict[str, Any] = {"layer": "admin", "rule_id": "big", "version": 1}
    assert desk.lease_for(identify(1001, 4242), wallet, **rule) is lease
    assert desk.lease_for(identify(1001, 4343), wallet, **rule) is None  # another process
    reused = Requester(uid=1001, pid=4242, start_time=555)
    assert desk.lease_for(reused, wallet, **rule) is None  # the pid, reused
    PROCESSES[4242] = 556  # the process exits; another takes the pid
    try:
        await desk.sweep()
    finally:
        PROCESSES[4242] = 99
    assert desk.leases.leases() == []
    log = await events(client)
    assert [e for e, _, _ in log][-2:] == ["lease_granted", "lease_ended"]
    assert log[-1][2]["why"] == "process_exited" and log[-1][2]["uses"] == 1


async def test_bad_lease_terms_leave_the_request_pending(
    desk: ApprovalDesk, wallet: Wallet
) -> None:
    sign = Signer()
    approval_id = await hold(desk, wallet, sign=sign)
    with pytest.raises(InvalidArgument):
        await desk.decide(
            APPROVER, approval_id, approve=True, terms=LeaseTerms(LeaseScope.UID, 7200, 1)
        )
    assert desk.pending.get(approval_id).state is State.PENDING and sign.calls == 0


async def test_a_failed_signature_reaches_the_requester_and_grants_no_lease(
    desk: ApprovalDesk, wallet: Wallet
) -> None:
    async def refused() -> object:
        raise NotFound("the wallet of user 'agent' was deleted")

    approval_id = await hold(desk, wallet, sign=refused)
    _, lease = await desk.decide(
        APPROVER, approval_id, approve=True, terms=LeaseTerms(LeaseScope.UID, 60, 5)
    )
    assert lease is None and desk.leases.leases() == []
    outcome = await desk.wait(AGENT, approval_id, 1)
    assert isinstance(outcome.result, NotFound)


async def test_revoke_and_pause_end_leases_with_their_use_counts(
    desk: ApprovalDesk, wallet: Wallet, client: AsyncWalletClient
) -> None:
    first, second = await hold(desk, wallet), await hold(desk, wallet)
    _, a = await desk.decide(APPROVER, first, approve=True, terms=LeaseTerms(LeaseScope.UID))
    _, b = await desk.decide(APPROVER, second, approve=True, terms=LeaseTerms(LeaseScope.WALLET))
    assert a is not None and b is not None
    with pytest.raises(Forbidden):
        await desk.revoke(AGENT, a.lease_id)  # the requester cannot touch it
    await desk.revoke(APPROVER, a.lease_id)
    desk.end_leases(desk.leases.end_paused(user_id="agent"))
    await desk.sweep()
    ends = [(d["lease_id"], d["why"]) for e, _, d in await events(client) if e == "lease_ended"]
    assert ends == [(a.lease_id, "revoked"), (b.lease_id, "paused")]


async def test_a_lease_lookup_reads_no_proc_record_unless_a_process_lease_asks(
    desk: ApprovalDesk, wallet: Wallet
) -> None:
    reads: list[int] = []

    def start_time(pid: int) -> int | None:
        reads.append(pid)
        return PROCESSES.get(pid)

    desk._start_time = start_time
    rule: dict[str, Any] = {"layer": "admin", "rule_id": "big", "version": 1}
    for scope, reads_by_lookup in ((LeaseScope.UID, []), (LeaseScope.PROCESS, [4242])):
        approval_id = await hold(desk, wallet)
        terms = LeaseTerms(scope, 600, 20)
        _, lease = await desk.decide(APPROVER, approval_id, approve=True, terms=terms)
        assert lease is not None
        identity = desk.identity(AGENT)
        assert desk.lease_for(identity, wallet, **rule) is lease
        assert reads == reads_by_lookup  # a uid lease needs no start time at all
        assert identity.process == (4242, 99)
        assert reads == [4242]  # read at most once per lookup
        reads.clear()
        desk.leases.revoke(lease.lease_id)
