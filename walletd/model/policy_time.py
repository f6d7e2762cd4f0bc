"""Time conditions of policy rules: absolute bounds and weekly hours in a timezone.

Semantics (decided here, stated in docs):

- ``not_before`` / ``not_after`` are Unix seconds or ISO 8601 text (text without an offset is
  read in the configured timezone). A rule is active for ``not_before <= now < not_after``;
  ``not_after`` must come after ``not_before``.
- ``weekly`` is a list of ``{days, start, end}``: on each named day, from ``start`` (inclusive)
  to ``end`` (exclusive), wall-clock time in the configured timezone, minute precision;
  ``end`` may be ``"24:00"``. An ``end`` before ``start`` is an overnight window that belongs
  to the day it starts: ``{"days": ["fri"], "start": "22:00", "end": "06:00"}`` is Friday 22:00
  to Saturday 06:00. ``start == end`` is refused (say ``00:00``-``24:00`` for a whole day).
- Across a DST change the wall clock decides: in the repeated hour of autumn both passes of,
  say, 02:30 are in or out together; the skipped hour of spring never happens.

Cost: the weekly answer is a byte lookup in a 10080-entry minute-of-week mask. The local
minute of week is computed with ``zoneinfo`` once per UTC minute and cached (valid only when
the UTC offset is a whole number of minutes and constant through that minute, true of every
offset in use today; otherwise it is recomputed each call).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_WEEKLY_ENTRIES = 32
MAX_UNIX_SECONDS = 2**40  # year ~36812: far beyond any real bound, keeps floats exact
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


class TimeError(ValueError):
    """A time condition that cannot be understood; the caller adds which rule and field."""


def load_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(f"timezone {name[:64]!r} is not known") from None


def parse_instant(value: Any, tz: ZoneInfo) -> float:
    """Unix seconds from a number or ISO 8601 text."""
    if isinstance(value, bool):
        raise TimeError("must be Unix seconds or ISO 8601 text")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise TimeError("is not ISO 8601 date-time text") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        seconds = moment.timestamp()
    else:
        raise TimeError("must be Unix seconds or ISO 8601 text")
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_UNIX_SECONDS):
        raise TimeError(f"must be between 0 and {MAX_UNIX_SECONDS} Unix seconds")
    return seconds


def _minute(text: Any, what: str) -> int:
    if not isinstance(text, str) or not _HHMM.fullmatch(text):
        raise TimeError(f"{what} must be HH:MM text from 00:00 to 24:00")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def weekly_mask(entries: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """The minute-of-week mask of ``weekly`` entries, and the entries normalised.

    Raises ``TimeError`` naming the entry (``weekly[1].days`` ...).
    """
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_WEEKLY_ENTRIES:
        raise TimeError(f"must be a list of 1-{MAX_WEEKLY_ENTRIES} maps")
    mask = bytearray(MINUTES_PER_WEEK)
    normal: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise TimeError(f"{where} must be a map with days, start and end")
        unknown = set(entry) - {"days", "start", "end"}
        if unknown:
            raise TimeError(f"{where} has unknown field {sorted(map(str, unknown))[0][:64]!r}")
        days = entry.get("days")
        if not isinstance(days, list) or not 1 <= len(days) <= 7:
            raise TimeError(f"{where}.days must be a list of 1-7 day names (mon ... sun)")
        indexes: list[int] = []
        for day in days:
            if not isinstance(day, str) or day.lower() not in DAYS:
                shown = day[:16] if isinstance(day, str) else type(day).__name__
                raise TimeError(f"{where}.days: {shown!r} is not a day name (mon ... sun)")
            if DAYS.index(day.lower()) not in indexes:
                indexes.append(DAYS.index(day.lower()))
        start = _minute(entry.get("start"), f"{where}.start")
        end = _minute(entry.get("end"), f"{where}.end")
        if start == MINUTES_PER_DAY:
            raise TimeError(f"{where}.start must be before 24:00")
        if start == end:
            raise TimeError(f"{where}: start equals end (use 00:00 to 24:00 for a whole day)")
        for d in indexes:
            base = d * MINUTES_PER_DAY
            if start < end:
                mask[base + start : base + end] = b"\x01" * (end - start)
            else:  # overnight: the rest of day d, then the start of the next day
                mask[base + start : base + MINUTES_PER_DAY] = b"\x01" * (MINUTES_PER_DAY - start)
                nxt = ((d + 1) % 7) * MINUTES_PER_DAY
                mask[nxt : nxt + end] = b"\x01" * end
        normal.append(
            {
                "days": [DAYS[d] for d in sorted(indexes)],
                "start": entry["start"],
                "end": entry["end"],
            }
        )
    return bytes(mask), normal


class LocalClock:
    """Minute of the week (Monday 00:00 = 0) of a Unix time in one timezone, cached."""

    __slots__ = ("_hi", "_lo", "_minute", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._lo = 0.0
        self._hi = 0.0  # [lo, hi): the UTC span the cached minute is valid for
        self._minute = 0

    def minute_of_week(self, now: float) -> int:
        if self._lo <= now < self._hi:
            return self._minute
        local = datetime.fromtimestamp(now, self.tz)
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        lo = math.floor(now / 60.0) * 60.0
        first = datetime.fromtimestamp(lo, self.tz).utcoffset()
        last = datetime.fromtimestamp(lo + 59.0, self.tz).utcoffset()
        if first is not None and first == last and first.total_seconds() % 60 == 0:
            self._lo, self._hi, self._minute = lo, lo + 60.0, minute
        return minute


def when_check(
    clock: LocalClock, not_before: float | None, not_after: float | None, mask: bytes | None
) -> Callable[[float], bool]:
    """A closure ``active(now)`` for one rule's ``when``, with only the parts it has."""
    lo = -math.inf if not_before is None else not_before
    hi = math.inf if not_after is None else not_after
    if mask is None:
        return lambda now: lo <= now < hi
    minute_of_week = clock.minute_of_week
    return lambda now: lo <= now < hi and mask[minute_of_week(now)] == 1
