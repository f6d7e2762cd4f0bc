"""Durable state: one SQLite database in the state directory.

WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), ``secure_delete=ON``
(replaced key ciphertext is overwritten, not left in free pages). The schema and its forward
migrations are in :mod:`walletd.schema`; the state directory checks and lock in
:mod:`walletd.statedir`.

Opening never changes an existing database until it has passed every check: it is first opened
read-only in a way that writes no byte and creates no file in the state directory (see
:meth:`Store.open_readonly`), integrity-checked, version-checked and its master-key check value
verified; only then is it reopened for writing. While a daemon (or ``walletd rekey``) has the
state open it holds an exclusive lock on the state directory, so two processes never serve the
same state. With ``path=None`` the database lives in memory (ephemeral mode) and the same code
runs.

All methods here block; :class:`AsyncStore` runs them in one worker thread at a time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from walletd.errors import RequestError, StartupError, StorageFailure
from walletd.storage import sql
from walletd.storage.schema import SCHEMA_VERSION, migrate, without_row_tag_key
from walletd.storage.statedir import StateLock, fsync_dir

if TYPE_CHECKING:
    from walletd.storage.row_tagging import RowTagger

__all__ = ["DB_NAME", "AsyncStore", "Statement", "Store"]

T = TypeVar("T")
Statement = sql.Statement

DB_NAME = "walletd.db"
# A database is first built under this name and renamed into place once complete, so a crash
# during the very first start never leaves a half-made walletd.db that later starts refuse.
INIT_SUFFIX = ".init"


# ---------------------------------------------------------------------- connections


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. One connection is used from
    # whichever worker thread trio hands us, one at a time (AsyncStore serialises them).
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
    # Sanity-check b-tree pages as they are read, so damage is an error, not garbage.
    conn.execute("PRAGMA cell_size_check=ON")
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def _migrate(conn: sqlite3.Connection, tagger: RowTagger | None) -> None:
    """Bring ``conn`` to the current schema; with a tagger, keep its row tags from then on.

    The schema-5 migration computes the first tags with the tagger's functions, so migrating
    an older database needs one (without, it fails on the missing function, changing nothing).
    """
    if tagger is not None:
        tagger.install_functions(conn)
    else:
        without_row_tag_key(conn)
    migrate(conn)
    if tagger is not None:
        tagger.install_triggers(conn)


def _uri(path: Path, **params: str) -> str:
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?" + urllib.parse.urlencode(params)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _check_length(path: Path, size: int) -> None:
    """Refuse a database file shorter than its own header says (cut off by a copy or a crash)."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return  # SQLite's own error ("file is not a database") says it better
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid only if written by the same change as the counter.
    if header[24:28] != header[92:96] or not pages:
        return
    if size < pages * page_size:
        raise StartupError(
            f"database {path} is truncated ({size} bytes; its header says {pages} pages of "
            f"{page_size} bytes); walletd changed nothing. Restore the state directory from "
            "a backup"
        )


def _corrupt(path: Path, detail: str) -> StartupError:
    return StartupError(
        f"database {path} is unreadable or corrupt ({detail}); walletd changed nothing. "
        "Restore the state directory from a backup; 'walletd check' prints details"
    )


class Store:
    """The database connection and the statements that read and write walletd's state."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | None,
        *,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self.path = path
        self.lock: StateLock | None = None
        self._cleanup = cleanup
        self._reader: Store | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open_memory(cls, tagger: RowTagger | None = None) -> Store:
        conn = _connect(":memory:", uri=False)
        _migrate(conn, tagger)
        return cls(conn, None)

    @classmethod
    def open_readonly(cls, path: Path, *, quick: bool = True, verify: bool = True) -> Store:
        """Open an existing database without writing a byte or creating a file beside it.

        A plain ``mode=ro`` open of a WAL database creates ``-wal`` and ``-shm`` files and
        writes to ``-shm``, which would break "a refused start changes nothing". So:

        * no write-ahead log (or an empty one): the database file holds everything, and
          ``immutable=1`` reads it with no locks and no side files;
        * a log and its shared-memory index (after a crash, or while a daemon runs): the
          index is opened read-only (``readonly_shm``), SQLite falling back to reading the
          log itself when the index cannot be trusted;
        * a log without an index, or when the above fails: the database and its log are
          copied into a private temporary directory and opened there.

        Unless ``verify=False`` the database is then integrity-checked (``quick_check``, or
        the full ``integrity_check`` with ``quick=False``) and its schema version checked.
        """
        size = _size(path)
        if size is None:
            raise StartupError(f"no walletd database at {path}")
        if size == 0:
            raise StartupError(
                f"database {path} is empty (0 bytes; truncated?); walletd changed nothing. "
                "Restore the state directory from a backup"
            )
        wal = path.with_name(path.name + "-wal")
        shm = path.with_name(path.name + "-shm")
        check = {"quick": quick} if verify else None
        if not _size(wal):
            _check_length(path, size)  # with no log, the file alone must hold every page
            return cls._open_checked(_uri(path, mode="ro", immutable="1"), path, check)
        if shm.exists():
            with contextlib.suppress(StartupError):  # the private copy has the last word
                return cls._open_checked(_uri(path, mode="ro", readonly_shm="1"), path, check)
        return cls._private_copy(path, wal, check)

    @classmethod
    def _open_checked(
        cls,
        uri: str,
        path: Path,
        check: dict[str, bool] | None,
        cleanup: Callable[[], None] | None = None,
    ) -> Store:
        """A read-only connection to ``uri``, checked; StartupError (and nothing open) if not."""
        conn = None
        try:
            conn = _connect(uri, uri=True)
            store = cls(conn, path, cleanup=cleanup)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if cleanup is not None:
                cleanup()
            raise _corrupt(path, str(exc)) from exc
        try:
            # Reading the schema is the least that must work, even unverified.
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            if check is not None:
                store._check(path, **check)
        except sqlite3.DatabaseError as exc:
            store.close()
            raise _corrupt(path, str(exc)) from exc
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _private_copy(cls, path: Path, wal: Path, check: dict[str, bool] | None) -> Store:
        """Open a copy of the database and its log, so that reading them changes nothing."""
        tmp = Path(tempfile.mkdtemp(prefix="walletd-check-"))

        def cleanup() -> None:
            shutil.rmtree(tmp, ignore_errors=True)

        copy = tmp / path.name
        try:
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except OSError as exc:
            cleanup()
            raise StartupError(
                f"cannot read {path} and its write-ahead log without changing them, nor copy "
                f"them to {tmp} to read them there: {exc}"
            ) from exc
        return cls._open_checked(_uri(copy, mode="ro"), path, check, cleanup)

    def _check(self, path: Path, *, quick: bool) -> None:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            problems = self.integrity_check(quick=quick)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(path, str(exc)) from exc
        if problems != ["ok"]:
            raise StartupError(
                f"database {path} failed its integrity check ({'; '.join(problems[:3])}); "
                "walletd changed nothing. Restore the state directory from a backup"
            )
        if version > SCHEMA_VERSION:
            raise StartupError(
                f"database {path} has schema version {version}, newer than this walletd "
                f"understands ({SCHEMA_VERSION}); walletd changed nothing. Run a newer walletd "
                "or restore a backup"
            )
        if version < 1:
            raise StartupError(
                f"{path} is not a walletd database (schema version {version}); "
                "walletd changed nothing"
            )

    def migrated_copy(self, tagger: RowTagger) -> Store:
        """An in-memory copy brought to the current schema, to load and check an old database
        before the real one is migrated."""
        conn = _connect(":memory:", uri=False)
        self._conn.backup(conn)
        _migrate(conn, tagger)
        return Store(conn, self.path)

    @classmethod
    def create(
        cls, path: Path, initial: Sequence[Statement] = (), tagger: RowTagger | None = None
    ) -> Store:
        """A new database with the current schema and ``initial`` rows, then open for writing.

        It is built as ``<name>.init`` (created 0600 before SQLite opens it; SQLite gives its
        side files the same mode) and renamed into place only once complete and synced.
        """
        building = path.with_name(path.name + INIT_SUFFIX)
        for leftover in (building, building.with_name(building.name + "-journal")):
            # What a crash during an earlier first start left: never a database in use.
            leftover.unlink(missing_ok=True)
        fd = os.open(building, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        conn = _connect(str(building), uri=False)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")
            _migrate(conn, tagger)
            Store(conn, building).write(initial)
        finally:
            conn.close()
        fd = os.open(building, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(building, path)
        fsync_dir(path.parent)
        return cls.open_writable(path, tagger)

    @classmethod
    def open_writable(cls, path: Path, tagger: RowTagger | None = None) -> Store:
        """Open for serving: WAL, synchronous=FULL, secure_delete; migrated to the current schema.

        Refuses (StartupError) rather than serve from a database it cannot write: SQLite would
        otherwise quietly open it read-only and every change would fail.
        """
        conn = None
        try:
            conn = _connect(str(path), uri=False)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StartupError(
                    f"cannot use a write-ahead log for {path} (journal mode stays {mode}); "
                    "put the state directory on a local file system"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")  # proves we may write: takes the write lock
            conn.execute("ROLLBACK")
            _migrate(conn, tagger)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StartupError(
                f"cannot open {path} for writing ({exc}); check that its file system is "
                "writable and has space. walletd changed nothing"
            ) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return cls(conn, path)

    def open_reader(self) -> Store | None:
        """A second, read-only connection to this database, for queries; None in memory.

        In WAL mode a reader sees the last committed state and never waits for the writer,
        so reads need not queue behind writes (issue 12, item 9). An in-memory database has
        no second connection that sees it (shared-cache memory databases lock per table
        instead), so there reads keep to the one connection.
        """
        if self.path is None:
            return None
        if self._reader is None:
            conn = _connect(_uri(self.path, mode="ro"), uri=True)
            conn.execute("PRAGMA query_only=ON")
            self._reader = Store(conn, self.path)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._conn.close()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ------------------------------------------------------------------ reading

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Like :meth:`query`, one row at a time: loading need not hold every row at once."""
        return iter(self._conn.execute(sql, params))

    def meta(self, key: str) -> bytes | None:
        row = self._conn.execute(sql.SELECT_META, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def integrity_check(self, *, quick: bool = False) -> list[str]:
        pragma = "quick_check" if quick else "integrity_check"
        return [str(r[0]) for r in self._conn.execute(f"PRAGMA {pragma}").fetchall()]

    def pragmas(self) -> dict[str, Any]:
        """The settings of this connection that durability depends on (for tests and check)."""
        names = ("journal_mode", "synchronous", "secure_delete", "user_version")
        return {name: self._conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}

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
    """Runs store work in a worker thread, one call at a time, so trio's loop never blocks.

    Queries go to a second, read-only connection (:meth:`Store.open_reader`) with its own
    worker slot, so a reader never waits for a write, nor a write for a flood of reads. Reads
    that must agree with each other hold the daemon's writer lock (as ``audit_verify`` does),
    since each query sees the state committed when it starts.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)
        self._reader = store.open_reader()
        self._read_limiter = self._limiter if self._reader is None else trio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def write(self, statements: Sequence[Statement]) -> None:
        await self.run(self.store.write, statements)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        reader = self.store if self._reader is None else self._reader
        try:
            return await trio.to_thread.run_sync(
                reader.query, sql, params, limiter=self._read_limiter
            )
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc


def storage_error(exc: sqlite3.Error) -> RequestError:
    # SQLite's message ("database or disk is full", "attempt to write a readonly database",
    # "disk I/O error") names the cause and never contains our data.
    return StorageFailure(f"walletd could not save the change ({exc}); nothing was changed")
