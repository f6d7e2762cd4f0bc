"""The store: file modes, the pragmas of the live connection, schema migrations, the read-only
open that changes nothing, the state-directory lock and atomic first creation.

The helpers at the top (``snapshot``, ``walletd_cli``, ``load_keys``, ``flip``) are shared by
the other durability modules (test_startup_refusals, test_sealing, test_rekey, test_check, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient, WalletClient
from walletd.config import Config
from walletd.errors import RequestError, StartupError
from walletd.ops.daemon import build_daemon
from walletd.storage.loader import open_store, preflight
from walletd.storage.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from walletd.storage.sealing import load_master_key
from walletd.storage.statedir import StateLock, check_state_dir
from walletd.storage.store import DB_NAME, AsyncStore, Store

from .support import ROOT, DaemonFactory, MakeConfig, StartServer, wait_for_socket

# ---------------------------------------------------------------------- shared helpers


def snapshot(directory: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``directory``: relative path -> (sha256 of the bytes, mode, uid)."""
    out: dict[str, tuple[Any, ...]] = {}
    st = directory.lstat()
    out["."] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid)
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(directory))
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = (digest, stat.S_IMODE(st.st_mode), st.st_uid)
        else:
            out[rel] = ("other", stat.S_IMODE(st.st_mode), st.st_uid)
    return out


def walletd_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``walletd`` command line; returns its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "walletd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def load_keys(state_dir: Path, master_key_file: str | None = None) -> dict[str, bytes]:
    """user_id -> raw key, read with walletd's own code (read-only: no file changes)."""
    master = load_master_key(state_dir, master_key_file, require_external=False, may_generate=False)
    state = preflight(state_dir / DB_NAME, master)
    return {w.user_id: bytes(w.key) for w in state.wallets}


def flip(path: Path, offset: int, count: int = 1) -> None:
    """Invert ``count`` bytes of ``path`` at ``offset``."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def _peer_pid(sock_path: Path) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(str(sock_path))
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[0])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------- modes and pragmas


async def test_live_connection_pragmas_and_file_modes(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config()
    server = await start_server(config)
    state = Path(config.state_dir)
    async with AsyncWalletClient(config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        await c.create_backup("alice")
        pragmas = server.daemon.store.pragmas()
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "secure_delete": 1,
            "user_version": SCHEMA_VERSION,
        }
        assert mode(state) == 0o700
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", "master.key"):
            assert mode(state / name) == 0o600, name
        backups = state / "backups"
        assert mode(backups) == 0o700
        assert [mode(f) for f in backups.iterdir()] == [0o600]


@pytest.mark.slow
def test_modes_do_not_depend_on_the_umask(open_tmp: Path) -> None:
    """With umask 000 anything created with a default mode would come out world-writable."""
    state = open_tmp / "state"
    sock = open_tmp / "walletd.sock"
    old = os.umask(0)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "walletd", "--socket", str(sock), "--state-dir", str(state)],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.umask(old)
    try:
        wait_for_socket(sock, proc=proc)
        with WalletClient(sock) as c:
            c.create_wallet("alice")
            c.create_backup("alice")
        entries = {p.name: mode(p) for p in state.rglob("*")}
        dirs = {p.name for p in state.rglob("*") if p.is_dir()}
        assert mode(state) == 0o700
        for name, m in entries.items():
            assert m == (0o700 if name in dirs else 0o600), (name, oct(m))
        assert {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", "master.key"} <= set(entries)
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


_OPEN = re.compile(r'openat\(AT_FDCWD[^,]*, "([^"]+)", ([A-Z_|]+)(?:, (0\d+))?\)')
_MKDIR = re.compile(r'mkdir(?:at)?\((?:AT_FDCWD[^,]*, )?"([^"]+)", (0\d+)\)')
_RENAME = re.compile(
    r'rename(?:at2?)?\((?:AT_FDCWD[^,]*, )?"([^"]+)", (?:AT_FDCWD[^,]*, )?"([^"]+)"'
)
_CHMOD = re.compile(r"\b(f?chmod(?:at)?)\((.*)")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_files_are_created_with_their_final_mode(open_tmp: Path) -> None:
    """Trace the real daemon: every file and directory in the state directory is created with
    its final mode (0600 / 0700) and nothing there is ever chmod-ed."""
    state = open_tmp / "state"
    sock = open_tmp / "walletd.sock"
    trace = open_tmp / "trace"
    syscalls = "openat,open,creat,mkdir,mkdirat,chmod,fchmod,fchmodat,rename,renameat,renameat2"
    strace = ["strace", "-f", "-y", "-qq", "-e", f"trace={syscalls}", "-o", str(trace)]
    proc = subprocess.Popen(
        [
            *strace,
            sys.executable,
            "-m",
            "walletd",
            "--socket",
            str(sock),
            "--state-dir",
            str(state),
        ],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(sock, proc=proc)
        with WalletClient(sock) as c:
            c.create_wallet("alice")
            c.create_backup("alice")
    finally:
        # Stop the daemon itself (strace's child), found by its peer credentials.
        try:
            os.kill(_peer_pid(sock), signal.SIGTERM)
        except OSError:
            proc.kill()
        assert proc.wait(30) == 0
    prefix = str(state)
    created: dict[str, str] = {}  # path -> mode it was created with
    for line in trace.read_text().splitlines():
        if prefix not in line or "= -1 " in line:
            continue
        if m := _CHMOD.search(line):
            pytest.fail(f"something in the state directory was chmod-ed: {line}")
        if (m := _OPEN.search(line)) and "O_CREAT" in m.group(2) and m.group(1) not in created:
            created[m.group(1)] = m.group(3)
        elif m := _MKDIR.search(line):
            created.setdefault(m.group(1), m.group(2))
        elif m := _RENAME.search(line):
            created[m.group(2)] = created.pop(m.group(1))
    names = {Path(p).name: m for p, m in created.items() if p.startswith(prefix)}
    assert names.pop("backups") == "0700"
    assert names.pop("state") == "0700"
    for wanted in ("master.key", DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        assert wanted in names, (wanted, sorted(names))
    assert set(names.values()) == {"0600"}, names


# ---------------------------------------------------------------------- reading changes nothing


def _make_state(tmp: Path) -> Config:
    config = Config(state_dir=str(tmp / "state"), socket=str(tmp / "s.sock"))
    store, _, _ = open_store(config)
    store.close()
    return config


def test_plain_read_only_sqlite_would_create_files(tmp_path: Path) -> None:
    """Why Store.open_readonly is not a plain mode=ro open: that creates -wal and -shm."""
    config = _make_state(tmp_path)
    db = Path(config.state_dir) / DB_NAME
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("SELECT count(*) FROM wallets").fetchone()
    conn.close()
    assert (db.parent / (DB_NAME + "-shm")).exists()


def test_read_only_open_after_a_clean_stop_changes_nothing(tmp_path: Path) -> None:
    config = _make_state(tmp_path)
    state = Path(config.state_dir)
    before = snapshot(state)
    assert set(before) == {".", DB_NAME, "master.key"}
    store = Store.open_readonly(state / DB_NAME, quick=False)
    assert store.query("SELECT count(*) FROM wallets") == [(0,)]
    store.close()
    assert load_keys(state) == {}
    assert snapshot(state) == before


@pytest.mark.slow
def test_read_only_open_after_a_crash_changes_nothing(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        addresses = {u: c.create_wallet(u) for u in ("alice", "bob")}
    proc.kill()
    state = proc.state_dir
    before = snapshot(state)
    assert {DB_NAME + "-wal", DB_NAME + "-shm"} <= set(before)
    assert sorted(load_keys(state)) == ["alice", "bob"]
    assert snapshot(state) == before
    # Without the shared-memory index the log is read from a private copy.
    (state / (DB_NAME + "-shm")).unlink()
    before = snapshot(state)
    store = Store.open_readonly(state / DB_NAME)
    rows = dict(store.query("SELECT user_id, address FROM wallets"))
    store.close()
    assert rows == addresses
    assert snapshot(state) == before


@pytest.mark.slow
def test_read_only_open_beside_a_running_daemon(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        store = Store.open_readonly(proc.state_dir / DB_NAME, quick=False)
        try:
            assert store.query("SELECT user_id FROM wallets") == [("alice",)]
        finally:
            store.close()
        c.create_wallet("bob")  # the daemon still writes
    assert proc.stop() == 0


# ---------------------------------------------------------------------- migrations


def test_migrations_go_forward_one_transaction_each(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.execute("INSERT INTO meta (key, value) VALUES ('k', x'00')")
    nxt = SCHEMA_VERSION + 1
    future = {**MIGRATIONS, nxt: "CREATE TABLE extra (x); ALTER TABLE meta ADD COLUMN note TEXT"}
    assert migrate(conn, future, nxt) == SCHEMA_VERSION
    assert conn.execute("PRAGMA user_version").fetchone() == (nxt,)
    assert conn.execute("SELECT key, note FROM meta").fetchall() == [("k", None)]
    broken = {**future, nxt + 1: "CREATE TABLE half (x); THIS IS NOT SQL"}
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken, nxt + 1)
    # The failed step left nothing behind: the version before it, no half-made table.
    assert conn.execute("PRAGMA user_version").fetchone() == (nxt,)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert "half" not in tables and "extra" in tables
    assert migrate(conn, future, nxt) == nxt  # nothing to do


def test_write_is_all_or_nothing(tmp_path: Path) -> None:
    config = _make_state(tmp_path)
    store = Store.open_writable(Path(config.state_dir) / DB_NAME)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            store.write(
                [
                    ("INSERT INTO meta (key, value) VALUES ('a', x'01')", ()),
                    ("INSERT INTO meta (key, value) VALUES ('a', x'02')", ()),  # duplicate
                ]
            )
        assert store.meta("a") is None
        store.write([("INSERT INTO meta (key, value) VALUES ('a', x'03')", ())])
        assert store.meta("a") == b"\x03"
    finally:
        store.close()


# ---------------------------------------------------------------------- lock and first start


def test_state_directory_lock_is_exclusive_and_released_on_close(tmp_path: Path) -> None:
    config = _make_state(tmp_path)
    store, _, _ = open_store(config)
    with pytest.raises(StartupError, match="in use by another walletd"):
        open_store(config)
    with pytest.raises(StartupError, match="in use by another walletd"):
        StateLock.acquire(Path(config.state_dir))
    store.close()
    StateLock.acquire(Path(config.state_dir)).release()
    open_store(config)[0].close()


def test_build_daemon_releases_the_lock_when_it_fails(tmp_path: Path) -> None:
    config = _make_state(tmp_path)
    bad = Config(state_dir=config.state_dir, scrypt_n=2**20, scrypt_r=64)
    with pytest.raises(StartupError, match="scrypt"):
        build_daemon(bad)
    open_store(config)[0].close()  # not locked


def test_a_crashed_first_start_leaves_nothing_that_blocks_the_next(tmp_path: Path) -> None:
    """What a crash during the very first start can leave: a temp key, a half-built database."""
    state = tmp_path / "state"
    check_state_dir(state)
    (state / "master.key.tmp").write_bytes(b"\x01" * 10)
    (state / (DB_NAME + ".init")).write_bytes(b"SQLite format 3\x00 half")
    (state / (DB_NAME + ".init-journal")).write_bytes(b"junk")
    config = Config(state_dir=str(state))
    store, master, loaded = open_store(config)
    store.close()
    assert loaded.wallets == [] and master.generated
    assert sorted(p.name for p in state.iterdir()) == sorted([DB_NAME, "master.key"])
    assert load_keys(state) == {}


def test_state_dir_checks(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="does not exist"):
        check_state_dir(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    check_state_dir(tmp_path / "a" / "b")
    assert mode(tmp_path / "a" / "b") == 0o700
    (tmp_path / "file").write_text("")
    with pytest.raises(StartupError, match="not a directory"):
        check_state_dir(tmp_path / "file")


async def test_store_work_runs_in_worker_threads_one_at_a_time(tmp_path: Path) -> None:
    """The event loop never runs SQLite; concurrent callers are serialised."""
    config = _make_state(tmp_path)
    store, _, _ = open_store(config)
    async_store = AsyncStore(store)
    loop_thread = threading.get_ident()
    running, seen, threads = [0], [], set()

    def work(i: int) -> int:
        running[0] += 1
        seen.append(running[0])
        threads.add(threading.get_ident())
        store.write([("INSERT INTO meta (key, value) VALUES (?, x'00')", (f"k{i}",))])
        running[0] -= 1
        return i

    try:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(async_store.run, work, i)
        assert max(seen) == 1 and len(seen) == 20
        assert loop_thread not in threads
        rows = await async_store.query("SELECT count(*) FROM meta WHERE key LIKE 'k%'")
        assert rows == [(20,)]
        with pytest.raises(RequestError) as caught:  # SQLite errors become storage_error
            await async_store.write([("INSERT INTO nope VALUES (1)", ())])
        assert caught.value.code == "storage_error"
    finally:
        store.close()


def _downgrade_to_v1(db: Path) -> None:
    """Make ``db`` what walletd 1 wrote: schema version 1, without the later columns and
    tables, its keys sealed with the first associated-data format."""
    from tests.legacy_db import downgrade_to_v2

    downgrade_to_v2(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("ALTER TABLE wallets DROP COLUMN reserved_count")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


@pytest.mark.slow
def test_an_older_database_is_migrated_only_after_every_check(daemon: DaemonFactory) -> None:
    assert SCHEMA_VERSION == 4
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        signatures = {}
        for user in ("alice", "bob"):
            c.create_wallet(user)
            signatures[user] = c.sign_message(user, b"x")
    assert proc.stop() == 0
    db = proc.state_dir / DB_NAME
    _downgrade_to_v1(db)
    conn = sqlite3.connect(db, isolation_level=None)
    rows = dict(conn.execute("SELECT user_id, sealed_key FROM wallets"))
    conn.execute("UPDATE wallets SET sealed_key = ? WHERE user_id = 'alice'", (rows["bob"],))
    conn.close()

    # Version 1 with a key that fails to unseal: refused, and the file is still version 1.
    before = snapshot(proc.state_dir)
    proc.start(wait=False)
    assert proc.proc is not None and proc.proc.wait(30) == 3
    assert "'alice'" in proc.log_text().splitlines()[-1]
    assert snapshot(proc.state_dir) == before

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE wallets SET sealed_key = ? WHERE user_id = 'alice'", (rows["alice"],))
    conn.close()
    before = snapshot(proc.state_dir)
    checked = walletd_cli("check", "--state-dir", str(proc.state_dir), "--json")
    assert checked.returncode == 0, checked.stdout
    assert f"migrates it to {SCHEMA_VERSION}" in json.loads(checked.stdout)["schema_version"]
    assert snapshot(proc.state_dir) == before  # check reads a migrated copy in memory

    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert {u: c.sign_message(u, b"x") for u in signatures} == signatures
        assert c.audit_verify().ok
    assert proc.stop() == 0
    store = Store.open_readonly(db)
    try:
        assert store.pragmas()["user_version"] == SCHEMA_VERSION
        assert store.query(
            "SELECT user_id, reserved_count, key_type, key_version, seal_format FROM wallets"
            " ORDER BY user_id"
        ) == [("alice", 0, "hmac-sha256", 1, 1), ("bob", 0, "hmac-sha256", 1, 1)]
    finally:
        store.close()
