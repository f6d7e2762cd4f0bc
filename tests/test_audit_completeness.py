"""The audit chain is the whole story (issue 12, item 4).

Without an outside anchor walletd now detects: a missing head where anything exists (every
record and the head deleted), and a chain that does not explain the wallets table (a tail
cut with an older head and tag put back, hiding a rotation; a wallet row whose address was
changed). A new database has a tagged head from its creation.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wallet_client import AsyncWalletClient
from walletd.config import Config
from walletd.storage.loader import open_store
from walletd.storage.maintenance import inspect_state
from walletd.storage.store import DB_NAME

from .support import Clock, MakeConfig, running


def db(config: Config) -> sqlite3.Connection:
    return sqlite3.connect(Path(config.state_dir) / DB_NAME, isolation_level=None)


def test_a_new_database_has_a_tagged_head(make_config: MakeConfig) -> None:
    config = make_config()
    store, _, _ = open_store(config)
    try:
        assert store.meta("audit_head") == b"0:" + b"0" * 64
        assert store.meta("audit_head_tag") is not None
    finally:
        store.close()
    assert inspect_state(config)["problems"] == []


async def test_deleting_every_record_and_the_head_is_tampering(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("alice")
            await c.rotate_keys("alice", reason="routine")
    assert inspect_state(config)["problems"] == []
    conn = db(config)
    conn.execute("DELETE FROM audit")
    conn.execute("DELETE FROM meta WHERE key IN ('audit_head', 'audit_head_tag')")
    conn.close()
    problems = inspect_state(config)["problems"]
    assert any("audit head is missing" in p for p in problems), problems
    assert any("'alice'" in p and "no record of its creation" in p for p in problems), problems


async def test_a_cut_tail_with_an_older_head_put_back_is_caught(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as admin:
            await admin.create_wallet("alice")
            conn = db(config)
            saved = conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('audit_head', 'audit_head_tag')"
            ).fetchall()
            (kept,) = conn.execute("SELECT max(seq) FROM audit").fetchone()
            await admin.rotate_keys("alice", reason="routine")
            assert (await admin.audit_verify()).ok
            # With the daemon still running: cut the rotation's record and restore the head
            # and tag from before it. The chain alone is sound again.
            conn.execute("DELETE FROM audit WHERE seq > ?", (kept,))
            conn.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in saved])
            conn.close()
            result = await admin.audit_verify()
            assert not result.ok
            assert result.problem is not None and "'alice'" in result.problem
    problems = inspect_state(config)["problems"]
    assert any("'alice'" in p and "not the last one" in p for p in problems), problems
