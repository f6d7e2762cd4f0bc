"""Human approval through a daemon, with real separate uids: the requester (nobody), an
approver (uid 1000, in approver_group) and a bystander (uid 34). The daemon is in-process
(its socket open to other uids); the children are real processes under those uids.
"""

from __future__ import annotations

import functools
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient, PendingApproval, WalletClient
from walletd.config import ApprovalsConfig
from walletd.server.serve import Server

from . import approval_children as kids
from .support import NOBODY, DaemonFactory, MakeConfig, StartServer, call_as, wait_until
from .test_policy_daemon import permit

pytestmark = pytest.mark.root

APPROVER = (1000, 1000)  # its primary gid is the approver_group
BYSTANDER = (34, 34)
REQUESTER = (NOBODY.pw_uid, NOBODY.pw_gid)
REVIEW_ORDERS = [{"id": "orders", "action": "review", "reason": "orders need a person"}]


def _uid_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


if not all(_uid_exists(uid) for uid in (APPROVER[0], BYSTANDER[0])):
    pytest.skip("needs uids 1000 and 34 on this machine", allow_module_level=True)


@pytest.fixture
async def server(start_server: StartServer, make_config: MakeConfig, open_tmp: Path) -> Server:
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    config = make_config(
        ephemeral=True,
        socket=str(run / "walletd.sock"),
        socket_mode=0o666,
        approvals=ApprovalsConfig(approver_group=str(APPROVER[1]), max_wait_s=60),
    )
    started: Server = await start_server(config)
    return started


async def as_uid(who: tuple[int, int], function: Callable[..., Any], *args: str) -> Any:
    return await trio.to_thread.run_sync(
        functools.partial(call_as, who[0], who[1], function, *args)
    )


async def agent_wallet(server: Server, admin: AsyncWalletClient, user_id: str = "agent") -> str:
    """A wallet the requester owns, whose admin layer sends every signature to review."""
    await as_uid(REQUESTER, kids.create, server.config.socket, user_id)
    await admin.set_signing_policy(user_id, "admin", REVIEW_ORDERS, 0)
    return server.config.socket


async def test_approve_then_the_requester_collects_the_signature(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = await agent_wallet(server, client)
    code, approval_id = await as_uid(REQUESTER, kids.sign, sock, "agent", "order:buy 1")
    assert code == "pending"
    (entry,) = await client.list_pending()
    assert entry.approval_id == approval_id and entry.rule_id == "orders"
    assert entry.reason == "orders need a person"
    assert entry.summary["kind"] == "text" and entry.summary["text"] == "order:buy 1"
    who = entry.requester
    assert who["uid"] == NOBODY.pw_uid and who["start_time"] is not None
    assert "python" in str(who["exe"]) and who["cmdline"]

    # The bystander sees nothing and can decide nothing; the approver can.
    assert await as_uid(BYSTANDER, kids.pending_ids, sock) == []
    assert (await as_uid(BYSTANDER, kids.approve, sock, approval_id))[0] == "forbidden"
    assert await as_uid(APPROVER, kids.pending_ids, sock) == [approval_id]
    assert await as_uid(APPROVER, kids.approve, sock, approval_id) == ["ok", approval_id]

    code, signature = await as_uid(REQUESTER, kids.await_it, sock, approval_id)
    assert code == "ok"
    assert await client.verify_signature("agent", b"order:buy 1", bytes.fromhex(signature))
    records = [r for r in await client.audit_log("agent") if "approval" in r.event]
    assert [(r.event, r.actor_uid) for r in records] == [
        ("approval_requested", NOBODY.pw_uid),
        ("approval_approved", APPROVER[0]),
    ]
    assert records[0].detail["requester_pid"] == who["pid"]
    assert "order:buy" not in str([r.detail for r in records])  # never the message


async def test_deny_reaches_the_requester_with_the_reason(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = await agent_wallet(server, client)
    _, approval_id = await as_uid(REQUESTER, kids.sign, sock, "agent", "order:sell")
    assert await as_uid(APPROVER, kids.deny, sock, approval_id, "not at this price") == [
        "ok",
        approval_id,
    ]
    code, message = await as_uid(REQUESTER, kids.await_it, sock, approval_id)
    assert code == "approval_denied" and "not at this price" in message
    assert [r.event for r in await client.audit_log("agent")][-1] == "approval_denied"


async def test_a_waiting_client_gets_the_signature_and_other_connections_go_on(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = await agent_wallet(server, client)
    got: list[Any] = []

    async def requester() -> None:
        got.append(await as_uid(REQUESTER, kids.sign, sock, "agent", "order:wait", "50"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(requester)
        await wait_until(lambda: len(server.daemon.approvals.pending.pending()) == 1, 30)
        assert (await client.hello()).protocol == 1  # another connection is served meanwhile
        (entry,) = await client.list_pending()
        assert await as_uid(APPROVER, kids.approve, sock, entry.approval_id) == [
            "ok",
            entry.approval_id,
        ]
    ((code, signature),) = got
    assert code == "ok"
    assert await client.verify_signature("agent", b"order:wait", bytes.fromhex(signature))


async def test_a_requester_in_the_approver_group_cannot_approve_itself(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = server.config.socket
    await as_uid(APPROVER, kids.create, sock, "approver-agent")
    await client.set_signing_policy("approver-agent", "admin", REVIEW_ORDERS, 0)
    code, approval_id = await as_uid(APPROVER, kids.sign, sock, "approver-agent", "order:me")
    assert code == "pending"
    for decide in (kids.approve, kids.deny):
        args = (sock, approval_id) if decide is kids.approve else (sock, approval_id, "x")
        code, message = await as_uid(APPROVER, decide, *args)
        assert code == "forbidden" and "its own" in message
    assert await client.list_pending() != []  # still waiting for someone else


async def test_a_process_lease_covers_that_process_only(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = await agent_wallet(server, client)
    got: list[Any] = []

    async def requester() -> None:
        got.append(
            await as_uid(REQUESTER, kids.sign_wait_then_sign_again, sock, "agent", "order:2")
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(requester)
        await wait_until(lambda: len(server.daemon.approvals.pending.pending()) == 1, 30)
        (entry,) = await client.list_pending()
        approved = await as_uid(APPROVER, kids.approve, sock, entry.approval_id, "process", "600")
        assert approved == ["ok", entry.approval_id]
    ((first, collected, again),) = got
    assert first[0] == "pending" and collected[0] == "ok"
    assert again[0] == "ok"  # the same process: the lease let it through without asking
    # The lease is bound to that process (pid and start time): it has exited, and another
    # process of the same uid is asked again.
    code, _ = await as_uid(REQUESTER, kids.sign, sock, "agent", "order:3")
    assert code == "pending"
    events = [r.event for r in await client.audit_log("agent")]
    assert "lease_granted" in events


async def test_a_uid_lease_covers_other_processes_until_revoked(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = await agent_wallet(server, client)
    _, approval_id = await as_uid(REQUESTER, kids.sign, sock, "agent", "order:4")
    assert (await as_uid(APPROVER, kids.approve, sock, approval_id, "uid", "600"))[0] == "ok"
    assert (await as_uid(REQUESTER, kids.sign, sock, "agent", "order:5"))[0] == "ok"
    (lease_id,) = await as_uid(APPROVER, kids.lease_ids, sock)
    assert (await as_uid(REQUESTER, kids.revoke, sock, lease_id))[0] == "forbidden"
    assert await as_uid(APPROVER, kids.revoke, sock, lease_id) == ["ok", 1]
    assert (await as_uid(REQUESTER, kids.sign, sock, "agent", "order:6"))[0] == "pending"
    ended = [r for r in await client.audit_log("agent") if r.event == "lease_ended"]
    assert [(r.detail["why"], r.detail["uses"]) for r in ended] == [("revoked", 1)]


async def test_pause_ends_leases(server: Server, client: AsyncWalletClient) -> None:
    sock = await agent_wallet(server, client)
    _, approval_id = await as_uid(REQUESTER, kids.sign, sock, "agent", "order:7")
    assert (await as_uid(APPROVER, kids.approve, sock, approval_id, "wallet", "600"))[0] == "ok"
    await client.pause_signing("wallet", user_id="agent")
    await client.resume_signing("wallet", user_id="agent")
    assert await client.list_leases() == []
    assert (await as_uid(REQUESTER, kids.sign, sock, "agent", "order:8"))[0] == "pending"


async def test_the_caps_refuse_with_unavailable(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    config = make_config(
        ephemeral=True,
        socket=str(run / "walletd.sock"),
        socket_mode=0o666,
        approvals=ApprovalsConfig(max_pending_per_uid=2, max_pending=2),
    )
    server = await start_server(config)
    async with AsyncWalletClient(config.socket) as admin:
        sock = await agent_wallet(server, admin)
        for i in range(2):
            assert (await as_uid(REQUESTER, kids.sign, sock, "agent", f"o{i}"))[0] == "pending"
        assert (await as_uid(REQUESTER, kids.sign, sock, "agent", "o3"))[0] == "unavailable"
        assert len(await admin.list_pending()) == 2


async def test_typed_data_review_shows_the_decoded_document(
    server: Server, client: AsyncWalletClient
) -> None:
    sock = server.config.socket
    await client.create_wallet("eth", "secp256k1")
    rule = {"id": "big", "action": "review", "match": {"ops": ["sign_typed_data"]}}
    await client.set_signing_policy("eth", "admin", [rule], 0)
    with pytest.raises(PendingApproval) as held:
        await client.sign_typed_data("eth", permit(value=10**20))
    (entry,) = await client.list_pending()
    assert entry.approval_id == held.value.approval_id and entry.op == "sign_typed_data"
    summary = entry.summary
    assert summary["kind"] == "typed_data" and summary["primary_type"] == "Payment"
    assert summary["fields"]["value"] == str(10**20)
    assert summary["domain"]["chainId"] == "1"
    # root asked, so root cannot decide; the approver (another uid) can, and root collects.
    assert (await as_uid(APPROVER, kids.approve, sock, entry.approval_id))[0] == "ok"
    signature = await client.await_approval(entry.approval_id, 5)
    assert len(signature) == 65


@pytest.mark.slow
def test_a_restart_ends_pending_approvals_and_leases(daemon: DaemonFactory, open_tmp: Path) -> None:
    config = open_tmp / "walletd.toml"
    config.write_text(f'[approvals]\napprover_group = "{APPROVER[1]}"\n')
    proc = daemon("--config", str(config), socket_mode="0666").start()
    sock = str(proc.socket_path)
    call_as(*REQUESTER, kids.create, sock, "agent")
    with WalletClient(sock) as admin:
        admin.set_signing_policy("agent", "admin", REVIEW_ORDERS, 0)
    code, first = call_as(*REQUESTER, kids.sign, sock, "agent", "order:1")
    assert code == "pending"
    code, second = call_as(*REQUESTER, kids.sign, sock, "agent", "order:2")
    assert call_as(*APPROVER, kids.approve, sock, first, "uid", "600")[0] == "ok"
    assert call_as(*REQUESTER, kids.sign, sock, "agent", "order:3")[0] == "ok"  # the lease
    proc.restart()
    with WalletClient(sock) as admin:
        assert admin.list_pending() == [] and admin.list_leases() == []
    assert call_as(*REQUESTER, kids.await_it, sock, second)[0] == "not_found"
    assert call_as(*REQUESTER, kids.sign, sock, "agent", "order:4")[0] == "pending"
