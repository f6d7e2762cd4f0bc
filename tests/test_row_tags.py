"""Authenticated columns at rest (issue 12, item 3).

Someone with write access to the database but not the master key edits a security-relevant
column (the owner, the rotation policy, a ritual's attempts or lock, the key type or version,
the seal format, a counter): startup refuses and ``walletd check`` names the user id, both
without changing a byte. A database from before row tags is tagged at its first start; a
``rekey`` keeps every tag valid; a row put back whole from an older copy is caught by the
audit cross-check when the chain records what changed since, and not otherwise.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet_client import AsyncWalletClient, RitualStep, hash_response
from walletd.config import Config
from walletd.errors import StartupError
from walletd.model.row_tags import TABLES, row_tag, tampered
from walletd.storage.loader import open_store
from walletd.storage.maintenance import inspect_state, rekey_state
from walletd.storage.schema import SCHEMA_VERSION
from walletd.storage.store import DB_NAME

from .legacy_db import downgrade_to_v2
from .support import Clock, MakeConfig, running

STEPS = [RitualStep("colour?", hash_response("blue"))]


def db(config: Config) -> sqlite3.Connection:
    return sqlite3.connect(Path(config.state_dir) / DB_NAME, isolation_level=None)


def digest(config: Config) -> str:
    """The state directory's database files, byte for byte: a refusal must not change them."""
    h = hashlib.sha256()
    for path in sorted(Path(config.state_dir).glob(DB_NAME + "*")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def refused_at_start(config: Config) -> str:
    before = digest(config)
    with pytest.raises(StartupError) as info:
        open_store(config)
    assert digest(config) == before
    return str(info.value)


def problems(config: Config) -> list[str]:
    before = digest(config)
    found: list[str] = inspect_state(config)["problems"]
    assert digest(config) == before
    return found


async def make_state(config: Config, clock: Clock) -> None:
    """Two wallets (so a refusal names the right one) and a locked ritual on alice."""
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("alice")
            await c.create_wallet("bob", key_type="ed25519")
            await c.register_ritual("alice", STEPS)
            await c.set_policy("alice", max_signatures=10, auto_rotate=True)
            await c.sign_message("alice", b"one")
            for _ in range(5):
                assert not await c.initiate_recovery("alice", [hash_response("green")])
            assert await c.is_locked("alice")
    assert problems(config) == []


@pytest.fixture
async def state(make_config: MakeConfig, clock: Clock) -> Config:
    config = make_config()
    await make_state(config, clock)
    return config


TAMPERING = {
    "owner": "UPDATE wallets SET owner_uid = 4242 WHERE user_id = 'alice'",
    "policy override": "UPDATE wallets SET max_signatures = NULL WHERE user_id = 'alice'",
    "auto rotate": "UPDATE wallets SET auto_rotate = 0 WHERE user_id = 'alice'",
    "key version": "UPDATE wallets SET key_version = 7 WHERE user_id = 'alice'",
    "key type": "UPDATE wallets SET key_type = 'ed25519' WHERE user_id = 'alice'",
    "seal format": "UPDATE wallets SET seal_format = 1 WHERE user_id = 'alice'",
    "signature count": "UPDATE wallets SET signature_count = 0 WHERE user_id = 'alice'",
    "tag removed": "UPDATE wallets SET row_tag = NULL WHERE user_id = 'alice'",
    "tag of another row": (
        "UPDATE wallets SET row_tag = (SELECT row_tag FROM wallets WHERE user_id = 'bob')"
        " WHERE user_id = 'alice'"
    ),
    "ritual attempts reset": "UPDATE rituals SET attempts = 0 WHERE user_id = 'alice'",
    "ritual unlocked": "UPDATE rituals SET locked_at = NULL WHERE user_id = 'alice'",
    "ritual steps": "UPDATE rituals SET steps = x'00' WHERE user_id = 'alice'",
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_tampering_is_refused_at_start_and_named_by_check(state: Config, kind: str) -> None:
    conn = db(state)
    conn.execute(TAMPERING[kind])
    conn.close()
    message = refused_at_start(state)
    assert "'alice'" in message and "'bob'" not in message, message
    found = problems(state)
    named = [p for p in found if "row tag" in p]
    assert len(named) == 1 and "of user 'alice'" in named[0], found
    noun = "ritual" if kind.startswith("ritual") else "wallet"
    assert named[0].startswith(f"{noun} of user 'alice'"), named


async def test_a_trigger_planted_in_the_file_is_refused(state: Config) -> None:
    # It would rewrite the owner whenever walletd writes the row; the TEMP tag trigger would
    # then tag the laundered row. So no trigger or view in the file is accepted.
    conn = db(state)
    conn.execute(
        "CREATE TRIGGER steal AFTER UPDATE ON wallets BEGIN"
        " UPDATE wallets SET owner_uid = 4242 WHERE user_id = NEW.user_id; END"
    )
    conn.close()
    assert "'steal'" in refused_at_start(state)
    assert any("trigger 'steal'" in p for p in problems(state))


# ----------------------------------------------------------------- older databases, rekey


async def legacy_state(config: Config, clock: Clock) -> None:
    """A schema-2 database (HMAC keys in the first seal format) with a ritual and a policy."""
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            for user in ("alice", "carol"):
                await c.create_wallet(user)
            await c.register_ritual("alice", STEPS)
            await c.set_policy("carol", max_age_days=30)
    downgrade_to_v2(Path(config.state_dir) / DB_NAME)


async def test_an_older_database_gets_its_tags_at_first_start(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    await legacy_state(config, clock)
    summary = inspect_state(config)
    assert summary["problems"] == [] and "next start" in summary["row_tags"]
    assert summary["key_types"] == {"hmac-sha256": 2}  # a database from before key types
    store, _, _ = open_store(config)  # migrates: tags computed now
    try:
        assert store.pragmas()["user_version"] == SCHEMA_VERSION
        assert store.meta("row_tag_key") is not None
        tagged = store.query("SELECT count(*) FROM wallets WHERE row_tag IS NOT NULL")
        assert tagged == [(2,)]
    finally:
        store.close()
    summary = inspect_state(config)
    assert summary["problems"] == [] and summary["row_tags"] == "intact"
    conn = db(config)
    conn.execute("UPDATE wallets SET owner_uid = 4242 WHERE user_id = 'carol'")
    conn.close()
    assert "'carol'" in refused_at_start(config)


async def test_an_older_database_without_a_head_but_with_records_is_refused(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    await legacy_state(config, clock)
    conn = db(config)
    conn.execute("DELETE FROM meta WHERE key IN ('audit_head', 'audit_head_tag')")
    conn.close()
    assert "audit head is missing" in refused_at_start(config)


async def test_an_empty_older_database_gets_a_head_at_first_start(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    async with running(config, clock):
        pass
    downgrade_to_v2(Path(config.state_dir) / DB_NAME)
    conn = db(config)
    conn.execute("DELETE FROM meta WHERE key IN ('audit_head', 'audit_head_tag')")
    conn.close()
    store, _, _ = open_store(config)
    try:
        assert store.meta("audit_head") == b"0:" + b"0" * 64
        assert store.meta("audit_head_tag") is not None
    finally:
        store.close()
    assert problems(config) == []


async def test_rekey_keeps_every_tag_valid(
    make_config: MakeConfig, clock: Clock, tmp_path: Path
) -> None:
    config = make_config()
    await legacy_state(config, clock)  # seal_format 1: the rekey changes it, so re-tags
    new_key = tmp_path / "new.key"
    new_key.write_bytes(os.urandom(32))
    new_key.chmod(0o600)
    rekey_state(config, str(new_key))
    rekeyed = make_config(master_key_file=str(new_key))
    summary = inspect_state(rekeyed)
    assert summary["problems"] == [] and summary["row_tags"] == "intact"
    store, _, loaded = open_store(rekeyed)
    try:
        assert store.query("SELECT DISTINCT seal_format FROM wallets") == [(2,)]
        assert {w.user_id for w in loaded.wallets} == {"alice", "carol"}
    finally:
        store.close()


# ----------------------------------------------------------------------------- rollback

_ROLLED_BACK = "address, sealed_key, key_version, key_created_at, signature_count"


async def _rotated(config: Config, clock: Clock) -> tuple[tuple[object, ...], ...]:
    """alice's row before a rotation (without and with its tag), then rotate."""
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("alice")
            await c.sign_message("alice", b"x")
    conn = db(config)
    old = conn.execute(f"SELECT {_ROLLED_BACK} FROM wallets").fetchone()
    (old_tag,) = conn.execute("SELECT row_tag FROM wallets").fetchone()
    conn.close()
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.rotate_keys("alice", reason="routine")
    return old, (old_tag,)


def _put_back(config: Config, columns: str, values: tuple[object, ...]) -> None:
    sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
    conn = db(config)
    conn.execute(f"UPDATE wallets SET {sets} WHERE user_id = 'alice'", values)
    conn.close()


async def test_a_row_rolled_back_without_its_older_tag_is_refused(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    old, _ = await _rotated(config, clock)
    _put_back(config, _ROLLED_BACK, old)
    assert "'alice'" in refused_at_start(config)
    assert any("wallet of user 'alice'" in p and "row tag" in p for p in problems(config))


async def test_a_row_rolled_back_with_its_older_tag_is_caught_by_the_audit_cross_check(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    old, old_tag = await _rotated(config, clock)
    _put_back(config, _ROLLED_BACK + ", row_tag", old + old_tag)
    # The row is one walletd wrote, so its tag holds and startup (which does not walk the
    # chain) accepts it; the chain says alice's key was rotated since, so check names her.
    store, _, _ = open_store(config)
    store.close()
    found = problems(config)
    assert not any("row tag" in p for p in found), found
    assert any("'alice'" in p and "not the last one" in p for p in found), found


async def test_counters_rolled_back_with_their_older_tag_are_not_caught(
    make_config: MakeConfig, clock: Clock
) -> None:
    # The documented limit (SECURITY.md): nothing in the chain records a signature count, so
    # a whole row put back from before some signatures, with no key change between, holds.
    config = make_config()
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("alice")
    conn = db(config)
    old = conn.execute("SELECT signature_count, row_tag FROM wallets").fetchone()
    conn.close()
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            for _ in range(3):
                await c.sign_message("alice", b"x")
    _put_back(config, "signature_count, row_tag", old)
    assert problems(config) == []


# --------------------------------------------------------------------------- signing policy


async def policy_state(config: Config, clock: Clock) -> None:
    """A wallet with an owner layer whose limit has been used, and a pause."""
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("carol")
            rules = [
                {"id": "few", "action": "allow", "limit": {"count": 3, "window_s": 3600}},
                {"id": "rest", "action": "deny"},
            ]
            await c.set_signing_policy("carol", "owner", rules, 0)
            for _ in range(3):
                await c.sign_message("carol", b"m")
            await c.pause_signing("wallet", user_id="carol")
    assert problems(config) == []


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        # Reopen a used-up limit: a fresh record for the window.
        ("UPDATE rate_windows SET record = x'00' WHERE user_id = 'carol'", "carol"),
        # Loosen the layer behind the daemon's back.
        (
            "UPDATE signing_policies SET document = '[]' WHERE user_id = 'carol'",
            "carol",
        ),
        # Backdate the pause (its scope is its key).
        ("UPDATE signing_pauses SET since = 0", "wallet:carol"),
    ],
)
async def test_signing_policy_rows_are_tagged(
    make_config: MakeConfig, clock: Clock, edit: str, named: str
) -> None:
    config = make_config()
    await policy_state(config, clock)
    conn = db(config)
    conn.execute(edit)
    conn.close()
    message = refused_at_start(config)
    assert repr(named) in message, message
    found = [p for p in problems(config) if "row tag" in p]
    assert len(found) == 1 and repr(named) in found[0], found


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    values=st.lists(
        st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(), st.binary()),
        min_size=1,
        max_size=6,
    ),
)
def test_the_startup_check_computes_exactly_row_tag(key: bytes, values: list[object]) -> None:
    """``tampered`` signs with precomputed pad states; a row tagged by ``row_tag`` passes and
    any other tag fails."""
    table = TABLES["wallets"]
    good = row_tag(key, table.name, values)
    assert tampered(key, table, [(*values, good)]) == []
    assert tampered(key, table, [(*values, bytes(32))]) == [str(values[0])]
