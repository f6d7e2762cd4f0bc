"""Ownership across waits and over time (issue 12, items 1, 2 and 5).

* A request that waits (writer lock, commit, scrypt, rotation, a store read) re-checks its
  claim on the wallet after the wait: a recovery by another uid mid-batch stops the batch,
  and none of the old owner's items is signed with (or rotates) a key made after it.
* Concurrent failed recovery attempts are each recorded with what happened to that attempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from wallet_client import AsyncWalletClient, RitualStep, hash_response
from walletd.server.serve import Server

from . import children_tenure
from .support import NOBODY, MakeConfig, StartServer, call_as, wait_until

STEPS = [RitualStep("colour?", hash_response("blue"))]


async def shared_server(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path, **overrides: object
) -> Server:
    config = make_config(
        socket=str(open_tmp / "walletd.sock"), socket_mode=0o666, ephemeral=True, **overrides
    )
    return await start_server(config)


@pytest.mark.root
async def test_recovery_by_another_uid_stops_a_batch_mid_way(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    server = await shared_server(start_server, make_config, open_tmp)
    sock = str(server.config.socket)
    writer = server.daemon.ctx.writer
    async with AsyncWalletClient(sock, timeout=60) as c:
        await c.create_wallet("shared")
        await c.register_ritual("shared", STEPS)
        # Every signature rotates the key: the batch waits for the writer between items.
        await c.set_policy("shared", max_signatures=1, auto_rotate=True)
        result: list[object] = []
        recovered: list[object] = []

        async def batch() -> None:
            result.extend(await c.sign_batch("shared", [b"m%d" % i for i in range(4096)]))

        async def recovery() -> None:
            address = await trio.to_thread.run_sync(
                lambda: call_as(
                    NOBODY.pw_uid, NOBODY.pw_gid, children_tenure.recover, sock, "shared", "blue"
                )
            )
            recovered.append(address)

        async with trio.open_nursery() as nursery:
            # Hold the writer until both the batch (at its first rotation) and the other
            # uid's recovery wait for it, so the recovery lands mid-batch.
            async with writer:
                nursery.start_soon(batch)
                await wait_until(lambda: writer.statistics().tasks_waiting == 1, timeout=30)
                nursery.start_soon(recovery)
                await wait_until(lambda: writer.statistics().tasks_waiting == 2, timeout=60)
        history = await c.rotation_history("shared")
    (new_address,) = recovered
    assert isinstance(new_address, str)
    reasons = [r.reason for r in history]
    at = reasons.index("recovery")
    assert history[at].new_wallet_id == new_address
    assert history[at].actor_uid == NOBODY.pw_uid
    # Nothing rotated the new owner's key on the old owner's behalf ...
    assert reasons[at + 1 :] == []
    # ... and no item was signed with a key made at or after the recovery.
    after = {r.new_wallet_id for r in history[at:]}
    signed = [i for i in result if getattr(i, "signature", None) is not None]
    refused = [i for i in result if getattr(i, "error", None) is not None]
    assert signed and refused, "the recovery did not land mid-batch"
    assert not any(getattr(i, "address") in after for i in signed)
    assert {getattr(i, "error").code for i in refused} == {"forbidden"}
    assert len(signed) + len(refused) == 4096


async def test_concurrent_failed_attempts_each_say_what_happened(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True))
    sock = str(server.config.socket)
    writer = server.daemon.ctx.writer
    async with AsyncWalletClient(sock) as c:
        await c.create_wallet("alice")
        await c.register_ritual("alice", STEPS)
        answers: list[bool] = []

        async def attempt() -> None:
            async with AsyncWalletClient(sock) as other:
                answers.append(await other.initiate_recovery("alice", ["green"]))

        async with trio.open_nursery() as nursery:
            # All five are counted before any is checked (the writer is fair: each attempt's
            # outcome queues behind the counting of the ones that arrived before it).
            async with writer:
                for _ in range(5):
                    nursery.start_soon(attempt)
                await wait_until(lambda: writer.statistics().tasks_waiting == 5)
        records = await c.audit_log("alice")
    assert answers == [False] * 5
    outcomes = [
        (r.event, r.detail.get("attempt"))
        for r in records
        if r.event in ("recovery_failed", "recovery_locked")
    ]
    assert sorted(outcomes, key=lambda o: o[1] or 0) == [
        ("recovery_failed", 1),
        ("recovery_failed", 2),
        ("recovery_failed", 3),
        ("recovery_failed", 4),
        ("recovery_locked", 5),
    ]


@pytest.mark.root
async def test_a_user_id_created_again_by_another_uid_sees_only_its_own_records(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    server = await shared_server(start_server, make_config, open_tmp)
    sock = str(server.config.socket)
    async with AsyncWalletClient(sock) as admin:
        await admin.create_wallet("reused")
        old = (await admin.create_backup("reused", {"note": "root's"}))["backup_id"]
        await admin.rotate_keys("reused", reason="root's own reason")
        older = (await admin.create_backup("reused"))["backup_id"]
        assert await admin.delete_wallet("reused")
        seen = await trio.to_thread.run_sync(
            lambda: call_as(
                NOBODY.pw_uid,
                NOBODY.pw_gid,
                children_tenure.recreate_and_probe,
                sock,
                "reused",
                old,
            )
        )
        mine = seen["mine"]
        assert seen["listed"] == [mine]
        assert seen["problems"] == []
        assert seen["history"] == []  # not root's rotation, its reason or its uid
        assert seen["verify"] == ["error", "not_found"]
        assert seen["delete"] == ["ok", False]  # an unknown id to this owner: nothing deleted
        # Admins see every record kept under the id, the earlier wallet's included.
        listed = {b["backup_id"] for b in await admin.list_backups("reused")}
        assert listed == {old, older, mine}
        history = await admin.rotation_history("reused")
        assert [r.reason for r in history] == ["root's own reason"]
