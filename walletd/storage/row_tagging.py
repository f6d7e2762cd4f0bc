"""Row tags on a SQLite connection: computing them as rows are written, checking them on load.

:mod:`walletd.model.row_tags` defines what a tag binds. Here a :class:`RowTagger`, holding the
unsealed row-tag sub-key, gives a connection the SQL function that computes a tag and the TEMP
triggers (:func:`walletd.storage.sql.row_tag_triggers`) that call it after every insert or
update of a tagged row, so no write can leave a stale tag and no statement in
:mod:`walletd.storage.sql` has to remember to. The triggers are TEMP: they exist only in the
connection walletd opened, never in the file, so someone editing the file offline has neither
the triggers nor the key. :func:`tag_problems` is the check that startup and ``walletd check``
run: every row's tag, and no trigger or view planted in the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from walletd.model.row_tags import TABLES, row_tag, tampered
from walletd.storage import sql

if TYPE_CHECKING:
    from walletd.storage.store import Store

__all__ = ["RowTagger", "tag_problems"]

# How a tampered row is named in a problem: by what it is and by whom it belongs to.
_NOUNS = {
    "wallets": "wallet",
    "rituals": "ritual",
    "signing_policies": "signing policy",
    "rate_windows": "signing rate window",
}


class RowTagger:
    """The row-tag sub-key, and the values the schema-5 migration inserts into ``meta``.

    ``migration_values`` are prepared by the loader before anything is written (the new
    sub-key sealed under the master key; a genesis audit head for a database without one), so
    the migrated copy checked in memory and the file migrated afterwards hold the same bytes.
    """

    __slots__ = ("_key", "_migration_values")

    def __init__(self, key: bytes, migration_values: Mapping[str, bytes] | None = None) -> None:
        self._key = key
        self._migration_values = dict(migration_values or {})

    def __repr__(self) -> str:
        return "RowTagger(key=[redacted])"

    @property
    def key(self) -> bytes:
        return self._key

    def install_functions(self, conn: sqlite3.Connection) -> None:
        """Before migrating: the functions the migration (and later the triggers) call."""
        key = self._key
        values = self._migration_values

        def tag(table: str, *columns: Any) -> bytes:
            return row_tag(key, table, columns)

        def migration_value(name: str) -> bytes | None:
            return values.get(name)

        conn.create_function(sql.ROW_TAG_FUNCTION, -1, tag, deterministic=True)
        conn.create_function(sql.MIGRATION_VALUE_FUNCTION, 1, migration_value, deterministic=True)

    def install_triggers(self, conn: sqlite3.Connection) -> None:
        """After migrating (the ``row_tag`` columns exist): keep every tag current."""
        for table in TABLES.values():
            for statement in sql.row_tag_triggers(table):
                conn.execute(statement)


def tag_problems(store: Store, key: bytes) -> list[str]:
    """Every row whose tag does not match, by user id, and any trigger or view in the file."""
    problems = [
        f"the database holds a {kind} {name!r} that walletd never creates (planted to change "
        "rows while walletd writes them)"
        for kind, name in store.query(sql.SELECT_SCHEMA_EXTRAS)
    ]
    for table in TABLES.values():
        noun = _NOUNS.get(table.name, f"{table.name} row")
        for user_id in tampered(key, table, store.rows(sql.select_tagged(table))):
            whose = (
                f"signing pause {user_id!r}"
                if table.name == "signing_pauses"
                else f"{noun} of user {user_id!r}"
            )
            problems.append(
                f"{whose}: its row tag does not match its columns "
                f"({', '.join(table.columns[1:])}): changed outside walletd"
            )
    return problems
