"""The database schema: its version and the forward migrations that build it.

``user_version`` holds the version. Each migration runs in its own transaction together with
setting the version, so a crash leaves the database at one version or the next, never in
between. There are no downward migrations: a database from a newer walletd is refused.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 4

MIGRATIONS: dict[int, str] = {
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
    # Signature counts reserved durably ahead of use for auto-rotate keys (walletd.rotation).
    2: "ALTER TABLE wallets ADD COLUMN reserved_count INTEGER NOT NULL DEFAULT 0",
    # Key types (issue 14). Every wallet made before is hmac-sha256 at version 1, sealed with
    # the first associated-data format (seal_format 1, which names neither type nor version);
    # walletd.storage.sealing explains why only such rows may keep that format.
    3: """
    ALTER TABLE wallets ADD COLUMN key_type TEXT NOT NULL DEFAULT 'hmac-sha256';
    ALTER TABLE wallets ADD COLUMN key_version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE wallets ADD COLUMN seal_format INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE public_keys (
        user_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        key_type TEXT NOT NULL,
        public_key BLOB NOT NULL,
        address TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (user_id, version)
    );
    """,
    # The signing policy (issue 15): each wallet's two layers (the compiled document as JSON,
    # its compare-and-set version), the durable rate windows of limited rules (see
    # walletd.model.rate_window for the record and its reservations), and the pauses of the
    # kill switch (scope "all", "uid:<n>" or "wallet:<user_id>").
    4: """
    CREATE TABLE signing_policies (
        user_id TEXT NOT NULL,
        layer TEXT NOT NULL,
        version INTEGER NOT NULL,
        document TEXT NOT NULL,
        updated_at REAL NOT NULL,
        actor_uid INTEGER NOT NULL,
        PRIMARY KEY (user_id, layer)
    );
    CREATE TABLE rate_windows (
        user_id TEXT NOT NULL,
        layer TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        record BLOB NOT NULL,
        PRIMARY KEY (user_id, layer, rule_id)
    );
    CREATE TABLE signing_pauses (
        scope TEXT PRIMARY KEY,
        since REAL NOT NULL,
        actor_uid INTEGER NOT NULL
    );
    """,
}


def migrate(
    conn: sqlite3.Connection,
    migrations: Mapping[int, str] = MIGRATIONS,
    target: int = SCHEMA_VERSION,
) -> int:
    """Bring the schema forward to ``target``, one transaction per version; returns the old one.

    Each step runs its script and sets ``user_version`` in the same transaction, so a crash
    leaves the database at one version or the next, never in between.
    """
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for step in range(version + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(step)}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    return version
