"""Every SQL statement walletd runs against its state, in one place.

The table definitions and their migrations are in :mod:`walletd.storage.schema`; the
connection's own pragmas are in :mod:`walletd.storage.store`. Everything else is here, as
functions that build a :data:`Statement` (SQL text and its parameters) or as query constants,
so the rest of the daemon never writes SQL: reading this module tells what walletd can do to
its database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from walletd.model.audit_chain import COLUMNS, HEAD_KEY, HEAD_TAG_KEY

if TYPE_CHECKING:
    from walletd.model.audit_chain import AuditEntry
    from walletd.model.row_tags import TaggedTable

Statement = tuple[str, Sequence[Any]]

# ------------------------------------------------------------------------------- wallets

WALLET_COLUMNS = (
    "user_id, address, owner_uid, sealed_key, created_at, key_created_at,"
    " signature_count, max_age_days, max_signatures, auto_rotate, reserved_count,"
    " key_type, key_version, seal_format"
)
SELECT_WALLETS = f"SELECT {WALLET_COLUMNS} FROM wallets"  # noqa: S608 - constant
COUNT_WALLETS_BY_OWNER = "SELECT owner_uid, count(*) FROM wallets GROUP BY owner_uid"
COUNT_WALLETS_BY_KEY_TYPE = "SELECT key_type, count(*) FROM wallets GROUP BY key_type"


#: The associated-data format every key sealed today uses (see walletd.storage.sealing).
SEAL_FORMAT = 2


def insert_wallet(
    user_id: str,
    address: str,
    owner_uid: int,
    sealed_key: bytes,
    created_at: float,
    key_type: str = "hmac-sha256",
) -> Statement:
    return (
        "INSERT INTO wallets (user_id, address, owner_uid, sealed_key, created_at,"
        " key_created_at, signature_count, key_type, key_version, seal_format)"
        " VALUES (?, ?, ?, ?, ?, ?, 0, ?, 1, ?)",
        (user_id, address, owner_uid, sealed_key, created_at, created_at, key_type, SEAL_FORMAT),
    )


def delete_wallet(user_id: str) -> Statement:
    return ("DELETE FROM wallets WHERE user_id = ?", (user_id,))


def replace_key(
    user_id: str,
    address: str,
    sealed_key: bytes,
    key_created_at: float,
    owner_uid: int,
    version: int = 1,
) -> Statement:
    """A rotation (or a recovery's hand-over): new key and version, counts back to zero."""
    return (
        "UPDATE wallets SET address = ?, sealed_key = ?, key_created_at = ?,"
        " signature_count = 0, reserved_count = 0, owner_uid = ?, key_version = ?,"
        " seal_format = ? WHERE user_id = ?",
        (address, sealed_key, key_created_at, owner_uid, version, SEAL_FORMAT, user_id),
    )


def reseal_key(user_id: str, sealed_key: bytes) -> Statement:
    """A key sealed again (``rekey``), always in the current associated-data format."""
    return (
        "UPDATE wallets SET sealed_key = ?, seal_format = ? WHERE user_id = ?",
        (sealed_key, SEAL_FORMAT, user_id),
    )


# --------------------------------------------------------------------------- public keys

PUBLIC_KEY_COLUMNS = "version, key_type, public_key, address, created_at"
SELECT_PUBLIC_KEY = (
    f"SELECT {PUBLIC_KEY_COLUMNS} FROM public_keys"  # noqa: S608 - constant
    " WHERE user_id = ? AND version = ?"
)
SELECT_PUBLIC_KEYS = (
    f"SELECT {PUBLIC_KEY_COLUMNS} FROM public_keys"  # noqa: S608 - constant
    " WHERE user_id = ? ORDER BY version"
)


def insert_public_key(
    user_id: str, version: int, key_type: str, public_key: bytes, address: str, created_at: float
) -> Statement:
    """One version of a public-key wallet's key, kept after the private key is destroyed."""
    return (
        "INSERT INTO public_keys (user_id, version, key_type, public_key, address, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, version, key_type, public_key, address, created_at),
    )


def delete_public_keys(user_id: str) -> Statement:
    return ("DELETE FROM public_keys WHERE user_id = ?", (user_id,))


def set_signature_count(user_id: str, address: str, count: int) -> Statement:
    return (
        "UPDATE wallets SET signature_count = ? WHERE user_id = ? AND address = ?",
        (count, user_id, address),
    )


def set_reserved_count(user_id: str, address: str, reserved: int) -> Statement:
    return (
        "UPDATE wallets SET reserved_count = ? WHERE user_id = ? AND address = ?",
        (reserved, user_id, address),
    )


CLEAR_RESERVATIONS: Statement = (
    "UPDATE wallets SET reserved_count = 0 WHERE reserved_count != 0",
    (),
)


def set_rotation_policy(
    user_id: str, max_age_days: int | None, max_signatures: int | None, auto_rotate: bool | None
) -> Statement:
    return (
        "UPDATE wallets SET max_age_days = ?, max_signatures = ?, auto_rotate = ?"
        " WHERE user_id = ?",
        (max_age_days, max_signatures, auto_rotate, user_id),
    )


# ----------------------------------------------------------------------------- rotations

SELECT_ROTATIONS = (
    "SELECT user_id, old_wallet_id, new_wallet_id, timestamp, reason, actor_uid, seq"
    " FROM rotations WHERE user_id = ? ORDER BY seq"
)


def insert_rotation(
    user_id: str, old_address: str, new_address: str, timestamp: float, reason: str, actor: int
) -> Statement:
    return (
        "INSERT INTO rotations (user_id, old_wallet_id, new_wallet_id, timestamp, reason,"
        " actor_uid) VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, old_address, new_address, timestamp, reason, actor),
    )


# ------------------------------------------------------------------------------- rituals

SELECT_RITUALS = "SELECT user_id, steps, attempts, locked_at FROM rituals"


def put_ritual(user_id: str, steps: bytes) -> Statement:
    return (
        "INSERT OR REPLACE INTO rituals (user_id, steps, attempts, locked_at)"
        " VALUES (?, ?, 0, NULL)",
        (user_id, steps),
    )


def delete_ritual(user_id: str) -> Statement:
    return ("DELETE FROM rituals WHERE user_id = ?", (user_id,))


def set_ritual_attempts(user_id: str, attempts: int, locked_at: float | None) -> Statement:
    return (
        "UPDATE rituals SET attempts = ?, locked_at = ? WHERE user_id = ?",
        (attempts, locked_at, user_id),
    )


def reset_ritual_attempts(user_id: str) -> Statement:
    return ("UPDATE rituals SET attempts = 0, locked_at = NULL WHERE user_id = ?", (user_id,))


# --------------------------------------------------------------------------------- audit

AUDIT_COLUMNS = COLUMNS
SELECT_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"  # noqa: S608 - constant


#: Whether any audit record names a user id (an admin's audit USER for a user without a wallet).
AUDIT_NAMES_USER = "SELECT 1 FROM audit WHERE user_id = ? LIMIT 1"


def select_audit_page(where: str) -> str:
    """Newest first, ``where`` built only from fixed conditions with ``?`` placeholders."""
    return f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608


#: A non-admin's page: records of the wallets the caller owns, from each one's creation on
#: (a user id deleted and created again by another uid starts a new history).
SELECT_OWNED_AUDIT_PAGE = f"""
    WITH starts AS (
        SELECT user_id AS wallet_user, MAX(seq) AS first_seq FROM audit
        WHERE event = 'wallet_created' AND user_id IN (SELECT value FROM json_each(?))
        GROUP BY user_id
    )
    SELECT {AUDIT_COLUMNS} FROM audit JOIN starts ON audit.user_id = starts.wallet_user
    WHERE seq >= first_seq AND timestamp >= ? AND seq < ?
    ORDER BY seq DESC LIMIT ?
"""  # noqa: S608 - constant


def insert_audit(entry: AuditEntry) -> Statement:
    return (
        f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            entry.seq,
            entry.timestamp,
            entry.event,
            entry.user_id,
            json.dumps(entry.addresses),
            entry.actor_uid,
            entry.actor_pid,
            entry.outcome,
            entry.canonical_detail(),
            entry.prev_hash,
            entry.hash,
        ),
    )


def put_audit_head(head: bytes, tag: bytes) -> Statement:
    return put_meta_pair(HEAD_KEY, head, HEAD_TAG_KEY, tag)


# ------------------------------------------------------------------------ signing policy

SELECT_SIGNING_POLICIES = (
    "SELECT user_id, layer, version, document, updated_at, actor_uid FROM signing_policies"
)
SELECT_RATE_WINDOWS = "SELECT user_id, layer, rule_id, record FROM rate_windows"
SELECT_SIGNING_PAUSES = "SELECT scope, since, actor_uid FROM signing_pauses"


def put_signing_policy(
    user_id: str, layer: str, version: int, document: str, updated_at: float, actor_uid: int
) -> Statement:
    return (
        "INSERT OR REPLACE INTO signing_policies"
        " (user_id, layer, version, document, updated_at, actor_uid) VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, layer, version, document, updated_at, actor_uid),
    )


def put_rate_window(user_id: str, layer: str, rule_id: str, record: bytes) -> Statement:
    return (
        "INSERT OR REPLACE INTO rate_windows (user_id, layer, rule_id, record) VALUES (?, ?, ?, ?)",
        (user_id, layer, rule_id, record),
    )


def delete_rate_window(user_id: str, layer: str, rule_id: str) -> Statement:
    return (
        "DELETE FROM rate_windows WHERE user_id = ? AND layer = ? AND rule_id = ?",
        (user_id, layer, rule_id),
    )


def delete_signing_state(user_id: str) -> list[Statement]:
    """A deleted wallet's policy and rate windows (a new wallet of that id starts clean)."""
    return [
        ("DELETE FROM signing_policies WHERE user_id = ?", (user_id,)),
        ("DELETE FROM rate_windows WHERE user_id = ?", (user_id,)),
    ]


def put_signing_pause(scope: str, since: float, actor_uid: int) -> Statement:
    return (
        "INSERT OR REPLACE INTO signing_pauses (scope, since, actor_uid) VALUES (?, ?, ?)",
        (scope, since, actor_uid),
    )


def delete_signing_pause(scope: str) -> Statement:
    return ("DELETE FROM signing_pauses WHERE scope = ?", (scope,))


# ---------------------------------------------------------------------------------- meta

SELECT_META = "SELECT value FROM meta WHERE key = ?"
SELECT_META_PAIR = "SELECT key, value FROM meta WHERE key IN (?, ?)"


def insert_meta(key: str, value: str | bytes) -> Statement:
    return ("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))


def update_meta(key: str, value: str | bytes) -> Statement:
    return ("UPDATE meta SET value = ? WHERE key = ?", (value, key))


def put_meta_pair(key1: str, value1: bytes, key2: str, value2: bytes) -> Statement:
    return (
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?)",
        (key1, value1, key2, value2),
    )


# -- audit cross-check (walletd.model.audit_state): what the chain must explain
SELECT_WALLET_ADDRESSES = "SELECT user_id, address FROM wallets"
COUNT_RITUALS = "SELECT count(*) FROM rituals"
COUNT_AUDIT = "SELECT count(*) FROM audit"


# ------------------------------------------------------------------------------ row tags
# (walletd.model.row_tags says what they bind and why; walletd.storage.row_tagging installs
# them.) The tag is written by TEMP triggers, which live in walletd's own connection and never
# in the database file: every INSERT or UPDATE of a tagged row, by any statement above or any
# added later, re-tags the row in the same transaction, from the values as SQLite stored them.
# An application function is usable in a TEMP trigger even with trusted_schema=OFF, while a
# trigger planted in the file cannot call it (and check_schema_objects refuses such triggers).

#: The SQL function computing a row's tag: walletd_row_tag(table, *values).
ROW_TAG_FUNCTION = "walletd_row_tag"
#: The SQL function the schema-5 migration reads its prepared meta values from (or NULL).
MIGRATION_VALUE_FUNCTION = "walletd_migration_value"


def row_tag_triggers(table: TaggedTable) -> list[str]:
    """The TEMP triggers that keep ``table``'s tags current (names and columns are checked
    identifiers, see walletd.model.row_tags.tagged_table)."""
    new = ", ".join(f"NEW.{c}" for c in table.columns)
    tag = f"{ROW_TAG_FUNCTION}('{table.name}', {new})"
    # By rowid: a table may hold several rows per user id (a layer each, a window per rule).
    where = "rowid = NEW.rowid"
    body = f"BEGIN UPDATE {table.name} SET row_tag = {tag} WHERE {where}; END"  # noqa: S608
    cols = ", ".join(table.columns)
    return [
        f"CREATE TEMP TRIGGER IF NOT EXISTS {table.name}_tag_insert AFTER INSERT"
        f" ON main.{table.name} {body}",
        f"CREATE TEMP TRIGGER IF NOT EXISTS {table.name}_tag_update AFTER UPDATE OF {cols}"
        f" ON main.{table.name} {body}",
    ]


def select_tagged(table: TaggedTable) -> str:
    """Every row's tagged columns and its tag, for checking."""
    return f"SELECT {', '.join(table.columns)}, row_tag FROM {table.name}"  # noqa: S608


#: Triggers and views in the database file: walletd creates none, so any is planted.
SELECT_SCHEMA_EXTRAS = (
    "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger', 'view') ORDER BY name"
)
