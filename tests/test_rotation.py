"""Key rotation: what a rotation replaces, auto-rotation at the signature limit (also under
concurrency and within batches), the background age check, and durability across restarts."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

import walletd_wire as wire
from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    WalletClient,
    WalletNotFoundError,
)
from wallet_client.calls import Call
from walletd.server.serve import Server
from walletd.storage.store import DB_NAME

from . import visibility_children
from .support import (
    Clock,
    DaemonFactory,
    MakeConfig,
    StartServer,
    call_as,
    call_as_nobody,
    running,
    wallet_in,
)

DAY = 86400.0


async def raw_sign(client: AsyncWalletClient, user_id: str, message: bytes) -> wire.SignatureResult:
    """sign_message as on the wire: the result names the key (address) that signed."""
    call = Call(
        wire.SignMessage(id=0, user_id=user_id, message=message), wire.SignatureResult, _same
    )
    return await client._call(call)


def _same(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- manual rotation


async def test_rotation_replaces_key_address_and_count(
    server: Server, client: AsyncWalletClient, clock: Clock
) -> None:
    old_address = await client.create_wallet("alice")
    old_sig = await client.sign_message("alice", b"before")
    await client.sign_message("alice", b"again")
    clock.advance(5 * DAY)
    wallet = wallet_in(server, "alice")
    old_key = wallet.key  # the very bytearray the daemon signs with
    old_key_copy = bytes(old_key)

    new_address = await client.rotate_keys("alice", reason="suspected leak")

    assert new_address != old_address
    assert new_address.startswith("0x")
    assert len(new_address) == 34
    assert old_key == bytearray(32), "the old key bytes must be zeroed"
    assert wallet.key is not old_key
    assert bytes(wallet.key) != old_key_copy
    assert len(wallet.key) == 32
    assert await client.get_wallet_address("alice") == new_address
    assert not await client.verify_signature("alice", b"before", old_sig)
    new_sig = await client.sign_message("alice", b"before")
    assert new_sig != old_sig
    assert await client.verify_signature("alice", b"before", new_sig)
    status = await client.rotation_status("alice")
    assert status.signature_count == 1
    assert status.key_age_days == 0.0
    assert status.address == new_address
    [record] = await client.rotation_history("alice")
    assert record == wire.RotationRecord(
        "alice", old_address, new_address, clock.now, "suspected leak", os.getuid(), record.seq
    )
    assert record.seq >= 1


async def test_default_reason_is_manual_and_history_is_oldest_first(
    client: AsyncWalletClient, clock: Clock
) -> None:
    addresses = [await client.create_wallet("alice")]
    for _ in range(3):
        clock.advance(60)
        addresses.append(await client.rotate_keys("alice"))
    history = await client.rotation_history("alice")
    assert [r.reason for r in history] == ["manual"] * 3
    assert [(r.old_wallet_id, r.new_wallet_id) for r in history] == list(
        itertools.pairwise(addresses)
    )
    assert [r.timestamp for r in history] == sorted(r.timestamp for r in history)


async def test_rotation_errors(client: AsyncWalletClient) -> None:
    with pytest.raises(WalletNotFoundError):
        await client.rotate_keys("nobody-here")
    with pytest.raises(WalletNotFoundError):
        await client.rotation_history("nobody-here")  # no wallet and no history
    await client.create_wallet("alice")
    with pytest.raises(InvalidArgumentError):
        await client.rotate_keys("alice", reason="")
    with pytest.raises(InvalidArgumentError):
        await client.rotate_keys("alice", reason="two\nlines")
    assert await client.rotation_history("alice") == []  # a wallet without rotations
    await client.rotate_keys("alice")
    await client.delete_wallet("alice")
    # A deleted wallet's history stays readable to an admin.
    assert len(await client.rotation_history("alice")) == 1


async def test_rotation_replaces_stored_ciphertext(make_config: MakeConfig, clock: Clock) -> None:
    config = make_config()
    db = Path(config.state_dir) / DB_NAME
    async with running(config, clock) as server, AsyncWalletClient(config.socket) as c:
        await c.create_wallet("alice")
        assert server.daemon.store._conn.execute("PRAGMA secure_delete").fetchone() == (1,)
        with closing(sqlite3.connect(db)) as peek:
            [(old_sealed,)] = peek.execute("SELECT sealed_key FROM wallets").fetchall()
        await c.rotate_keys("alice")
        with closing(sqlite3.connect(db)) as peek:
            [(new_sealed, count)] = peek.execute(
                "SELECT sealed_key, signature_count FROM wallets"
            ).fetchall()
            rotations = peek.execute("SELECT reason FROM rotations").fetchall()
        assert new_sealed != old_sealed
        assert count == 0
        assert rotations == [("manual",)]
    # Stopped: the old ciphertext is gone from every file of the state, not left in free pages.
    for path in db.parent.iterdir():
        if path.name.startswith(DB_NAME):
            assert bytes(old_sealed) not in path.read_bytes(), path.name


# --------------------------------------------------------------------------- auto-rotation


async def test_concurrent_signers_never_exceed_max_signatures(server: Server) -> None:
    limit, tasks, per_task = 3, 12, 15
    async with AsyncWalletClient(server.config.socket) as admin:
        await admin.create_wallet("busy")
        await admin.set_policy("busy", max_signatures=limit, auto_rotate=True)
    signed: list[str | None] = []  # a batch item's address is None only beside an error

    async def signer(n: int) -> None:
        # One connection per task, so requests really interleave inside the daemon.
        async with AsyncWalletClient(server.config.socket) as c:
            for i in range(per_task):
                if i % 5 == 4:
                    items = await c.sign_batch("busy", [b"b%d-%d" % (n, i)] * 4)
                    assert all(item.error is None for item in items)
                    signed.extend(item.address for item in items)
                else:
                    result = await raw_sign(c, "busy", b"m%d-%d" % (n, i))
                    signed.append(result.address)

    async with trio.open_nursery() as nursery:
        for n in range(tasks):
            nursery.start_soon(signer, n)

    per_address = Counter(signed)
    assert sum(per_address.values()) == tasks * (per_task + 3 * (per_task // 5))
    assert max(per_address.values()) <= limit
    async with AsyncWalletClient(server.config.socket) as c:
        status = await c.rotation_status("busy")
        history = await c.rotation_history("busy")
    # Every retired key signed exactly the limit; the current one what its count says.
    retired = {r.old_wallet_id for r in history}
    assert all(per_address[a] == limit for a in retired)
    assert per_address.get(status.address, 0) == status.signature_count < limit
    assert set(per_address) - {status.address} == retired
    assert {r.reason for r in history} == {"policy:max_signatures"}
    # The chain of rotations is unbroken: each starts from the key the previous one made.
    assert all(a.new_wallet_id == b.old_wallet_id for a, b in itertools.pairwise(history))


async def test_key_rotates_right_after_the_signature_that_reaches_the_limit(
    client: AsyncWalletClient,
) -> None:
    await client.create_wallet("alice")
    await client.set_policy("alice", max_signatures=2, auto_rotate=True)
    first = await raw_sign(client, "alice", b"1")
    second = await raw_sign(client, "alice", b"2")
    assert first.address == second.address
    # Already rotated before anything else is signed: the answer to #2 came after the rotation.
    status = await client.rotation_status("alice")
    assert status.address != second.address
    assert status.signature_count == 0
    assert not status.needs_rotation
    third = await raw_sign(client, "alice", b"3")
    assert third.address == status.address
    assert await client.verify_signature("alice", b"3", third.signature)
    assert not await client.verify_signature("alice", b"2", second.signature)


async def test_sign_batch_rotates_between_items(client: AsyncWalletClient) -> None:
    first = await client.create_wallet("alice")
    await client.set_policy("alice", max_signatures=5, auto_rotate=True)
    items = await client.sign_batch("alice", [b"m%d" % i for i in range(12)])
    addresses = [item.address for item in items]
    assert all(item.signature for item in items)
    second, third = addresses[5], addresses[10]
    assert addresses == [first] * 5 + [second] * 5 + [third] * 2
    assert len({first, second, third}) == 3
    status = await client.rotation_status("alice")
    assert (status.address, status.signature_count) == (third, 2)
    # The items signed by the current key verify; the others were signed by retired keys.
    signatures = [(i, item.signature) for i, item in enumerate(items) if item.signature]
    assert len(signatures) == 12
    assert (
        await client.verify_batch("alice", [(b"m%d" % i, signature) for i, signature in signatures])
        == [False] * 10 + [True] * 2
    )
    # A batch that ends exactly at the limit rotates before it is answered.
    items = await client.sign_batch("alice", [b"x"] * 3)
    assert {i.address for i in items} == {third}
    status = await client.rotation_status("alice")
    assert status.address != third
    assert status.signature_count == 0
    history = await client.rotation_history("alice")
    assert [r.reason for r in history] == ["policy:max_signatures"] * 3


async def test_without_auto_rotate_signing_goes_on_and_warns_once(
    client: AsyncWalletClient,
) -> None:
    address = await client.create_wallet("alice")
    await client.create_wallet("bob")
    await client.set_policy("alice", max_signatures=3)
    await client.set_policy("bob", max_signatures=1)
    with capture_logs() as logs:
        for i in range(6):
            result = await raw_sign(client, "alice", b"%d" % i)
            assert result.address == address
        items = await client.sign_batch("alice", [b"more"] * 4)
        await client.sign_message("bob", b"x")
        await client.sign_message("bob", b"y")
    assert {i.address for i in items} == {address}
    assert await client.needs_rotation("alice")
    status = await client.rotation_status("alice")
    assert status.reasons == ["max_signatures"]
    assert status.signature_count == 10
    assert status.policy == wire.RotationPolicy(90, 3, False)
    warnings = [e for e in logs if e["event"] == "rotation_policy_breached"]
    assert sorted(e["user_id"] for e in warnings) == ["alice", "bob"]  # once per wallet
    assert all(e["log_level"] == "warning" for e in warnings)
    assert await client.rotation_history("alice") == []
    await client.rotate_keys("alice")
    assert not await client.needs_rotation("alice")


# --------------------------------------------------------------------------- age


async def test_check_ages_rotates_keys_past_max_age(
    server: Server, client: AsyncWalletClient, clock: Clock
) -> None:
    rotation = server.daemon.rotation
    old = await client.create_wallet("aging")
    await client.create_wallet("young")
    await client.create_wallet("manual")
    await client.set_policy("aging", max_age_days=2, auto_rotate=True)
    await client.set_policy("young", max_age_days=30, auto_rotate=True)
    await client.set_policy("manual", max_age_days=2)
    clock.advance(1.5 * DAY)
    assert await rotation.check_ages() == 0
    assert not await client.needs_rotation("aging")
    clock.advance(0.5 * DAY)
    with capture_logs() as logs:
        assert await rotation.check_ages() == 1
        assert await rotation.check_ages() == 0  # the new key is young
    [record] = await client.rotation_history("aging")
    assert (record.old_wallet_id, record.reason) == (old, "policy:max_age")
    assert record.actor_uid == os.getuid()
    assert record.timestamp == clock.now
    status = await client.rotation_status("aging")
    assert status.key_age_days == 0.0
    assert status.address == record.new_wallet_id
    # auto_rotate off: reported and warned about (once), never rotated.
    assert await client.rotation_history("manual") == []
    status = await client.rotation_status("manual")
    assert status.needs_rotation
    assert status.reasons == ["max_age"]
    assert status.key_age_days == 2.0
    warnings = [e for e in logs if e["event"] == "rotation_policy_breached"]
    assert [e["user_id"] for e in warnings] == ["manual"]
    assert await client.rotation_history("young") == []


async def test_auto_rotate_turned_off_while_waiting_is_respected(
    server: Server, client: AsyncWalletClient, clock: Clock
) -> None:
    await client.create_wallet("alice")
    await client.set_policy("alice", max_age_days=1, auto_rotate=True)
    clock.advance(2 * DAY)
    async with trio.open_nursery() as nursery:
        async with server.daemon.ctx.writer:
            # The owner's set_policy queues for the lock first, then the age check (which
            # still sees auto_rotate on); the check must look again once it gets the lock.
            nursery.start_soon(lambda: client.set_policy("alice", auto_rotate=False))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(server.daemon.rotation.check_ages)
            await trio.testing.wait_all_tasks_blocked()
    assert not (await client.get_policy("alice")).auto_rotate
    assert await client.rotation_history("alice") == []
    assert await client.needs_rotation("alice")


async def test_background_loop_rotates_at_startup_after_downtime(
    make_config: MakeConfig, clock: Clock
) -> None:
    async with running(make_config(), clock), AsyncWalletClient(make_config().socket) as c:
        old = await c.create_wallet("alice")
        await c.set_policy("alice", max_age_days=3, auto_rotate=True)
    clock.advance(4 * DAY)  # the key expired while the daemon was down
    # An hour between checks: the overdue key must still go at startup, not an hour later.
    config = make_config(rotation_check_interval=3600)
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        with trio.fail_after(10):
            # Polling the state is the readiness check here; the sleep only paces the loop.
            while not (history := await c.rotation_history("alice")):
                await trio.sleep(0.01)
        assert [(r.old_wallet_id, r.reason) for r in history] == [(old, "policy:max_age")]


async def test_background_loop_checks_every_interval(make_config: MakeConfig, clock: Clock) -> None:
    config = make_config(ephemeral=True, rotation_check_interval=0.02)
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        old = await c.create_wallet("alice")
        await c.set_policy("alice", max_age_days=1, auto_rotate=True)
        clock.advance(DAY)
        with trio.fail_after(10):
            while await c.get_wallet_address("alice") == old:  # the loop's work, observed
                await trio.sleep(0.01)
        [record] = await c.rotation_history("alice")
        assert record.reason == "policy:max_age"


# --------------------------------------------------------------------------- durability


async def test_counts_and_ages_survive_a_restart(make_config: MakeConfig, clock: Clock) -> None:
    config = make_config()
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        address = await c.create_wallet("alice")
        await c.create_wallet("auto")
        await c.set_policy("auto", max_signatures=5, auto_rotate=True)
        signature = await c.sign_message("alice", b"keep")
        for i in range(6):
            await c.sign_message("alice", b"%d" % i)
        auto_items = await c.sign_batch("auto", [b"a"] * 3)
        clock.advance(3 * DAY)
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        status = await c.rotation_status("alice")
        assert (status.address, status.signature_count) == (address, 7)
        assert status.key_age_days == 3.0
        assert await c.verify_signature("alice", b"keep", signature)
        # The auto-rotating key remembers its 3 signatures: 2 more reach the limit.
        items = await c.sign_batch("auto", [b"b"] * 3)
        first = auto_items[0].address
        assert [i.address for i in items[:2]] == [first, first]
        assert items[2].address != first
        assert Counter(i.address for i in auto_items + items)[first] == 5


@pytest.mark.root
async def test_new_owner_of_a_reused_user_id_sees_only_its_own_rotations(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(socket=str(open_tmp / "walletd.sock"), socket_mode=0o666, ephemeral=True)
    server = await start_server(config)
    sock = str(server.config.socket)
    first = await trio.to_thread.run_sync(
        lambda: call_as_nobody(visibility_children.rotate_twice_then_delete, sock, "shared")
    )
    assert len(first) == 2  # deleted, but the uid that rotated it may still read it
    second = await trio.to_thread.run_sync(
        lambda: call_as(1, 1, visibility_children.create_rotate_history, sock, "shared")
    )
    async with AsyncWalletClient(sock) as admin:
        everything = await admin.rotation_history("shared")
        current = await admin.get_wallet_address("shared")
    assert len(everything) == 3
    assert len(second) == 1
    assert second[0][1] == current


@pytest.mark.slow
def test_signature_limit_holds_across_a_crash(daemon: DaemonFactory, open_tmp: Path) -> None:
    # Signature counts are written by the periodic flush, so a crash forgets the signatures
    # since the last one; auto-rotate keys therefore reserve counts durably before using them.
    # The long flush interval only makes the window deterministic.
    settings = open_tmp / "walletd.toml"
    settings.write_text("counter_flush_interval = 3600.0\n")
    proc = daemon("--config", str(settings)).start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        c.set_policy("alice", max_signatures=5, auto_rotate=True)
        before = c.sign_batch("alice", [b"a"] * 3)
    proc.kill()  # a crash: no shutdown, no final flush
    proc.start()
    with WalletClient(proc.socket_path) as c:
        after = c.sign_batch("alice", [b"b"] * 5)
    per_key = Counter(item.address for item in before + after)
    assert max(per_key.values()) <= 5, per_key


@pytest.mark.slow
def test_clean_restart_keeps_exact_counts_and_a_crash_takes_reservations_as_used(
    daemon: DaemonFactory, open_tmp: Path
) -> None:
    settings = open_tmp / "walletd.toml"
    settings.write_text("counter_flush_interval = 3600.0\n")
    proc = daemon("--config", str(settings)).start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        c.set_policy("alice", max_signatures=100, auto_rotate=True)
        c.sign_batch("alice", [b"a"] * 10)  # reserves 25 counts (a quarter of the limit)
    proc.stop()  # clean: exact counts written, reservations cleared
    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert c.rotation_status("alice").signature_count == 10
        c.sign_batch("alice", [b"b"] * 5)  # 15 of the 35 now reserved
    proc.kill()
    proc.start()
    with WalletClient(proc.socket_path) as c:
        status = c.rotation_status("alice")
    # After the crash the whole reservation counts as used: never fewer than were signed.
    assert status.signature_count == 35
