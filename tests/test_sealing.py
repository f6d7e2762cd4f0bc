"""Keys at rest: AES-256-GCM under the master key, bound to their row, never stored raw.

The raw keys cannot be read through the API (by design); the tests read them with walletd's own
code (``load_keys``: the read-only preflight plus ``load_state``) from a stopped daemon's state,
then look for every key, as raw bytes, hex and base64, in the database, its write-ahead log and
shared-memory index, the backups and the daemon's log.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest

from wallet_client import WalletClient
from walletd.errors import StartupError
from walletd.storage.sealing import (
    GENERATED_KEY_NAME,
    KEY_BYTES,
    NONCE_BYTES,
    MasterKey,
    UnsealError,
    load_master_key,
    read_key_file,
    wallet_aad,
)
from walletd.storage.store import DB_NAME

from . import children
from .support import DaemonFactory, call_as_nobody
from .test_store import load_keys, snapshot

pytestmark = pytest.mark.slow


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
    ]


def _files(state_dir: Path, *extra: Path) -> dict[str, bytes]:
    """Every file walletd wrote that could hold a key, except the master key file itself."""
    out = {
        str(p.relative_to(state_dir)): p.read_bytes()
        for p in state_dir.rglob("*")
        if p.is_file() and p.name != GENERATED_KEY_NAME
    }
    out.update({str(p): p.read_bytes() for p in extra})
    return out


def _assert_absent(secrets: dict[str, bytes], files: dict[str, bytes]) -> None:
    for name, secret in secrets.items():
        for form in _forms(secret):
            for path, data in files.items():
                assert form not in data, f"{name} appears in {path}"


@pytest.mark.root
def test_no_raw_key_anywhere_on_disk(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for user in ("alice", "bob", "carol", "dave"):
            c.create_wallet(user)
            c.sign_message(user, b"x")
        c.rotate_keys("bob", "scheduled")
        c.delete_wallet("dave")
        c.create_backup("alice")
        c.create_backup("bob")
    call_as_nobody(children.create_wallets, str(proc.socket_path), "nina")
    proc.kill()  # the write-ahead log still holds the latest pages
    state = proc.state_dir
    assert (state / (DB_NAME + "-wal")).stat().st_size > 0
    crashed = _files(state, proc.log_path)
    assert {"walletd.db", "walletd.db-wal", "walletd.db-shm"} <= set(crashed)
    assert any(name.startswith("backups/") for name in crashed)
    before = snapshot(state)
    keys = load_keys(state)
    assert snapshot(state) == before  # reading the keys changed nothing
    assert sorted(keys) == ["alice", "bob", "carol", "nina"]
    assert all(len(k) == 32 for k in keys.values())
    secrets = {f"key of {u}": k for u, k in keys.items()}
    secrets["master key"] = read_key_file(state / GENERATED_KEY_NAME)
    _assert_absent(secrets, crashed)
    # And once the log has been checkpointed into the database by a clean stop.
    proc.start()
    assert proc.stop() == 0
    assert not (state / (DB_NAME + "-wal")).exists()
    _assert_absent(secrets, _files(state, proc.log_path))


def test_each_key_is_sealed_with_its_own_nonce(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for i in range(20):
            c.create_wallet(f"user{i}")
    assert proc.stop() == 0
    conn = sqlite3.connect(f"file:{proc.state_dir / DB_NAME}?mode=ro&immutable=1", uri=True)
    rows = conn.execute("SELECT sealed_key FROM wallets").fetchall()
    conn.close()
    sealed = [bytes(r[0]) for r in rows]
    assert {len(s) for s in sealed} == {NONCE_BYTES + 32 + 16}  # nonce, ciphertext, GCM tag
    assert len({s[:NONCE_BYTES] for s in sealed}) == len(sealed)


def test_sealed_key_is_bound_to_its_user_and_address() -> None:
    master = MasterKey(os.urandom(KEY_BYTES), "test")
    sealer = master.sealer()
    key = os.urandom(32)
    sealed = sealer.seal(key, wallet_aad("alice", "0xaaaa"))
    assert sealer.unseal(sealed, wallet_aad("alice", "0xaaaa")) == key
    assert sealer.seal(key, wallet_aad("alice", "0xaaaa")) != sealed  # a fresh nonce each time
    for aad in (wallet_aad("bob", "0xaaaa"), wallet_aad("alice", "0xbbbb")):
        with pytest.raises(UnsealError):
            sealer.unseal(sealed, aad)
    with pytest.raises(UnsealError):
        MasterKey(os.urandom(KEY_BYTES), "other").sealer().unseal(
            sealed, wallet_aad("alice", "0xaaaa")
        )
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(UnsealError):
        sealer.unseal(bytes(tampered), wallet_aad("alice", "0xaaaa"))
    assert "0x" not in repr(master) and key.hex() not in repr(master)


def test_swapped_rows_fail_to_unseal(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for user in ("alice", "bob", "carol"):
            c.create_wallet(user)
    assert proc.stop() == 0
    db = proc.state_dir / DB_NAME
    conn = sqlite3.connect(db, isolation_level=None)
    rows = dict(conn.execute("SELECT user_id, sealed_key FROM wallets"))
    conn.execute("BEGIN")
    conn.execute("UPDATE wallets SET sealed_key = ? WHERE user_id = 'alice'", (rows["bob"],))
    conn.execute("UPDATE wallets SET sealed_key = ? WHERE user_id = 'bob'", (rows["alice"],))
    conn.execute("COMMIT")
    conn.close()
    with pytest.raises(StartupError, match=r"the keys of 2 users \('alice', 'bob'\)"):
        load_keys(proc.state_dir)


# ---------------------------------------------------------------------- master key sources


def _key_file(path: Path, key: bytes, *, as_hex: bool = False) -> Path:
    path.write_bytes(key.hex().encode() + b"\n" if as_hex else key)
    path.chmod(0o600)
    path.chmod(0o600)
    return path


def test_master_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cred_key, file_key, generated_key = (os.urandom(32) for _ in range(3))
    creds = tmp_path / "creds"
    creds.mkdir()
    _key_file(creds / "master-key", cred_key)
    key_file = _key_file(tmp_path / "file.key", file_key, as_hex=True)
    _key_file(state / GENERATED_KEY_NAME, generated_key)

    def load(master_key_file: str | None) -> MasterKey:
        return load_master_key(state, master_key_file, require_external=False, may_generate=False)

    def opens(master: MasterKey, key: bytes) -> bool:
        check = MasterKey(key, "x").sealer().check_value()
        return master.sealer().matches(check)

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    master = load(str(key_file))
    assert master.source.startswith("credential") and opens(master, cred_key)
    (creds / "master-key").unlink()  # a credentials directory without our credential
    master = load(str(key_file))
    assert master.source.startswith("file") and opens(master, file_key)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    master = load(None)
    assert master.generated and opens(master, generated_key)
    with pytest.raises(StartupError, match="require_external_master_key"):
        load_master_key(state, None, require_external=True, may_generate=False)


def test_generated_master_key_is_private_and_warned_about(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    assert proc.stop() == 0
    key = proc.state_dir / GENERATED_KEY_NAME
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32
    warnings = [e for e in proc.log_lines() if e["event"] == "master_key_beside_data"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert key.read_bytes().hex() not in proc.log_text()


def test_systemd_credential_is_used_and_nothing_is_generated(
    daemon: DaemonFactory, tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    key = os.urandom(32)
    _key_file(creds / "master-key", key)
    other = _key_file(tmp_path / "other.key", os.urandom(32))
    proc = daemon("--master-key-file", str(other), env={"CREDENTIALS_DIRECTORY": str(creds)})
    proc.start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
    assert proc.stop() == 0
    assert not (proc.state_dir / GENERATED_KEY_NAME).exists()
    loaded = [e for e in proc.log_lines() if e["event"] == "state_loaded"]
    assert loaded[0]["master_key_source"] == f"credential {creds / 'master-key'}"
    assert "master_key_beside_data" not in proc.log_text()
    assert sorted(load_keys_with(proc.state_dir, creds / "master-key")) == ["alice"]
    with pytest.raises(StartupError, match="wrong key"):
        load_keys_with(proc.state_dir, other)


def load_keys_with(state_dir: Path, key_file: Path) -> dict[str, bytes]:
    return load_keys(state_dir, str(key_file))
