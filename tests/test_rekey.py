"""``walletd rekey --new-master-key-file F``: every key and sub-key re-sealed in one transaction.

After it, every wallet signs exactly as before, ownership is unchanged, the audit chain and the
backups still verify (their keys are sub-keys sealed under the master key, re-sealed, not
changed), and the old master key no longer opens the state. Refusals change nothing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from wallet_client import RitualStep, WalletClient, hash_response
from walletd.storage.sealing import GENERATED_KEY_NAME
from walletd.storage.store import DB_NAME

from . import children
from .support import DaemonFactory, call_as_nobody
from .test_store import snapshot, walletd_cli

pytestmark = pytest.mark.slow

MESSAGES = [b"one", b"two"]


def _sealed(state_dir: Path) -> dict[str, bytes]:
    conn = sqlite3.connect(f"file:{state_dir / DB_NAME}?mode=ro&immutable=1", uri=True)
    try:
        rows = conn.execute("SELECT user_id, sealed_key FROM wallets").fetchall()
        rows += conn.execute("SELECT key, value FROM meta WHERE key != 'audit_head'").fetchall()
    finally:
        conn.close()
    return {name: bytes(value) for name, value in rows}


def _key_file(path: Path) -> Path:
    path.write_text(os.urandom(32).hex() + "\n")
    path.chmod(0o600)
    path.chmod(0o600)
    return path


@pytest.mark.root
def test_rekey_reseals_everything(daemon: DaemonFactory, tmp_path: Path) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for user in ("alice", "bob", "carol"):
            c.create_wallet(user)
        c.rotate_keys("bob", "scheduled")
        c.register_ritual("carol", [RitualStep("q?", hash_response("a"))])
        backup = c.create_backup("alice")
        signatures = {
            u: [c.sign_message(u, m) for m in MESSAGES] for u in ("alice", "bob", "carol")
        }
    nina = call_as_nobody(children.create_and_sign, str(proc.socket_path), "nina", "one")
    with WalletClient(proc.socket_path) as c:
        records_before = c.audit_verify().records
    assert proc.stop() == 0
    state = proc.state_dir
    old_key = (state / GENERATED_KEY_NAME).read_bytes()
    sealed_before = _sealed(state)
    new_key = _key_file(tmp_path / "new.key")

    result = walletd_cli("rekey", "--state-dir", str(state), "--new-master-key-file", str(new_key))
    assert result.returncode == 0, result.stderr
    assert "re-sealed 4 wallet keys" in result.stdout
    assert "no longer opens" in result.stdout
    for secret in (old_key.hex(), new_key.read_text().strip()):
        assert secret not in result.stdout + result.stderr
    sealed_after = _sealed(state)
    assert sealed_after.keys() == sealed_before.keys()
    changed = {name for name in sealed_before if sealed_after[name] != sealed_before[name]}
    assert changed == set(sealed_before)  # every key, sub-key and the check value
    assert not (state / (DB_NAME + "-wal")).exists()

    proc.args += ["--master-key-file", str(new_key)]
    proc.start()
    with WalletClient(proc.socket_path) as c:
        for user, expected in signatures.items():
            assert [c.sign_message(user, m) for m in MESSAGES] == expected
        audit = c.audit_verify()
        assert audit.ok and audit.records == records_before + 1
        assert [r.event for r in c.audit_log()][-1] == "master_key_rotated"
        assert c.verify_backup("alice", backup["backup_id"])
        assert c.list_backups("alice").problems == []
        assert c.has_ritual("carol")
    again = call_as_nobody(children.sign_and_list, str(proc.socket_path), "nina", "one")
    assert again == [nina, ["nina"]]  # same key, same owner
    assert proc.stop() == 0

    # The old key (still in master.key) no longer opens the state; that start changes nothing.
    proc.args = proc.args[:-2]
    before = snapshot(state)
    proc.start(wait=False)
    assert proc.proc is not None and proc.proc.wait(30) == 3
    assert "wrong key" in proc.log_text().splitlines()[-1]
    assert snapshot(state) == before


def test_rekey_after_a_crash_keeps_every_acknowledged_wallet(
    daemon: DaemonFactory, tmp_path: Path
) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        signatures = {}
        for user in ("alice", "bob"):
            c.create_wallet(user)
            signatures[user] = c.sign_message(user, b"x")
    proc.kill()
    new_key = _key_file(tmp_path / "new.key")
    result = walletd_cli(
        "rekey", "--state-dir", str(proc.state_dir), "--new-master-key-file", str(new_key)
    )
    assert result.returncode == 0, result.stderr
    proc.args += ["--master-key-file", str(new_key)]
    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert {u: c.sign_message(u, b"x") for u in signatures} == signatures
    assert proc.stop() == 0


def test_rekey_refusals_change_nothing(daemon: DaemonFactory, tmp_path: Path) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
    state = proc.state_dir
    new_key = _key_file(tmp_path / "new.key")
    rekey = ["rekey", "--state-dir", str(state), "--new-master-key-file", str(new_key)]

    # While a daemon serves the state (whatever socket it uses).
    sealed = _sealed(state)
    result = walletd_cli(*rekey)
    assert result.returncode == 3
    assert "in use by another walletd" in result.stderr
    assert _sealed(state) == sealed
    assert proc.stop() == 0

    before = snapshot(state)
    wrong_old = _key_file(tmp_path / "wrong.key")
    result = walletd_cli(*rekey, "--master-key-file", str(wrong_old))
    assert result.returncode == 3 and "wrong key" in result.stderr
    bad_new = tmp_path / "bad.key"
    bad_new.write_text("not a key")
    bad_new.chmod(0o600)
    result = walletd_cli(*rekey[:-1], str(bad_new))
    assert result.returncode == 3 and "must hold 32 raw bytes" in result.stderr
    result = walletd_cli(*rekey[:-1], str(tmp_path / "missing.key"))
    assert result.returncode == 3 and "cannot read master key" in result.stderr
    assert snapshot(state) == before
    assert result.stdout == ""
