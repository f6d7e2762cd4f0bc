"""The audit chain checked against the state it describes (issue 12, item 4).

A chain that verifies proves only that walletd wrote these records in this order. Whoever
can write the database could still delete every record and the head, or cut the tail and put
back an older head and tag: a shorter chain that is internally sound. Two checks close most
of that without an outside anchor:

* **The head exists.** walletd writes a head (``0:<genesis>``, tagged) when it creates a
  database, and with every record after; a missing head where there are records, wallets or
  rituals is tampering, not an empty log.
* **The chain explains the state.** Replaying the chain's wallet events gives each user id the
  address it must have now: ``wallet_created`` sets it, an event naming ``[old, new]`` with
  ``old`` the current address (a rotation, a recovery) moves it, ``wallet_deleted`` ends it.
  Every wallet in the wallets table must have exactly that address, and every wallet the chain
  leaves alive must be in the table. A cut tail that hides a rotation, a creation or a
  deletion shows up here as a wallet whose state the chain does not explain.

Pure functions: the callers read the rows and the wallets table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["chain_addresses", "cross_check", "missing_head"]

_CREATED = "wallet_created"
_DELETED = "wallet_deleted"


def chain_addresses(rows: Iterable[tuple[Any, ...]]) -> dict[str, str]:
    """user_id -> the address the chain says its wallet has now (audit rows, by seq)."""
    current: dict[str, str] = {}
    for row in rows:
        event, user_id, addresses_json = row[2], row[3], row[4]
        if user_id is None:
            continue
        addresses = json.loads(addresses_json)
        if event == _CREATED and addresses:
            current[user_id] = addresses[0]
        elif event == _DELETED:
            current.pop(user_id, None)
        elif len(addresses) == 2 and current.get(user_id) == addresses[0]:
            current[user_id] = addresses[1]  # a key change: rotation or recovery
    return current


def cross_check(rows: Iterable[tuple[Any, ...]], wallets: Mapping[str, str]) -> list[str]:
    """Problems, one per user id whose wallet (user_id -> address) the chain does not explain."""
    expected = chain_addresses(rows)
    problems = []
    for user_id in sorted(set(expected) | set(wallets)):
        want, have = expected.get(user_id), wallets.get(user_id)
        if want == have:
            continue
        if want is None:
            why = "the audit chain has no record of its creation (records were removed)"
        elif have is None:
            why = "the audit chain says it exists but the wallets table has no such wallet"
        else:
            why = (
                "its address is not the last one the audit chain gives it (records were "
                "removed, or the row was changed outside walletd)"
            )
        problems.append(f"wallet of user {user_id!r}: {why}")
    return problems


def missing_head(head: bytes | None, records: int, wallets: int, rituals: int) -> str | None:
    """Why a missing head is tampering, or None (a head is there, or nothing exists yet)."""
    if head is not None or (records == 0 and wallets == 0 and rituals == 0):
        return None
    return (
        f"the audit head is missing while the state holds {records} audit records, "
        f"{wallets} wallets and {rituals} rituals (the log and its head were removed)"
    )
