"""Who gets a connection slot: a per-uid cap, a reserve for admins, and refusals logged at a
bounded rate.

One uid holding every slot must not lock out root: a non-admin uid may hold at most
``max_connections_per_uid`` connections, and non-admins together at most ``max_connections``
minus the admin reserve (at least one slot whatever the settings, so with
``max_connections = 1`` that slot is an admin's). Admins are bounded by ``max_connections``
alone.

A refused peer typically retries at once; logging each refusal let one uid write ~20,000
lines a second. :class:`RefusalLog` writes at most one line per uid per ``REFUSAL_LOG_PERIOD``
seconds, saying how many refusals it stands for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("walletd")

REFUSAL_LOG_PERIOD = 10.0
#: Remembered uids before old entries are dropped (each entry is a few dozen bytes).
_MAX_REMEMBERED = 4096


def admin_reserve(max_connections: int, wanted: int) -> int:
    """Slots only admins may take: ``wanted``, at least 1, at most ``max_connections``."""
    return max(1, min(wanted, max_connections))


class Slots:
    """Connections held, in total and per uid, and the admission rule."""

    def __init__(self) -> None:
        self.total = 0
        self.by_uid: Counter[int] = Counter()

    def refusal(
        self, uid: int, is_admin: bool, *, max_connections: int, per_uid: int, reserve: int
    ) -> str | None:
        """Why ``uid`` may not have one more connection now, or None if it may."""
        if self.total >= max_connections:
            return "max_connections"
        if is_admin:
            return None
        if self.total >= max_connections - admin_reserve(max_connections, reserve):
            return "admin_reserve"
        if self.by_uid[uid] >= per_uid:
            return "max_connections_per_uid"
        return None

    def take(self, uid: int) -> None:
        self.total += 1
        self.by_uid[uid] += 1

    def give_back(self, uid: int) -> None:
        self.total -= 1
        self.by_uid[uid] -= 1
        if self.by_uid[uid] <= 0:
            del self.by_uid[uid]


@dataclass
class _Entry:
    logged_at: float
    suppressed: int = 0


class RefusalLog:
    """``connection_refused`` at most once per uid per period, with a suppressed count."""

    def __init__(self, clock: Callable[[], float], period: float = REFUSAL_LOG_PERIOD) -> None:
        self.clock = clock
        self.period = period
        self._entries: dict[int, _Entry] = {}

    def refused(self, uid: int, pid: int, reason: str) -> bool:
        """Record one refusal; True when it was logged (not suppressed)."""
        now = self.clock()
        entry = self._entries.get(uid)
        if entry is not None and now - entry.logged_at < self.period:
            entry.suppressed += 1
            return False
        suppressed = 0 if entry is None else entry.suppressed
        if len(self._entries) >= _MAX_REMEMBERED:
            self._forget(now)
        self._entries[uid] = _Entry(now)
        log.warning(
            "connection_refused", peer_uid=uid, peer_pid=pid, reason=reason, suppressed=suppressed
        )
        return True

    def _forget(self, now: float) -> None:
        # Entries past their period only hold a suppressed count: dropping them loses that
        # count, never a line (the next refusal is logged anyway).
        for uid in [u for u, e in self._entries.items() if now - e.logged_at >= self.period]:
            del self._entries[uid]
        if len(self._entries) >= _MAX_REMEMBERED:
            self._entries.clear()
