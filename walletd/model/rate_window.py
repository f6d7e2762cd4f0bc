"""A rolling-window use counter ("at most ``count`` uses per ``window_s`` seconds") that is
cheap per check and durable across crashes by reservation, like the rotation counters.

Granularity. Time is cut into buckets of ``window_s / BUCKETS`` seconds (60 s for an hour-long
window). A use is recorded in the bucket of the moment it happens, and a check at time ``t``
counts every use in the current bucket and the ``BUCKETS`` before it: a span of between
``window_s`` and ``window_s + width`` seconds that always covers ``(t - window_s, t]``. So a use
stops counting between ``window_s`` and ``window_s + width`` seconds after it happened (the
window is conservative by at most one bucket), and the guarantee is exact: in ANY interval of
``window_s`` seconds at most ``count`` uses are admitted. (Proof: take the last use admitted in
the interval, at ``t``; every other use in the interval lies in ``(t - window_s, t]``, so it
was counted when that last use was admitted, and admission needs a count below ``count``.)

A clock that goes backwards (a wall-clock step) is treated as standing still: uses are put in
the newest bucket seen, which only makes them count for longer.

Durability. Counts live in memory; a crash must not reset them, and a write per signature
would cost the sign path a disk sync. So, as ``walletd.rotation`` does for signature counts,
the daemon writes a *reservation* before the first use beyond what is durable:
``needs_reservation(now)`` says one is due, ``reserve(now)`` returns the record to commit (the
exact counts so far plus a block of up to ``count // 4`` uses, valid up to a horizon of at
least 1 s or a tenth of the window), and only after that commit may ``use`` go on. A load
(``from_record``) takes a reservation still in the record as fully used, placed in the
horizon's last bucket: every use it stood for happened no later than that, so placing it there
can only make it count for longer. A clean stop writes ``exact_record()`` (no reservation).
At most one reservation write per rule per horizon or per ``count // 4`` uses, whichever
comes first; a crash makes the window stricter by at most the block and the horizon.

Windows that need not survive a restart (an ephemeral daemon, tests) pass ``durable=False``
and never ask for reservations.
"""

from __future__ import annotations

import math
import struct

BUCKETS = 60
MAX_COUNT = 10**9  # fits the record's uint32 fields
# The ring holds the current bucket, the BUCKETS before it, and up to BUCKETS - 1 after it:
# a reservation recovered after a crash is dated at its horizon's end, which may lie ahead
# of the clock. Such a future-dated use counts from now on (it may already have happened)
# and never aliases a live slot: 2 * BUCKETS + 1 slots cover [head - BUCKETS, head + BUCKETS].
_SLOTS = 2 * BUCKETS + 1

_HEADER = struct.Struct(">BdqqIB")  # version, window_s, head, reservation end, block, n
_ENTRY = struct.Struct(">bI")  # buckets back from head (negative: ahead of it), uses
_VERSION = 1


class RecordError(ValueError):
    """A stored window record that cannot be read (corrupt or from an unknown version)."""


class ReservationNeeded(RuntimeError):
    """``use`` was called for a use that no durable reservation covers, or past ``count``.

    A programming error in the caller: it must check ``remaining`` and ``needs_reservation``
    (and commit ``reserve``'s record) with no await between that check and ``use``.
    """


class RateWindow:
    """At most ``count`` uses in any ``window_s`` seconds; see the module docstring."""

    __slots__ = (
        "_head",
        "_horizon",
        "_inv_width",
        "_res_end",
        "_res_left",
        "_slots",
        "_total",
        "count",
        "durable",
        "window_s",
    )

    def __init__(self, count: int, window_s: float, *, durable: bool = True) -> None:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1-{MAX_COUNT}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError("window_s must be a positive number")
        self.count = count
        self.window_s = float(window_s)
        self.durable = durable
        self._inv_width = BUCKETS / self.window_s
        # Reservation horizon in buckets: at least one second and a tenth of the window, so a
        # busy rule reserves at most about once a second (or once per count // 4 uses).
        self._horizon = min(BUCKETS, max(1, BUCKETS // 10, math.ceil(self._inv_width)))
        self._slots = [0] * _SLOTS
        self._head = 0  # index of the newest bucket seen
        self._total = 0  # sum of _slots: the uses in the current window
        self._res_end = -1  # last bucket the durable reservation covers
        self._res_left = 0  # uses the durable reservation still covers

    def __repr__(self) -> str:
        return f"RateWindow(count={self.count}, window_s={self.window_s:g})"

    # ----------------------------------------------------------------------- the counter

    def _bucket(self, now: float) -> int:
        """Advance to the bucket of ``now`` (never backwards) and return its index."""
        b = int(now * self._inv_width)
        head = self._head
        if b <= head:
            return head
        slots = self._slots
        if b - head >= _SLOTS:  # everything, future-dated included, has left the window
            for i in range(_SLOTS):
                slots[i] = 0
            self._total = 0
        else:
            # Buckets head - BUCKETS .. b - BUCKETS - 1 leave the window.
            total = self._total
            for i in range(head - BUCKETS, b - BUCKETS):
                s = i % _SLOTS
                total -= slots[s]
                slots[s] = 0
            self._total = total
        self._head = b
        return b

    def remaining(self, now: float) -> int:
        """Uses still admissible at ``now`` (0 when the window is full). Consumes nothing."""
        if int(now * self._inv_width) > self._head:  # the sign path: call only to advance
            self._bucket(now)
        left = self.count - self._total
        return left if left > 0 else 0  # below 0 after a lowered limit

    def used(self, now: float) -> int:
        """Uses counted in the window at ``now``."""
        self._bucket(now)
        return self._total

    def can_use(self, now: float, uses: int = 1) -> bool:
        """Whether ``use(now, uses)`` would succeed (room in the window, and reserved)."""
        b = self._bucket(now)
        if self._total + uses > self.count:
            return False
        return not self.durable or (b <= self._res_end and self._res_left >= uses)

    def use(self, now: float, uses: int = 1) -> None:
        """Record ``uses`` uses at ``now``; raises ``ReservationNeeded`` if not allowed."""
        if not self.take(now, uses):
            raise ReservationNeeded("rate window is full")

    def take(self, now: float, uses: int = 1) -> bool:
        """``uses`` uses at ``now`` if the window has room for them: ``remaining(now) >=
        uses`` and then ``use`` in one call (the compiled sign path's check-and-charge).
        False, changing nothing, when it is full; ``ReservationNeeded``, changing nothing,
        when the uses are not durably reserved."""
        b = int(now * self._inv_width)  # the sign path: call _bucket only to advance
        if b != self._head:
            b = self._bucket(now)
        total = self._total + uses
        if total > self.count:
            return False
        if self.durable:
            if b > self._res_end or self._res_left < uses:
                raise ReservationNeeded("use not covered by a durable reservation")
            self._res_left -= uses
        self._slots[b % _SLOTS] += uses
        self._total = total
        return True

    # ----------------------------------------------------------------- durable records

    def needs_reservation(self, now: float, uses: int = 1) -> bool:
        """True when ``uses`` more uses at ``now`` need a reservation committed first."""
        if not self.durable:
            return False
        return self._bucket(now) > self._res_end or self._res_left < uses

    def reserve(self, now: float, uses: int = 1) -> bytes:
        """Reserve the next block of uses and return the record to commit before using it.

        The block is ``count // 4`` uses (at least ``uses``, never more than the window has
        left), valid until the horizon's last bucket. The reservation counts in memory at once:
        if the commit fails, the caller simply does not use it (a later record replaces it).
        """
        b = self._bucket(now)
        free = self.count - self._total
        block = max(0, min(free, max(uses, self.count // 4, 1)))
        self._res_end = b + self._horizon - 1
        self._res_left = block
        return self._record(self._res_end, block)

    def exact_record(self) -> bytes:
        """The exact counts, no reservation: for a clean stop (or any quiet moment).

        Once this record is durable no reservation is, so the next use needs a new one; this
        is why it clears the in-memory reservation too.
        """
        self._res_end = -1
        self._res_left = 0
        return self._record(-1, 0)

    def _record(self, res_end: int, block: int) -> bytes:
        head, slots = self._head, self._slots
        entries = [
            _ENTRY.pack(back, slots[(head - back) % _SLOTS])
            for back in range(-(BUCKETS - 1), BUCKETS + 1)
            if slots[(head - back) % _SLOTS]
        ]
        header = _HEADER.pack(_VERSION, self.window_s, head, res_end, block, len(entries))
        return header + b"".join(entries)

    @classmethod
    def from_record(
        cls, record: bytes, *, count: int, window_s: float, durable: bool = True
    ) -> RateWindow:
        """Rebuild a window from its last committed record.

        ``count`` and ``window_s`` come from the rule as it is now. A reservation in the
        record (the daemon did not stop cleanly) is taken as used, in its horizon's last
        bucket. If ``window_s`` changed since the record was written, every use it holds is
        moved to the bucket of the new geometry that contains the end of the old newest
        bucket: uses may only ever count for longer, never shorter.
        """
        window = cls(count, window_s, durable=durable)
        try:
            version, old_window_s, head, res_end, block, n = _HEADER.unpack_from(record)
            if version != _VERSION or len(record) != _HEADER.size + n * _ENTRY.size:
                raise RecordError("unknown rate window record")
            uses = [_ENTRY.unpack_from(record, _HEADER.size + i * _ENTRY.size) for i in range(n)]
        except struct.error:
            raise RecordError("truncated rate window record") from None
        if not (math.isfinite(old_window_s) and old_window_s > 0) or head < 0:
            raise RecordError("rate window record out of range")
        buckets: dict[int, int] = {}
        for back, k in uses:
            if not -BUCKETS < back <= BUCKETS:
                raise RecordError("rate window record out of range")
            buckets[head - back] = buckets.get(head - back, 0) + k
        if block:
            if not head <= res_end < head + BUCKETS:
                raise RecordError("rate window record out of range")
            buckets[res_end] = buckets.get(res_end, 0) + block
        if not buckets:
            return window
        newest = max(buckets)
        if old_window_s == window.window_s:
            # The head stays where the record says: moving it up to a future-dated bucket
            # would expire older uses early.
            window._head = head
            for b, k in buckets.items():
                window._slots[b % _SLOTS] += k
        else:
            # Different bucket width: put everything at the newest moment any of it may
            # have happened (the end of the old newest bucket), in the new geometry.
            end = (newest + 1) * (old_window_s / BUCKETS)
            window._head = math.ceil(end * window._inv_width)
            window._slots[window._head % _SLOTS] = sum(buckets.values())
        window._total = sum(window._slots)
        return window

    def retarget(self, count: int, window_s: float) -> RateWindow:
        """This window's uses under a changed limit (a policy edit kept the rule id).

        A new count keeps the buckets as they are; a new ``window_s`` re-buckets as
        ``from_record`` does, so a lowered limit sees every use already made.
        """
        if window_s == self.window_s:
            window = RateWindow(count, window_s, durable=self.durable)
            window._slots = list(self._slots)
            window._head, window._total = self._head, self._total
            window._res_end, window._res_left = self._res_end, self._res_left
            return window
        return RateWindow.from_record(
            self._record(-1, 0), count=count, window_s=window_s, durable=self.durable
        )
