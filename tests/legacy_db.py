"""Databases as walletd wrote them before key types (schema version 2), for migration tests.

:func:`downgrade_to_v2` turns a database the current walletd wrote (HMAC wallets at version 1
only) into exactly what schema 2 held: no key type, key version or seal format columns, no
public-key table, and every key sealed with the first associated-data format
(``walletd:wallet-key:v1`` + user id + address). It needs the generated master key beside the
database, which is what the daemons in the tests use.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from walletd.storage.sealing import GENERATED_KEY_NAME, Sealer, legacy_wallet_aad, wallet_aad


def sealer_for(state_dir: Path) -> Sealer:
    return Sealer((state_dir / GENERATED_KEY_NAME).read_bytes())


def downgrade_to_v2(db: Path) -> None:
    sealer = sealer_for(db.parent)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT user_id, address, sealed_key, key_type, key_version FROM wallets"
        ).fetchall()
        for user_id, address, sealed, key_type, version in rows:
            assert (key_type, version) == ("hmac-sha256", 1), "schema 2 had only these"
            key = sealer.unseal(sealed, wallet_aad(user_id, address, key_type, version))
            conn.execute(
                "UPDATE wallets SET sealed_key = ? WHERE user_id = ?",
                (sealer.seal(key, legacy_wallet_aad(user_id, address)), user_id),
            )
        for column in ("key_type", "key_version", "seal_format"):
            conn.execute(f"ALTER TABLE wallets DROP COLUMN {column}")
        conn.execute("DROP TABLE public_keys")
        for table in ("signing_policies", "rate_windows", "signing_pauses"):  # schema 4
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
