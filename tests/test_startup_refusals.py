"""Every refused start of a real walletd: exit code 3 (2 for configuration errors), a message on
stderr that names the problem, and every file in the state directory byte-for-byte unchanged
with no file added or removed (``-wal``/``-shm`` included when present). walletd never deletes,
truncates or repairs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wallet_client import WalletClient
from walletd.storage.store import DB_NAME

from .support import NOBODY, DaemonFactory, DaemonProcess, daemon_process
from .test_store import flip, snapshot

pytestmark = pytest.mark.slow

EXIT_REFUSED = 3
EXIT_USAGE = 2
USERS = [f"user{i:02d}" for i in range(40)]


@pytest.fixture(scope="module")
def golden() -> Iterator[Path]:
    """A state made by a real daemon: 40 wallets, a backup, a signature; cleanly stopped."""
    tmp = Path(tempfile.mkdtemp(prefix="walletd-golden-"))
    proc = daemon_process(tmp)
    proc.start()
    try:
        with WalletClient(proc.socket_path) as c:
            for user in USERS:
                c.create_wallet(user)
            c.sign_message(USERS[0], b"hello")
            c.create_backup(USERS[0])
    finally:
        assert proc.stop() == 0
    assert sorted(p.name for p in proc.state_dir.iterdir()) == sorted(
        ["backups", DB_NAME, "master.key"]
    )
    yield proc.state_dir
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def prepared(daemon: DaemonFactory, golden: Path) -> Callable[..., DaemonProcess]:
    """A daemon (not started) whose state directory is a fresh copy of the golden state."""

    def make(*extra: str) -> DaemonProcess:
        proc: DaemonProcess = daemon(*extra)
        shutil.copytree(golden, proc.state_dir, copy_function=shutil.copy2)
        return proc

    return make


def refused(proc: DaemonProcess, code: int = EXIT_REFUSED) -> str:
    """Start ``proc``, expect it to refuse; return its stderr, checking nothing changed."""
    before = snapshot(proc.state_dir) if proc.state_dir.exists() else None
    socket_before = proc.socket_path.exists()  # a killed daemon leaves its socket behind
    offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
    proc.start(wait=False)
    assert proc.proc is not None
    assert proc.proc.wait(30) == code
    stderr = proc.log_path.read_bytes()[offset:].decode()
    after = snapshot(proc.state_dir) if proc.state_dir.exists() else None
    assert after == before, "a refused start changed the state directory"
    assert proc.socket_path.exists() == socket_before
    assert stderr.startswith("walletd: "), stderr
    return stderr


def _db(proc: DaemonProcess) -> Path:
    return proc.state_dir / DB_NAME


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
    assert not db.with_name(DB_NAME + "-wal").exists()  # closed cleanly, all in the file


def _page(db: Path, table: str) -> tuple[int, int]:
    """(byte offset of ``table``'s root page, page size)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)
        ).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    return (root - 1) * size, size


# ---------------------------------------------------------------------- the state directory


@pytest.mark.parametrize("dir_mode", [0o770, 0o702, 0o777])
def test_group_or_world_writable_state_dir(prepared: DaemonFactory, dir_mode: int) -> None:
    proc = prepared()
    proc.state_dir.chmod(dir_mode)
    err = refused(proc)
    assert "open to group or others" in err
    assert f"chmod 700 {proc.state_dir}" in err


def test_state_dir_owned_by_another_user(prepared: DaemonFactory) -> None:
    proc = prepared()
    os.chown(proc.state_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    err = refused(proc)
    assert f"owned by uid {NOBODY.pw_uid}" in err
    assert f"chown {os.getuid()} {proc.state_dir}" in err


def test_state_dir_in_use_by_another_daemon(prepared: DaemonFactory, open_tmp: Path) -> None:
    first = prepared().start()
    other_tmp = open_tmp / "other"
    other_tmp.mkdir()
    second = daemon_process(other_tmp, "--state-dir", str(first.state_dir))
    second.state_dir = first.state_dir
    try:
        err = refused(second)
    finally:
        assert first.stop() == 0
    assert "in use by another walletd" in err


# ---------------------------------------------------------------------- the database


def test_corrupt_header(prepared: DaemonFactory) -> None:
    proc = prepared()
    flip(_db(proc), 0, 16)  # "SQLite format 3\0"
    err = refused(proc)
    assert "unreadable or corrupt" in err and "not a database" in err
    assert "changed nothing" in err


def test_corrupt_page_in_the_middle(prepared: DaemonFactory) -> None:
    proc = prepared()
    offset, _ = _page(_db(proc), "wallets")
    assert offset > 0
    flip(_db(proc), offset)  # the b-tree page type of the wallets table's root
    err = refused(proc)
    assert "corrupt" in err and "malformed" in err


def test_corrupt_in_several_places(prepared: DaemonFactory) -> None:
    proc = prepared()
    db = _db(proc)
    offset, size = _page(db, "wallets")
    flip(db, 100, 8)  # the first page's b-tree header, just after the file header
    flip(db, offset + 8, 4)  # the wallets root page's child pointer
    flip(db, db.stat().st_size - size // 2, 64)  # inside the last page
    err = refused(proc)
    assert "corrupt" in err or "integrity check" in err


def test_sealed_key_damaged_without_breaking_the_file(prepared: DaemonFactory) -> None:
    """A byte flipped inside one wallet's ciphertext: SQLite sees nothing, unsealing does."""
    proc = prepared()
    conn = sqlite3.connect(f"file:{_db(proc)}?mode=ro&immutable=1", uri=True)
    (sealed,) = conn.execute("SELECT sealed_key FROM wallets WHERE user_id = 'user07'").fetchone()
    conn.close()
    data = _db(proc).read_bytes()
    assert data.count(sealed) == 1
    flip(_db(proc), data.index(sealed) + 20)
    err = refused(proc)
    assert "'user07'" in err and "fails to unseal" in err


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0])
def test_truncated_database(prepared: DaemonFactory, keep: float) -> None:
    proc = prepared()
    db = _db(proc)
    size = db.stat().st_size
    os.truncate(db, int(size * keep) - (100 if keep else 0))
    err = refused(proc)
    if keep:
        assert "is truncated" in err and f"({int(size * keep) - 100} bytes;" in err
    else:
        assert "is empty (0 bytes; truncated?)" in err


def test_newer_schema_version(prepared: DaemonFactory) -> None:
    proc = prepared()
    _sql(_db(proc), "PRAGMA user_version = 99")
    err = refused(proc)
    assert "schema version 99, newer than this walletd understands" in err


def test_not_a_walletd_database(prepared: DaemonFactory) -> None:
    proc = prepared()
    db = _db(proc)
    db.unlink()
    _sql(db, "CREATE TABLE something_else (x)")
    db.chmod(0o600)
    err = refused(proc)
    assert "not a walletd database" in err


def test_missing_check_value(prepared: DaemonFactory) -> None:
    proc = prepared()
    _sql(_db(proc), "DELETE FROM meta WHERE key = 'master_key_check'")
    err = refused(proc)
    assert "no master key check value" in err


def test_database_gone_but_its_log_remains(prepared: DaemonFactory) -> None:
    proc = prepared().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("late")
    proc.kill()
    _db(proc).unlink()
    err = refused(proc)
    assert "is missing but its write-ahead log" in err


def test_refusal_with_a_live_write_ahead_log_changes_nothing(
    prepared: DaemonFactory, tmp_path: Path
) -> None:
    """After a crash (-wal and -shm present): a wrong key is refused and no byte changes."""
    proc = prepared().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("late")
    proc.kill()
    assert (proc.state_dir / (DB_NAME + "-wal")).stat().st_size > 0
    assert (proc.state_dir / (DB_NAME + "-shm")).exists()
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    wrong.chmod(0o600)
    proc.args += ["--master-key-file", str(wrong)]
    err = refused(proc)
    assert "wrong key" in err


# ---------------------------------------------------------------------- keys


def test_missing_master_key(prepared: DaemonFactory) -> None:
    proc = prepared()
    (proc.state_dir / "master.key").rename(proc.log_path.with_name("moved.key"))
    err = refused(proc)
    assert "master key is missing" in err


def test_master_key_file_that_does_not_exist(prepared: DaemonFactory, tmp_path: Path) -> None:
    proc = prepared("--master-key-file", str(tmp_path / "nope.key"))
    err = refused(proc)
    assert "cannot read master key" in err and "nope.key" in err


def test_wrong_master_key(prepared: DaemonFactory, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    wrong.chmod(0o600)
    proc = prepared("--master-key-file", str(wrong))
    err = refused(proc)
    assert "does not open" in err and "wrong key" in err and "changed nothing" in err


def test_malformed_master_key(prepared: DaemonFactory) -> None:
    proc = prepared()
    (proc.state_dir / "master.key").write_bytes(b"too short")
    err = refused(proc)
    assert "must hold 32 raw bytes or 64 hex characters" in err


def test_generated_master_key_readable_by_others(prepared: DaemonFactory) -> None:
    proc = prepared()
    (proc.state_dir / "master.key").chmod(0o644)
    err = refused(proc)
    assert "readable by others" in err and "chmod 600" in err


def test_swapped_sealed_keys(prepared: DaemonFactory) -> None:
    proc = prepared()
    conn = sqlite3.connect(_db(proc), isolation_level=None)
    rows = dict(conn.execute("SELECT user_id, sealed_key FROM wallets"))
    conn.execute("BEGIN")
    update = "UPDATE wallets SET sealed_key = ? WHERE user_id = ?"
    conn.execute(update, (rows["user11"], "user03"))
    conn.execute(update, (rows["user03"], "user11"))
    conn.execute("COMMIT")
    conn.close()
    err = refused(proc)
    assert "the keys of 2 users ('user03', 'user11') in" in err and "fail to unseal" in err
    assert "moved from another row" in err


def test_require_external_master_key_refuses_the_generated_one(
    prepared: DaemonFactory, tmp_path: Path
) -> None:
    config = tmp_path / "walletd.toml"
    config.write_text("require_external_master_key = true\n")
    proc = prepared("--config", str(config))
    err = refused(proc)
    assert "require_external_master_key is set" in err


def test_require_external_master_key_on_a_fresh_state(
    daemon: DaemonFactory, tmp_path: Path
) -> None:
    config = tmp_path / "walletd.toml"
    config.write_text("require_external_master_key = true\n")
    proc = daemon("--config", str(config))
    proc.state_dir.mkdir(mode=0o700)
    err = refused(proc)
    assert "no master key" in err
    assert list(proc.state_dir.iterdir()) == []


# ---------------------------------------------------------------------- configuration


def test_configuration_errors_exit_2(prepared: DaemonFactory, tmp_path: Path) -> None:
    config = tmp_path / "walletd.toml"
    config.write_text("no_such_option = 1\n")
    err = refused(prepared("--config", str(config)), code=EXIT_USAGE)
    assert "unknown option" in err and "no_such_option" in err
