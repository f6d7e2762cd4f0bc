"""The audit log: one record per state change, chained by keyed SHA-256.

Each record stores the hash of the record before it, and its own hash (HMAC-SHA256 under a key
sealed under the master key) over its fields and that link, so editing, inserting or deleting a
row breaks the chain at that row, and someone who can write the database but does not hold the
master key cannot re-hash the chain to hide an edit. The head (last seq and hash) is kept in the
``meta`` table in the same transaction, so cutting records off the end is detected too; the head
carries its own tag under the same key, because the last surviving record's hash is in plain
sight and would otherwise let whoever cuts the end write a matching head. (Putting back a head
and tag copied from an older database is a rollback that only an outside anchor can catch.)

Records are written in the same transaction as the change they describe. No secret ever enters
a record: the fields are names, addresses, uids, outcomes and small non-secret details.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENESIS_HASH", "AuditChain", "AuditEntry", "verify_chain", "verify_rows"]

GENESIS_HASH = "0" * 64

#: The order of an audit row's columns, as walletd.storage.sql reads and writes them.
COLUMNS = (
    "seq, timestamp, event, user_id, addresses, actor_uid, actor_pid, outcome, detail, "
    "prev_hash, hash"
)


@dataclass(slots=True)
class AuditEntry:
    seq: int
    timestamp: float
    event: str
    user_id: str | None
    addresses: list[str]
    actor_uid: int
    actor_pid: int
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS_HASH
    hash: str = ""

    def canonical_detail(self) -> str:
        return _canonical(self.detail)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(
    key: bytes,
    seq: int,
    timestamp: float,
    event: str,
    user_id: str | None,
    addresses_json: str,
    actor_uid: int,
    actor_pid: int,
    outcome: str,
    detail_json: str,
    prev_hash: str,
) -> str:
    body = _canonical(
        [
            seq,
            repr(timestamp),
            event,
            user_id,
            addresses_json,
            actor_uid,
            actor_pid,
            outcome,
            detail_json,
            prev_hash,
        ]
    )
    return hmac.new(key, body.encode("utf-8", "surrogatepass"), "sha256").hexdigest()


HEAD_KEY = "audit_head"
HEAD_TAG_KEY = "audit_head_tag"
_HEAD_TAG_DOMAIN = b"walletd:audit-head:v1\x00"


def head_value(seq: int, hash_: str) -> bytes:
    return f"{seq}:{hash_}".encode()


def head_tag(key: bytes, head: bytes) -> bytes:
    """The head's own tag, so that a head cannot be rewritten to match a shortened chain."""
    return hmac.new(key, _HEAD_TAG_DOMAIN + head, "sha256").hexdigest().encode()


class AuditChain:
    """The head of the chain.

    Entries are prepared (chained onto the pending head) before a commit; after it, ``accept``
    makes them the head, or ``discard`` forgets them when the commit failed. Callers hold the
    daemon's writer lock, so at most one transaction's entries are pending.
    """

    def __init__(self, key: bytes, last_seq: int = 0, last_hash: str = GENESIS_HASH) -> None:
        self._key = key
        self.last_seq = last_seq
        self.last_hash = last_hash
        self._pending_seq = last_seq
        self._pending_hash = last_hash

    def prepare(
        self,
        *,
        timestamp: float,
        event: str,
        user_id: str | None,
        addresses: list[str],
        actor_uid: int,
        actor_pid: int,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        # The column is REAL: an int from an injected clock would be read back as a float and
        # hash differently (repr(5) != repr(5.0)), breaking the record it belongs to.
        timestamp = float(timestamp)
        entry = AuditEntry(
            seq=self._pending_seq + 1,
            timestamp=timestamp,
            event=event,
            user_id=user_id,
            addresses=addresses,
            actor_uid=actor_uid,
            actor_pid=actor_pid,
            outcome=outcome,
            detail=detail or {},
            prev_hash=self._pending_hash,
        )
        entry.hash = record_hash(
            self._key,
            entry.seq,
            timestamp,
            event,
            user_id,
            json.dumps(addresses),
            actor_uid,
            actor_pid,
            outcome,
            _canonical(entry.detail),
            entry.prev_hash,
        )
        self._pending_seq, self._pending_hash = entry.seq, entry.hash
        return entry

    def pending_head(self) -> tuple[bytes, bytes]:
        """The pending head and its tag, written in every transaction that appends records."""
        head = head_value(self._pending_seq, self._pending_hash)
        return head, head_tag(self._key, head)

    def accept(self) -> None:
        """The pending entries' transaction committed: they are now the head."""
        self.last_seq, self.last_hash = self._pending_seq, self._pending_hash

    def discard(self) -> None:
        """The transaction failed: forget the pending entries."""
        self._pending_seq, self._pending_hash = self.last_seq, self.last_hash


def verify_rows(
    key: bytes, rows: list[tuple[Any, ...]], head: bytes | None
) -> tuple[int | None, str | None]:
    """Walk rows (in COLUMNS order, by seq); return the first broken seq and why, or Nones.

    This checks the head against the rows but not the head's tag: :func:`verify_chain` does both.
    """
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for row in rows:
        seq, ts, event, user_id, addresses, uid, pid, outcome, detail, row_prev, row_hash = row
        if seq != expected_seq:
            # Name the record that is gone: that is where the chain breaks.
            return expected_seq, f"record {expected_seq} is missing (found {seq} next)"
        if row_prev != prev_hash:
            return seq, "its link to the previous record does not match"
        if (
            record_hash(
                key, seq, ts, event, user_id, addresses, uid, pid, outcome, detail, row_prev
            )
            != row_hash
        ):
            return seq, "its contents do not match its hash (the record was edited)"
        prev_hash = row_hash
        expected_seq += 1
    last_seq = expected_seq - 1
    expected_head = head_value(last_seq, prev_hash)
    if (head or head_value(0, GENESIS_HASH)) == expected_head:
        return None, None
    head_seq = _head_seq(head)
    if head_seq is not None and head_seq > last_seq:
        return last_seq + 1, f"records {last_seq + 1} to {head_seq} were removed from the end"
    if head_seq is not None and head_seq < last_seq:
        return head_seq + 1, f"records after {head_seq} were added outside walletd"
    return last_seq + 1, "the head does not match the last record"


def verify_chain(
    key: bytes, rows: list[tuple[Any, ...]], head: bytes | None, tag: bytes | None
) -> tuple[int | None, str | None]:
    """:func:`verify_rows`, and the head's tag: a rewritten head is caught too."""
    broken, problem = verify_rows(key, rows, head)
    if broken is not None or (head is None and tag is None):
        return broken, problem
    if head is None or tag is None or not hmac.compare_digest(head_tag(key, head), tag):
        # The rows agree with the head, but the head was not written by walletd: the end of
        # the chain was cut and the head rewritten to match what is left.
        return len(rows) + 1, "the head was rewritten (records were removed from the end)"
    return None, None


def _head_seq(head: bytes | None) -> int | None:
    if head is None:
        return 0
    try:
        return int(head.split(b":", 1)[0])
    except ValueError:
        return None
