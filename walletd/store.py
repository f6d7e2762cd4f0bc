"""Durable state: one SQLite database in the state directory.

WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), ``secure_delete=ON``
(replaced key ciphertext is overwritten, not left in free pages). The schema version lives in
``user_version``; migrations only go forward, and a database from a newer walletd is refused.

Opening never changes an existing database until it has passed every check: it is first opened
read-only, integrity-checked, version-checked and its master-key check value verified; only
then is it reopened for writing. With ``path=None`` the database lives in memory (ephemeral mode)
and the same code runs.

All methods here block; :class:`AsyncStore` runs them in one worker thread at a time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from wallet_client.protocol import ErrorCode

from .errors import RequestError, StartupError

__all__ = ["DB_NAME", "SCHEMA_VERSION", "AsyncStore", "Statement", "Store", "check_state_dir"]

T = TypeVar("T")
Statement = tuple[str, Sequence[Any]]

DB_NAME = "walletd.db"
SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
    # version -> script that brings version-1 to version
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE wallets (
        user_id TEXT PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        owner_uid INTEGER NOT NULL,
        sealed_key BLOB NOT NULL,
        created_at REAL NOT NULL,
        key_created_at REAL NOT NULL,
        signature_count INTEGER NOT NULL DEFAULT 0,
        max_age_days INTEGER,
        max_signatures INTEGER,
        auto_rotate INTEGER
    );
    CREATE TABLE rotations (
        seq INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL,
        old_wallet_id TEXT NOT NULL,
        new_wallet_id TEXT NOT NULL,
        timestamp REAL NOT NULL,
        reason TEXT NOT NULL,
        actor_uid INTEGER NOT NULL
    );
    CREATE INDEX rotations_by_user ON rotations (user_id, seq);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        timestamp REAL NOT NULL,
        event TEXT NOT NULL,
        user_id TEXT,
        addresses TEXT NOT NULL,
        actor_uid INTEGER NOT NULL,
        actor_pid INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_by_user ON audit (user_id, seq);
    CREATE TABLE rituals (
        user_id TEXT PRIMARY KEY,
        steps BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        locked_at REAL
    );
    """,
}


def check_state_dir(path: Path) -> None:
    """Create the state directory 0700, or refuse one that others could tamper with."""
    try:
        st = path.stat()
    except FileNotFoundError:
        try:
            path.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise StartupError(f"cannot create state directory {path}: {exc.strerror}") from exc
        return
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"state directory {path} exists but is not a directory")
    if st.st_uid != os.getuid():
        raise StartupError(
            f"state directory {path} is owned by uid {st.st_uid}, not by walletd's uid "
            f"{os.getuid()}; fix it with: chown {os.getuid()} {path}"
        )
    if st.st_mode & 0o022:
        raise StartupError(
            f"state directory {path} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); fix it with: chmod 700 {path}"
        )


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. One connection is used from
    # whichever worker thread trio hands us, one at a time (AsyncStore serialises them).
    return sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)


class Store:
    """The database connection and the statements that read and write walletd's state."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path

    # ------------------------------------------------------------------ opening

    @classmethod
    def open_memory(cls) -> Store:
        conn = _connect(":memory:", uri=False)
        store = cls(conn, None)
        store._migrate()
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing database without changing a byte of it, and check its integrity."""
        if not path.exists():
            raise StartupError(f"no walletd database at {path}")
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
        try:
            conn = _connect(uri, uri=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            result = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StartupError(
                f"database {path} is unreadable or corrupt ({exc}); walletd changed nothing. "
                "Restore the state directory from a backup, or run 'walletd check' for details"
            ) from exc
        if result != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in result[:3])
            raise StartupError(
                f"database {path} failed its integrity check ({problems}); walletd changed "
                "nothing. Restore the state directory from a backup"
            )
        if version > SCHEMA_VERSION:
            raise StartupError(
                f"database {path} has schema version {version}, newer than this walletd "
                f"understands ({SCHEMA_VERSION}); run a newer walletd or restore a backup"
            )
        if version < 1:
            raise StartupError(f"{path} is not a walletd database (schema version {version})")
        return cls(conn, path)

    @classmethod
    def create(cls, path: Path) -> Store:
        """A new database file, created 0600 before SQLite ever opens it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return cls.open_writable(path)

    @classmethod
    def open_writable(cls, path: Path) -> Store:
        conn = _connect(str(path), uri=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store._migrate()
        return store

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {target}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ reading

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def meta(self, key: str) -> bytes | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def integrity_check(self) -> list[str]:
        return [str(r[0]) for r in self._conn.execute("PRAGMA integrity_check").fetchall()]

    # ------------------------------------------------------------------ writing

    def write(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in one transaction; on return they are durable."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                # The original error says more; SQLite rolls back on its own if this fails.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


class AsyncStore:
    """Runs store work in a worker thread, one call at a time, so trio's loop never blocks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def write(self, statements: Sequence[Statement]) -> None:
        await self.run(self.store.write, statements)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.run(self.store.query, sql, params)


def storage_error(exc: sqlite3.Error) -> RequestError:
    # SQLite's message ("database or disk is full", "attempt to write a readonly database",
    # "disk I/O error") names the cause and never contains our data.
    return RequestError(
        ErrorCode.STORAGE_ERROR, f"walletd could not save the change ({exc}); nothing was changed"
    )
