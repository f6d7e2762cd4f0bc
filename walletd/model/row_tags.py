"""Row tags: the security-relevant columns of a row, authenticated under a sealed sub-key.

Whoever can write the database but lacks the master key can still change plain columns: hand a
wallet to another uid (``owner_uid``), loosen its rotation policy, reset a ritual's attempts or
lift its lock, or flip a key's type, version or seal format. Each such row therefore carries a
``row_tag``: HMAC-SHA256, under a random sub-key sealed under the master key (so ``rekey``
re-seals the sub-key and every tag stays valid), over the table's name and the row's tagged
columns in a fixed order. A row whose tag does not match what it holds was changed outside
walletd; startup refuses it and ``walletd check`` names it by its user id.

What a tag does not prove is freshness: a whole row put back from an older copy of the
database, tag included, is a row walletd once wrote. SECURITY.md says which of those rollbacks
the audit chain's cross-check catches and which need the outside anchor (``audit_head``).

A table joins by one :func:`tagged_table` call naming its key column (a user id, so a
tampered row is reported by whom it belongs to) and the columns to bind; the storage layer
builds its triggers and checks from :data:`TABLES`. Pure: no sqlite3 here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from walletd.model.signer import hmac_sha256_signer

__all__ = ["TABLES", "TaggedTable", "row_tag", "tagged_table", "tampered"]

_DOMAIN = b"walletd:row-tag:v1\x00"
_encode = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class TaggedTable:
    """A table whose rows carry a tag; ``columns`` starts with ``key`` (the user id)."""

    name: str
    key: str
    columns: tuple[str, ...]


#: Every tagged table, by name; the storage layer iterates this to install and check tags.
TABLES: dict[str, TaggedTable] = {}


def tagged_table(name: str, key: str, columns: Sequence[str]) -> TaggedTable:
    """Register ``name`` as tagged over ``key`` and ``columns`` (the one call a table needs).

    Column names are checked to be plain identifiers, since the storage layer puts them into
    SQL text (its triggers and its checking query).
    """
    cols = (key, *(c for c in columns if c != key))
    for ident in (name, *cols):
        if not ident.isidentifier() or not ident.isascii():
            raise ValueError(f"not a plain SQL identifier: {ident!r}")
    table = TaggedTable(name, key, cols)
    TABLES[name] = table
    return table


# The wallets table: everything but the sealed key, whose AES-GCM tag already binds it to the
# row's user id, address, key type and version (walletd.storage.sealing). The counters are in
# too: resetting signature_count would postpone an auto-rotation by max_signatures.
WALLETS = tagged_table(
    "wallets",
    "user_id",
    (
        "address",
        "owner_uid",
        "created_at",
        "key_created_at",
        "signature_count",
        "max_age_days",
        "max_signatures",
        "auto_rotate",
        "reserved_count",
        "key_type",
        "key_version",
        "seal_format",
    ),
)
# The rituals table: the steps (salted scrypt hashes: replacing them with hashes of known
# answers would let anyone recover the wallet), the attempt count and the lock.
RITUALS = tagged_table("rituals", "user_id", ("steps", "attempts", "locked_at"))
# The signing policy (issue 15): each layer's document and version, each rule's durable rate
# window (resetting one would reopen a used-up limit) and the pauses of the kill switch (their
# key is the scope: "all", "uid:<n>" or "wallet:<user_id>"). Deleting a whole row is not
# caught by a tag (SECURITY.md says what is); changing one is.
SIGNING_POLICIES = tagged_table(
    "signing_policies", "user_id", ("layer", "version", "document", "updated_at", "actor_uid")
)
RATE_WINDOWS = tagged_table("rate_windows", "user_id", ("layer", "rule_id", "record"))
SIGNING_PAUSES = tagged_table("signing_pauses", "scope", ("since", "actor_uid"))


def row_tag(key: bytes, table: str, values: Sequence[Any]) -> bytes:
    """The tag of one row: ``values`` in the table's column order, as SQLite stores them.

    MessagePack of ``[table, *values]`` is unambiguous for the scalars SQLite holds (None,
    int, float, str, bytes): each value carries its type and length, so no two rows of any
    two tables share an encoding.
    """
    return hmac.digest(key, _tagged_bytes(table, values), "sha256")


def _tagged_bytes(table: str, values: Sequence[Any]) -> bytes:
    return _DOMAIN + _encode([table, *values])


def tampered(key: bytes, table: TaggedTable, rows: Iterable[Sequence[Any]]) -> list[str]:
    """The key (user id) of every row whose last value, its tag, does not match the rest.

    Rows hold ``table.columns`` then ``row_tag``. A missing tag (NULL) is a mismatch: walletd
    writes one with every row. Startup checks every row of the tagged tables, so this computes
    ``row_tag`` with the key's HMAC pad states built once (walletd.model.signer; a test holds
    it to ``row_tag``): at 100,000 wallets that is ~0.3 s less before the socket is ready.
    """
    sign = hmac_sha256_signer(key)
    name, bad = table.name, []
    for row in rows:
        *values, tag = row
        want = sign(_tagged_bytes(name, values))
        if not isinstance(tag, bytes) or not hmac.compare_digest(want, tag):
            bad.append(str(values[0]))
    return bad
