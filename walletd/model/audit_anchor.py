"""The outside anchor of the audit chain: a tagged checkpoint an operator keeps elsewhere.

Everything walletd can check on its own (walletd.model.audit_chain, audit_state, row_tags)
holds for a whole database put back from an older copy: its chain, head and tags are ones
walletd wrote. What catches that is a record of the head kept where whoever can write the
state directory cannot reach: ``walletctl audit head`` prints a checkpoint (the head's
sequence number and hash, tagged under the audit sub-key), and ``walletd check --expect-head
FILE`` reports the state as rolled back or replaced unless its chain still contains that
checkpoint: a record at that sequence number with that hash (the chain behind it being
intact is checked separately, and a later state only extends it).

The tag proves the checkpoint came from this state's walletd, so a damaged or foreign file is
reported as that, not as a rollback. Pure: the callers read the rows and the file.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from walletd.model.audit_chain import GENESIS_HASH

__all__ = ["FORMAT", "Checkpoint", "compare", "make_checkpoint", "parse_checkpoint"]

FORMAT = "walletd-audit-head/1"
_DOMAIN = b"walletd:audit-anchor:v1\x00"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    tag: str
    timestamp: float

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "hash": self.hash,
            "tag": self.tag,
            "timestamp": self.timestamp,
        }


def _tag(key: bytes, seq: int, hash_: str) -> str:
    return hmac.new(key, _DOMAIN + f"{seq}:{hash_}".encode(), "sha256").hexdigest()


def make_checkpoint(key: bytes, seq: int, hash_: str, timestamp: float) -> Checkpoint:
    """The checkpoint of a head (seq 0 and the genesis hash for an empty chain)."""
    return Checkpoint(seq, hash_, _tag(key, seq, hash_), timestamp)


def _hex64(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ValueError(f"{name!r} must be 64 lowercase hex digits")
    return value


def parse_checkpoint(text: str) -> Checkpoint:
    """A checkpoint from the JSON ``walletctl audit head`` printed; ValueError saying why not."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(
            f"'format' must be {FORMAT!r} (is this the output of walletctl audit head?)"
        )
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise ValueError("'seq' must be a non-negative integer")
    timestamp = data.get("timestamp", 0.0)
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        raise ValueError("'timestamp' must be a number")
    return Checkpoint(
        seq, _hex64(data.get("hash"), "hash"), _hex64(data.get("tag"), "tag"), float(timestamp)
    )


def compare(key: bytes, checkpoint: Checkpoint, hashes: Sequence[str]) -> str | None:
    """Why the chain (its records' hashes, by seq from 1) does not contain ``checkpoint``."""
    if not hmac.compare_digest(_tag(key, checkpoint.seq, checkpoint.hash), checkpoint.tag):
        return (
            "the expected head's tag does not verify: the file was altered, or it is from "
            "another walletd state"
        )
    if checkpoint.seq > len(hashes):
        return (
            f"the audit chain has {len(hashes)} records, fewer than the expected head's "
            f"{checkpoint.seq}: the state was rolled back to an older copy, or its end was cut"
        )
    have = GENESIS_HASH if checkpoint.seq == 0 else hashes[checkpoint.seq - 1]
    if not hmac.compare_digest(have, checkpoint.hash):
        return (
            f"the audit chain's record {checkpoint.seq} is not the expected head: the state "
            "was replaced by another copy, or rolled back and written again"
        )
    return None
