"""Key types at rest: the sealed key is bound to its type and version, and databases from
before key types (schema 2) migrate with every wallet hmac-sha256 and its signatures as they
were."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from wallet_client import WalletClient
from walletd.config import Config
from walletd.errors import StartupError
from walletd.storage.loader import preflight
from walletd.storage.maintenance import inspect_state
from walletd.storage.schema import SCHEMA_VERSION
from walletd.storage.sealing import MasterKey
from walletd.storage.store import DB_NAME, Store

from .legacy_db import downgrade_to_v2
from .support import DaemonProcess
from .test_store import snapshot

# Starts walletd and walletctl processes.
pytestmark = pytest.mark.slow


def _master(state_dir: Path) -> MasterKey:
    return MasterKey((state_dir / "master.key").read_bytes(), "test")


def _refusal(state_dir: Path) -> str:
    with pytest.raises(StartupError) as caught:
        preflight(state_dir / DB_NAME, _master(state_dir))
    return str(caught.value)


def _check_problems(state_dir: Path) -> list[str]:
    summary = inspect_state(Config(state_dir=str(state_dir), socket=str(state_dir / "s")))
    problems: list[str] = summary["problems"]
    return problems


def _sql(db: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture
def three_wallets(daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A stopped daemon's state with an ed25519, a secp256k1 (rotated once) and an HMAC wallet."""
    proc = daemon().start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        c.create_wallet("ed", "ed25519")
        c.create_wallet("eth", "secp256k1")
        c.rotate_keys("eth")
        c.create_wallet("mac")
    assert proc.stop() == 0
    return proc


@pytest.mark.parametrize(
    ("change", "user"),
    [
        ("UPDATE wallets SET key_type = 'secp256k1' WHERE user_id = 'ed'", "ed"),
        ("UPDATE wallets SET key_type = 'hmac-sha256' WHERE user_id = 'eth'", "eth"),
        ("UPDATE wallets SET key_type = 'ed25519' WHERE user_id = 'mac'", "mac"),
        ("UPDATE wallets SET key_version = 1 WHERE user_id = 'eth'", "eth"),
        ("UPDATE wallets SET key_version = 7 WHERE user_id = 'ed'", "ed"),
        # The first format's marker on rows that may not carry it.
        ("UPDATE wallets SET seal_format = 1 WHERE user_id = 'ed'", "ed"),
        ("UPDATE wallets SET seal_format = 1 WHERE user_id = 'mac'", "mac"),
        ("UPDATE wallets SET seal_format = 9 WHERE user_id = 'eth'", "eth"),
        ("UPDATE wallets SET key_type = 'rsa' WHERE user_id = 'ed'", "ed"),
    ],
)
def test_a_key_moved_between_types_or_versions_is_refused(
    three_wallets: DaemonProcess, change: str, user: str
) -> None:
    state = three_wallets.state_dir
    _sql(state / DB_NAME, change)
    before = snapshot(state)
    assert f"'{user}'" in _refusal(state)
    problems = _check_problems(state)
    assert any(f"'{user}'" in p and "fails to unseal" in p for p in problems), problems
    assert snapshot(state) == before  # neither changed a byte
    # The real daemon refuses to start on it too, and names the user.
    three_wallets.start(wait=False)
    assert three_wallets.proc is not None and three_wallets.proc.wait(30) == 3
    assert f"'{user}'" in three_wallets.log_text().splitlines()[-1]


def test_a_sealed_key_copied_onto_a_row_of_another_type_is_refused(
    three_wallets: DaemonProcess,
) -> None:
    state = three_wallets.state_dir
    db = state / DB_NAME
    conn = sqlite3.connect(db, isolation_level=None)
    sealed = dict(conn.execute("SELECT user_id, sealed_key FROM wallets"))
    conn.close()
    _sql(db, "UPDATE wallets SET sealed_key = ? WHERE user_id = 'ed'", sealed["mac"])
    assert "'ed'" in _refusal(state)


def test_a_legacy_hmac_blob_cannot_be_moved_to_a_public_key_row(
    daemon: Callable[..., DaemonProcess],
) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        c.create_wallet("mac")
    assert proc.stop() == 0
    db = proc.state_dir / DB_NAME
    downgrade_to_v2(db)
    conn = sqlite3.connect(db, isolation_level=None)
    (legacy,) = conn.execute("SELECT sealed_key FROM wallets").fetchone()
    conn.close()
    proc.start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        c.create_wallet("ed", "ed25519")
    assert proc.stop() == 0
    # The HMAC key, sealed in the first format, put on the Ed25519 row with the marker that
    # format needs: the marker is accepted only on hmac-sha256 rows at version 1.
    _sql(db, "UPDATE wallets SET sealed_key = ?, seal_format = 1 WHERE user_id = 'ed'", legacy)
    assert "'ed'" in _refusal(proc.state_dir)


def test_a_schema_2_database_migrates_with_signatures_unchanged(
    daemon: Callable[..., DaemonProcess],
) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        addresses = {u: c.create_wallet(u) for u in ("alice", "bob")}
        signatures = {u: c.sign_message(u, b"same as ever") for u in addresses}
    assert proc.stop() == 0
    db = proc.state_dir / DB_NAME
    downgrade_to_v2(db)
    store = Store.open_readonly(db)
    try:
        assert store.pragmas()["user_version"] == 2
    finally:
        store.close()
    assert not _check_problems(proc.state_dir)

    proc.start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        assert c.list_wallets() == addresses
        for user, signature in signatures.items():
            detailed = c.sign_message_detailed(user, b"same as ever")
            assert detailed.signature == signature
            assert (detailed.key_type, detailed.version) == ("hmac-sha256", 1)
            assert c.verify_signature(user, b"same as ever", signature)
        c.rotate_keys("bob")  # re-sealed in the current format
        c.create_wallet("carol", "ed25519")
    assert proc.stop() == 0
    store = Store.open_readonly(db)
    try:
        assert store.pragmas()["user_version"] == SCHEMA_VERSION
        rows = store.query(
            "SELECT user_id, key_type, key_version, seal_format FROM wallets ORDER BY user_id"
        )
        assert rows == [
            ("alice", "hmac-sha256", 1, 1),
            ("bob", "hmac-sha256", 2, 2),
            ("carol", "ed25519", 1, 2),
        ]
    finally:
        store.close()
    proc.start()  # and it opens again
    with WalletClient(proc.socket_path, timeout=30) as c:
        assert c.sign_message("alice", b"same as ever") == signatures["alice"]
    assert proc.stop() == 0
