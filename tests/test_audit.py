"""The audit log: one record per state change, in the change's own transaction, chained by a
keyed hash whose breaks audit_verify finds; who may read which records; no secret inside."""

from __future__ import annotations

import base64
import itertools
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    RitualStep,
    StorageError,
    hash_response,
)
from walletd.model.audit_chain import GENESIS_HASH, HEAD_KEY, HEAD_TAG_KEY
from walletd.server.serve import Server
from walletd.storage.loader import open_store
from walletd.storage.store import DB_NAME

from . import visibility_children
from .support import NOBODY, Clock, MakeConfig, StartServer, call_as, running, wallet_in

DAY = 86400.0


def check_links(records: list[Any]) -> None:
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert records[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash


async def test_every_state_change_appends_one_record(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True, max_attempts=2))
    me = (os.getuid(), os.getpid())
    async with AsyncWalletClient(server.config.socket) as c:
        first = await c.create_wallet("alice")
        await c.sign_message("alice", b"signing changes no recorded state")
        await c.set_policy("alice", max_signatures=100)
        second = await c.rotate_keys("alice", reason="drill")
        backup = await c.create_backup("alice")
        await c.delete_backup("alice", backup["backup_id"])
        await c.register_ritual("alice", [RitualStep("colour?", hash_response("blue"))])
        assert not await c.initiate_recovery("alice", ["red"])
        assert not await c.initiate_recovery("alice", ["green"])  # locks
        await c.reset_attempts("alice")
        third = await c.recover("alice", ["blue"])
        await c.unregister_ritual("alice")
        await c.delete_wallet("alice")
        records = await c.audit_log()
    expected = [
        ("wallet_created", "ok", [first]),
        ("policy_changed", "ok", [first]),
        ("key_rotated", "ok", [first, second]),
        ("backup_created", "ok", [second]),
        ("backup_deleted", "ok", [second]),
        ("ritual_registered", "ok", [second]),
        ("recovery_attempted", "ok", []),
        ("recovery_failed", "failed", []),
        ("recovery_attempted", "ok", []),
        ("recovery_locked", "failed", []),
        ("recovery_attempts_reset", "ok", []),
        ("recovery_attempted", "ok", []),
        ("recovery_succeeded", "ok", [second, third]),
        ("ritual_removed", "ok", [third]),
        ("wallet_deleted", "ok", [third]),
    ]
    assert [(r.event, r.outcome, r.addresses) for r in records] == expected
    assert all(r.user_id == "alice" for r in records)
    assert all((r.actor_uid, r.actor_pid) == me for r in records)
    check_links(records)
    assert records[2].detail == {"reason": "drill"}
    assert records[3].detail == {"backup_id": backup["backup_id"]}
    # The head kept in meta is the last record.
    [(head,)] = await server.daemon.ctx.store.query(
        "SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)
    )
    assert bytes(head) == f"{records[-1].seq}:{records[-1].hash}".encode()


async def test_policy_rotation_is_recorded_as_the_daemon(
    server: Server, client: AsyncWalletClient, clock: Clock
) -> None:
    await client.create_wallet("alice")
    await client.set_policy("alice", max_age_days=1, max_signatures=1, auto_rotate=True)
    await client.sign_message("alice", b"x")
    clock.advance(DAY)
    await server.daemon.rotation.check_ages()
    records = await client.audit_log("alice")
    rotations = [r for r in records if r.event == "key_rotated"]
    assert [r.detail["reason"] for r in rotations] == ["policy:max_signatures", "policy:max_age"]
    # The daemon acted on a policy: it is the actor (in-process, the same uid and pid).
    assert all((r.actor_uid, r.actor_pid) == (os.getuid(), os.getpid()) for r in rotations)


async def test_a_failed_commit_records_nothing(server: Server, client: AsyncWalletClient) -> None:
    address = await client.create_wallet("alice")
    before = await client.audit_log()
    wallet = wallet_in(server, "alice")
    key = bytes(wallet.key)
    conn = server.daemon.store._conn
    conn.execute("PRAGMA query_only = 1")  # every write now fails inside the transaction
    try:
        with pytest.raises(StorageError):
            await client.rotate_keys("alice")
        with pytest.raises(StorageError):
            await client.set_policy("alice", max_signatures=5)
    finally:
        conn.execute("PRAGMA query_only = 0")
    # Neither the change nor its record happened; the chain carries on where it was.
    assert await client.get_wallet_address("alice") == address
    assert bytes(wallet.key) == key
    assert await client.audit_log() == before
    await client.rotate_keys("alice")
    records = await client.audit_log()
    assert [r.event for r in records] == ["wallet_created", "key_rotated"]
    check_links(records)
    assert (await client.audit_verify()).ok


async def test_audit_log_filters(client: AsyncWalletClient, clock: Clock) -> None:
    await client.create_wallet("alice")
    await client.create_wallet("bob")
    clock.advance(100)
    since = clock.now
    await client.rotate_keys("alice")
    await client.rotate_keys("bob")
    assert [r.user_id for r in await client.audit_log()] == ["alice", "bob", "alice", "bob"]
    assert [r.event for r in await client.audit_log("alice")] == ["wallet_created", "key_rotated"]
    assert [r.user_id for r in await client.audit_log(since=since)] == ["alice", "bob"]
    assert [r.seq for r in await client.audit_log("bob", since=since)] == [4]
    # limit keeps the most recent records, still oldest first.
    assert [r.seq for r in await client.audit_log(limit=2)] == [3, 4]
    with pytest.raises(InvalidArgumentError):
        await client.audit_log(limit=0)


@pytest.mark.root
async def test_others_see_only_records_of_their_own_wallets(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(socket=str(open_tmp / "walletd.sock"), socket_mode=0o666, ephemeral=True)
    server = await start_server(config)
    sock = str(server.config.socket)
    async with AsyncWalletClient(sock) as admin:
        await admin.create_wallet("roots")

    nobody = (NOBODY.pw_uid, NOBODY.pw_gid)
    await trio.to_thread.run_sync(
        lambda: call_as(*nobody, visibility_children.keep_one_delete_one, sock, "mine", "shared")
    )
    # uid 1 takes the deleted user id over: the earlier wallet's records are not its own.
    daemon_uid = await trio.to_thread.run_sync(
        lambda: call_as(1, 1, visibility_children.take_over_then_audit, sock, "shared", "roots")
    )
    assert daemon_uid["all"] == [["shared", "wallet_created", 1], ["shared", "key_rotated", 1]]
    assert daemon_uid["audit_verify"] == "forbidden"
    assert daemon_uid["audit_log_other"] == "forbidden"
    seen_by_nobody = await trio.to_thread.run_sync(
        lambda: call_as(*nobody, visibility_children.audit_seen, sock, "roots")
    )
    assert seen_by_nobody["all"] == [
        ["mine", "wallet_created", NOBODY.pw_uid],
        ["mine", "key_rotated", NOBODY.pw_uid],
    ]
    async with AsyncWalletClient(sock) as admin:
        everything = await admin.audit_log()
        assert len(everything) == 7
        assert [r.event for r in await admin.audit_log("shared")] == [
            "wallet_created",
            "wallet_deleted",
            "wallet_created",
            "key_rotated",
        ]


async def test_audit_verify_names_the_first_broken_record(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    db = Path(config.state_dir) / DB_NAME
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        for name in ("alice", "bob", "carol"):
            await c.create_wallet(name)
            await c.rotate_keys(name)
    # The chain head (and its tag) are loaded again at startup: records keep chaining.
    async with running(config, clock), AsyncWalletClient(config.socket) as c:
        await c.set_policy("alice", max_signatures=9)
        clean = await c.audit_verify()
        assert (clean.ok, clean.records, clean.first_broken_seq) == (True, 7, None)

        async def broken_at() -> tuple[int | None, str | None]:
            result = await c.audit_verify()
            assert result.ok is (result.first_broken_seq is None)
            return result.first_broken_seq, result.problem

        # Edit the live database behind the daemon's back (WAL lets both connections in).
        with closing(sqlite3.connect(db, isolation_level=None)) as sql:
            rows = {r[0]: r for r in sql.execute("SELECT * FROM audit")}
            meta = dict(sql.execute("SELECT key, value FROM meta"))

            def restore(seq: int) -> None:
                sql.execute("DELETE FROM audit WHERE seq = ?", (seq,))
                sql.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows[seq])

            def set_meta(key: str, value: bytes) -> None:
                sql.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))

            edits = [
                (3, "UPDATE audit SET outcome = 'failed' WHERE seq = 3"),
                (4, 'UPDATE audit SET detail = \'{"reason":"other"}\' WHERE seq = 4'),
                (2, "UPDATE audit SET timestamp = timestamp - 1 WHERE seq = 2"),
                (6, "UPDATE audit SET addresses = '[]' WHERE seq = 6"),
                # Re-hashing an edited record without the audit key does not hide the edit.
                (5, f"UPDATE audit SET user_id = 'mallory', hash = '{'ab' * 32}' WHERE seq = 5"),
                # Neither does rewriting a record's link.
                (7, f"UPDATE audit SET prev_hash = '{'0' * 64}' WHERE seq = 7"),
            ]
            for seq, edit in edits:
                sql.execute(edit)
                assert (await broken_at())[0] == seq, edit
                restore(seq)
                assert await broken_at() == (None, None)

            # A record deleted from the middle.
            sql.execute("DELETE FROM audit WHERE seq = 4")
            broken, problem = await broken_at()
            assert broken == 4
            assert problem is not None and "missing" in problem
            restore(4)
            # The last record cut off, then also the head rewritten to match what is left.
            sql.execute("DELETE FROM audit WHERE seq = 7")
            assert (await broken_at())[0] == 7
            set_meta(HEAD_KEY, f"6:{rows[6][-1]}".encode())
            broken, problem = await broken_at()
            assert broken == 7
            assert problem is not None and "head" in problem
            restore(7)
            assert (await broken_at())[0] == 7  # rows are back, the head is still forged
            set_meta(HEAD_KEY, meta[HEAD_KEY])
            assert await broken_at() == (None, None)
            # A forged or missing head tag.
            set_meta(HEAD_TAG_KEY, b"00" * 32)
            assert (await broken_at())[0] == 8
            sql.execute("DELETE FROM meta WHERE key = ?", (HEAD_TAG_KEY,))
            assert (await broken_at())[0] == 8
            sql.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)", (HEAD_TAG_KEY, meta[HEAD_TAG_KEY])
            )
            assert await broken_at() == (None, None)
        # Restored, the chain carries on.
        await c.rotate_keys("bob")
        result = await c.audit_verify()
        assert (result.ok, result.records) == (True, 8)


async def test_chain_holds_with_an_integer_clock(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    # A clock that returns ints (REAL columns hand them back as floats) must not break hashes.
    server = await start_server(make_config(ephemeral=True), clock=lambda: 1_800_000_000)
    async with AsyncWalletClient(server.config.socket) as c:
        await c.create_wallet("alice")
        await c.rotate_keys("alice")
        result = await c.audit_verify()
    assert (result.ok, result.records) == (True, 2)


async def test_no_secret_enters_the_audit_log_or_the_backups(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    answer = "the blue one"
    secrets: set[bytes] = {answer.encode(), hash_response(answer).encode()}
    keys: list[bytes] = []
    async with running(config, clock) as server, AsyncWalletClient(config.socket) as c:
        for name in ("alice", "bob"):
            await c.create_wallet(name)
            for i in range(3):
                keys.append(bytes(wallet_in(server, name).key))  # before the rotation zeroes it
                message = b"secret message %d of %s" % (i, name.encode())
                secrets.add(message)
                secrets.add(await c.sign_message(name, message))
                await c.create_backup(name, {"note": f"backup {i}"})
                await c.rotate_keys(name)
            await c.register_ritual(name, [RitualStep("which?", hash_response(answer))])
            keys.append(bytes(wallet_in(server, name).key))
            await c.recover(name, [answer])
            assert not await c.initiate_recovery(name, ["wrong " + answer])
            secrets.add(("wrong " + answer).encode())
            secrets.add(hash_response("wrong " + answer).encode())
        keys.append(bytes(wallet_in(server, "bob").key))
        await c.delete_wallet("bob")
    store, _, state = open_store(config)
    try:
        audit_rows = store.query("SELECT * FROM audit")
    finally:
        store.close()
    [alice] = state.wallets
    keys.append(bytes(alice.key))
    assert len(set(keys)) == 10
    for key in keys:
        secrets |= {key, key.hex().encode(), base64.b64encode(key), key.hex().upper().encode()}
    audit_text = repr(audit_rows).encode()
    backup_files = list((Path(config.state_dir) / "backups").iterdir())
    assert len(backup_files) == 6
    # The state files too: keys are sealed at rest, answers kept only as scrypt hashes.
    files = backup_files + [p for p in Path(config.state_dir).iterdir() if p.is_file()]
    contents = {path: path.read_bytes() for path in files}
    for secret in secrets:
        assert secret not in audit_text
        for path, content in contents.items():
            assert secret not in content, path


async def test_audit_log_pages_back_with_before_seq(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    for _ in range(6):
        await client.rotate_keys("alice")
    pages: list[list[int]] = []
    before = None
    while True:
        page = [r.seq for r in await client.audit_log("alice", limit=3, before_seq=before)]
        pages.append(page)
        if len(page) < 3:
            break
        before = page[0]
    assert pages == [[5, 6, 7], [2, 3, 4], [1]]
