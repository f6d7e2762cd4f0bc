"""When a recovery ritual is locked, and for how long (pure arithmetic, no I/O).

A ritual's ``attempts`` counts failed attempts since the last success or admin reset; it is not
wrapped to zero when a lockout expires. Every ``max_attempts``-th failure starts a lockout, and
the n-th lockout in a row lasts ``lockout_seconds * 2**(n-1)``, capped at
``lockout_max_seconds`` (the doubling Vault's user lockout and most login throttles use).

Why count on rather than start again: any uid may send attempts for any ritual (recovery is
for the uid that lost its key), so a lockout is a denial of service anyone can cause. A finite
lockout bounds that denial for the owner, while the doubling keeps a guesser's rate falling:
with the defaults (5 attempts, 900 s) a guesser gets 5 tries in the first 15 minutes, 10 in
45 minutes, and fewer than 5 more per day once the cap of a day is reached.

``lockout_seconds = None`` keeps the old rule: locked until an admin resets it. The stored
columns are the existing ``attempts`` and ``locked_at``, so no schema change is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LockoutRule"]

#: Beyond this exponent the cap has long been reached; it keeps 2**n a small integer.
_MAX_DOUBLINGS = 40


@dataclass(frozen=True, slots=True)
class LockoutRule:
    """The lockout settings of one configuration."""

    max_attempts: int
    lockout_seconds: float | None
    lockout_max_seconds: float

    def lockouts(self, attempts: int) -> int:
        """How many lockouts ``attempts`` failures in a row have started."""
        return attempts // self.max_attempts

    def duration(self, attempts: int) -> float | None:
        """How long the lockout begun at the ``attempts``-th failure lasts (None: for good)."""
        if self.lockout_seconds is None:
            return None
        doublings = min(max(self.lockouts(attempts) - 1, 0), _MAX_DOUBLINGS)
        return min(self.lockout_seconds * (1 << doublings), self.lockout_max_seconds)

    def starts_lockout(self, attempts: int) -> bool:
        """Whether the ``attempts``-th failure in a row locks the ritual."""
        return attempts > 0 and attempts % self.max_attempts == 0

    def locked(self, attempts: int, locked_at: float | None, now: float) -> bool:
        """Whether a ritual at ``attempts`` failures, locked at ``locked_at``, is locked."""
        if attempts < self.max_attempts:
            return False
        if attempts % self.max_attempts:
            # Past an expired lockout and counting towards the next one. A database from before
            # counting on (or a lowered max_attempts) may hold such a count with locked_at set.
            return False
        duration = self.duration(attempts)
        return duration is None or locked_at is None or now < locked_at + duration

    def remaining(self, attempts: int, locked_at: float | None, now: float) -> int:
        """Attempts left before the next lockout (0 while locked)."""
        if self.locked(attempts, locked_at, now):
            return 0
        return self.max_attempts - attempts % self.max_attempts

    def next_attempt(self, attempts: int, now: float) -> tuple[int, float | None]:
        """The stored ``(attempts, locked_at)`` once one more attempt is counted."""
        counted = attempts + 1
        return counted, (now if self.starts_lockout(counted) else None)
