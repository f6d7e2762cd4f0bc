"""A leased review on the sign path (walletd.ops.policy_gate.PolicyGate._leased): the lease lets
a request through at once, spends one use and charges the rule's limit as an ``allow`` would,
falls back to the review path when a durable reservation is due first, and never lets more
through than the limit; once it is spent or revoked the request is held again.

Peers are built by hand and requests go to the dispatcher (the uid rules of approvals have
their own daemon tests with real uids, tests/test_approvals_daemon.py); the daemon is durable,
so the rate window needs reservations every ``count // 4`` uses.
"""

from __future__ import annotations

from typing import Any

import pytest

import walletd_wire as wire
from walletd.model.approvals import Requester
from walletd.model.peer import Peer
from walletd.ops.dispatch import Dispatcher
from walletd.server.serve import Server

from .support import MakeConfig, StartServer

APPROVER_GID = 4321
ADMIN = Peer(uid=0, gid=0, pid=1, is_admin=True)
AGENT = Peer(uid=1001, gid=1001, pid=4242, is_admin=False)
APPROVER = Peer(uid=2002, gid=APPROVER_GID, pid=7000, is_admin=False)
LIMIT = 8
RULES: list[dict[str, Any]] = [
    {"id": "orders", "action": "review", "limit": {"count": LIMIT, "window_s": 3600}},
    {"id": "rest", "action": "deny"},
]


@pytest.fixture
async def server(start_server: StartServer, make_config: MakeConfig) -> Server:
    config = make_config(idle_timeout=10**6)
    config.approvals.approver_group = str(APPROVER_GID)
    started: Server = await start_server(config)
    return started


async def run(dispatcher: Dispatcher, peer: Peer, request: wire.Request) -> Any:
    response = dispatcher.run(peer, request)
    if not isinstance(response, wire.OkResponse | wire.ErrorResponse):
        response = await response
    return response


async def sign(dispatcher: Dispatcher, message: bytes) -> Any:
    return await run(dispatcher, AGENT, wire.SignMessage(id=9, user_id="agent", message=message))


async def leased_wallet(server: Server) -> str:
    """The agent's wallet under RULES, its first request approved with a uid lease of 100
    uses (which signs that request): the lease's id."""
    dispatcher = server.daemon.dispatcher
    assert (await run(dispatcher, ADMIN, wire.CreateWallet(id=1, user_id="agent"))).ok
    server.daemon.ctx.book.wallets["agent"].owner_uid = AGENT.uid  # the agent's wallet
    policy = wire.SetSigningPolicy(
        id=2, user_id="agent", layer="admin", rules=RULES, expected_version=0
    )
    assert (await run(dispatcher, ADMIN, policy)).ok
    held = await sign(dispatcher, b"order:0")
    assert held.ok and held.result.kind == "pending"
    lease = wire.LeaseSpec(scope="uid", ttl_s=600, max_uses=100)
    approve = wire.Approve(id=3, approval_id=held.result.approval_id, lease=lease)
    approved = await run(dispatcher, APPROVER, approve)
    assert approved.ok and approved.result.lease is not None
    lease_id: str = approved.result.lease.lease_id
    return lease_id


async def test_a_lease_signs_at_once_and_charges_the_limit(server: Server) -> None:
    dispatcher = server.daemon.dispatcher
    await leased_wallet(server)  # the approval used 1 of the limit's 8

    desk = server.daemon.approvals
    looked_up: list[int] = []
    full_record = desk._identify

    def recorded(uid: int, pid: int) -> Requester:
        looked_up.append(pid)
        return full_record(uid, pid)

    desk._identify = recorded
    # Under the lease every request signs at once, the reservations included (every
    # count // 4 = 2 uses a durable one is due, and the review path commits it first).
    for n in range(1, LIMIT):
        answer = await sign(dispatcher, b"order:%d" % n)
        assert answer.ok and isinstance(answer.result, wire.SignatureResult), answer
    assert looked_up == []  # no request was held: the /proc record was never read
    windows = server.daemon.ctx.policy.policy_of("agent").windows
    assert windows.admin["orders"].remaining(server.daemon.ctx.clock()) == 0
    # The limit is used up: the review rule no longer matches and "rest" denies.
    refused = await sign(dispatcher, b"order:late")
    assert not refused.ok and refused.error.code == "policy_denied"
    assert "'rest'" in refused.error.message
    (live,) = (await run(dispatcher, ADMIN, wire.ListLeases(id=4))).result.leases
    assert live.uses_left == 100 - (LIMIT - 1)  # one use per leased signature


async def test_a_revoked_lease_holds_the_next_request_again(server: Server) -> None:
    dispatcher = server.daemon.dispatcher
    lease_id = await leased_wallet(server)
    assert isinstance((await sign(dispatcher, b"order:1")).result, wire.SignatureResult)
    revoked = await run(dispatcher, ADMIN, wire.RevokeLease(id=5, lease_id=lease_id))
    assert revoked.ok
    again = await sign(dispatcher, b"order:2")
    assert again.ok and again.result.kind == "pending"
