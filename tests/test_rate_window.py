"""The rolling-window counter: the count bound in every window, expiry, durable reservations
and crash recovery (hypothesis over random use timelines)."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.model.rate_window import (
    BUCKETS,
    RateWindow,
    RecordError,
    ReservationNeeded,
)

T0 = 1_800_000_000.0


def max_in_any_window(times: list[float], window_s: float) -> int:
    """The most uses in any half-open interval of ``window_s`` seconds."""
    times = sorted(times)
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + window_s)
        best = max(best, j - i)
    return best


def test_admits_count_then_refuses_then_expires() -> None:
    w = RateWindow(3, 60, durable=False)
    for k in range(3):
        assert w.remaining(T0 + k) == 3 - k
        w.use(T0 + k)
    assert w.remaining(T0 + 10) == 0
    with pytest.raises(ReservationNeeded):
        w.use(T0 + 10)
    # Uses stop counting between window_s and window_s + one bucket after they happened.
    width = 60 / BUCKETS
    assert w.remaining(T0 + 59) == 0
    assert w.remaining(T0 + 2 + 60 + width + 0.001) == 3


def test_clock_going_back_counts_in_the_newest_bucket() -> None:
    w = RateWindow(2, 10, durable=False)
    w.use(T0 + 100)
    w.use(T0)  # a wall-clock step back: still counted, and for longer
    assert w.remaining(T0 + 100) == 0
    assert w.remaining(T0 + 109) == 0
    assert w.remaining(T0 + 111) == 2


def test_a_durable_window_needs_a_reservation_before_use() -> None:
    w = RateWindow(100, 3600)
    assert w.needs_reservation(T0)
    with pytest.raises(ReservationNeeded):
        w.use(T0)
    w.reserve(T0)
    assert not w.needs_reservation(T0)
    for _ in range(25):  # the block is count // 4
        w.use(T0)
    assert w.needs_reservation(T0)
    w.reserve(T0)
    w.use(T0)
    # The reservation covers a horizon of a tenth of the window, then a new one is due.
    assert w.needs_reservation(T0 + 3600 / 10 + 60)


def test_reservation_is_never_larger_than_what_is_left() -> None:
    w = RateWindow(8, 60)
    w.reserve(T0)
    for _ in range(2):
        w.use(T0)
    w.reserve(T0, uses=5)
    for _ in range(5):
        w.use(T0)
    w.reserve(T0, uses=10)  # only 1 left in the window
    recovered = RateWindow.from_record(w.reserve(T0), count=8, window_s=60)
    assert recovered.remaining(T0) == 0


def test_crash_takes_the_reservation_as_used_clean_stop_is_exact() -> None:
    w = RateWindow(100, 3600)
    w.reserve(T0)
    for _ in range(3):
        w.use(T0)
    reserved = w.reserve(T0 + 1, uses=1)  # what the daemon last committed
    w.use(T0 + 1)
    crashed = RateWindow.from_record(reserved, count=100, window_s=3600)
    assert crashed.remaining(T0 + 2) == 100 - 3 - 25
    clean = RateWindow.from_record(w.exact_record(), count=100, window_s=3600)
    assert clean.remaining(T0 + 2) == 100 - 4
    assert clean.needs_reservation(T0 + 2)


def test_a_recovered_reservation_counts_from_the_end_of_its_horizon() -> None:
    """Uses a reservation stood for may have happened anywhere in its horizon, so after a
    crash they count as late as the horizon's end, and older recorded uses still count."""
    w = RateWindow(8, 60)  # 1 s buckets, a 6 s horizon, blocks of 2
    committed = w.reserve(T0)
    w.use(T0)
    w.use(T0 + 5)  # covered by the same reservation: nothing written
    crashed = RateWindow.from_record(committed, count=8, window_s=60)
    assert crashed.remaining(T0 + 6) == 8 - 2
    # The use at T0 + 5 is still inside (T0 + 1.5, T0 + 61.5]: the window must not forget it.
    assert crashed.remaining(T0 + 61.5) == 8 - 2
    assert crashed.remaining(T0 + 67) == 8


def test_record_is_small_and_survives_a_round_trip() -> None:
    w = RateWindow(1000, 86400, durable=False)
    for k in range(500):
        w.use(T0 + k * 60)
    record = w.exact_record()
    assert len(record) < 400
    back = RateWindow.from_record(record, count=1000, window_s=86400, durable=False)
    assert back.remaining(T0 + 500 * 60) == w.remaining(T0 + 500 * 60)


@pytest.mark.parametrize(
    "record", [b"", b"\x02" + bytes(30), b"\x01" + bytes(29) + b"\x05", bytes(31)]
)
def test_bad_records_are_refused(record: bytes) -> None:
    with pytest.raises(RecordError):
        RateWindow.from_record(record, count=5, window_s=60)


def test_changed_window_keeps_every_use_counting_at_least_as_long() -> None:
    w = RateWindow(10, 60, durable=False)
    for k in range(6):
        w.use(T0 + k)
    longer = w.retarget(10, 600)
    assert longer.remaining(T0 + 6) == 4
    assert longer.remaining(T0 + 5 + 599) == 4
    shorter = w.retarget(10, 10)
    assert shorter.remaining(T0 + 6) == 4
    lowered = w.retarget(5, 60)
    assert lowered.remaining(T0 + 6) == 0


def test_repr_shows_no_counts() -> None:
    assert repr(RateWindow(5, 60)) == "RateWindow(count=5, window_s=60)"


# ------------------------------------------------------------------------ properties

gaps = st.lists(st.floats(min_value=0, max_value=4, allow_nan=False), min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(count=st.integers(1, 12), window_s=st.sampled_from([1, 7, 60, 3600]), gaps=gaps)
def test_never_more_than_count_in_any_window(count: int, window_s: int, gaps: list[float]) -> None:
    w = RateWindow(count, window_s, durable=False)
    now, admitted = T0, []
    scale = window_s / 20
    for g in gaps:
        now += g * scale
        if w.remaining(now) > 0:
            w.use(now)
            admitted.append(now)
    assert max_in_any_window(admitted, window_s) <= count


events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False),
        st.sampled_from(["use", "use", "use", "crash", "stop", "exact"]),
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 12), window_s=st.sampled_from([1, 10, 60, 3600]), events=events)
def test_reservation_and_crash_recovery_never_admit_more_than_count(
    count: int, window_s: int, events: list[tuple[float, str]]
) -> None:
    """The daemon's protocol: reserve (commit the record) before a use beyond what is
    durable; a crash loses memory and reloads the last committed record; a clean stop
    commits the exact record. Across all of it no window holds more than ``count``."""
    w = RateWindow(count, window_s)
    disk: bytes | None = None
    now, admitted = T0, []
    scale = window_s / 10
    for gap, kind in events:
        now += gap * scale
        if kind == "use":
            if w.remaining(now) < 1:
                continue
            if w.needs_reservation(now):
                disk = w.reserve(now)
            w.use(now)
            admitted.append(now)
        elif kind == "exact":
            disk = w.exact_record()
        else:
            if kind == "stop":
                disk = w.exact_record()
            w = (
                RateWindow(count, window_s)
                if disk is None
                else RateWindow.from_record(disk, count=count, window_s=window_s)
            )
    assert max_in_any_window(admitted, window_s) <= count
