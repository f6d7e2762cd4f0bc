"""Latency rows: table rows that report round-trip percentiles, not a rate against an anchor.

The rate harness (``bench.harness``) drives closed loops of pre-encoded frames and judges a
rate. Some things worth a row are a sequence of steps instead: a signature held for a person
and approved by another process, or a JSON-RPC call over a child's pipes. A
:class:`LatencyRow` measures such a thing with its own small client and reports one or more
named *series* of round-trip times (nanoseconds, on ``time.perf_counter_ns``, which on Linux
is ``CLOCK_MONOTONIC`` and so comparable between processes on one host). The first series
is the row's subject; the second, when there is one, is what it is shown beside (the
"anchor" cell). Latency rows have no goals: they are reported, p50 and p99, in the same
table and in the JSON, and never gate.

The registry and the runner are in ``bench.latency_rows``; a row's ``measure`` gets a
:class:`LatencyContext` with the running servers it named.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import Server

Samples = dict[str, list[int]]  # series name -> round trips in ns


def _rank(ordered: list[int], q: float) -> int:
    # Nearest rank, as bench.harness.percentile (not imported: harness imports the registry,
    # which imports the rows that import this module).
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass(frozen=True)
class LatencyContext:
    """What a latency row's ``measure`` may use."""

    servers: Mapping[str, Server]  # the servers the row named, running
    reps: int  # the run's repetitions: rows interleave their legs this many times
    duration: float  # the run's seconds per measurement: a leg's time budget per repetition
    workdir: Path
    progress: Callable[[str], None]


@dataclass(frozen=True)
class LatencyRow:
    key: str
    title: str  # says what each series is, for the table's first column
    servers: tuple[str, ...]  # keys of bench.scenarios.SERVERS the row needs
    series: tuple[str, ...]  # the series ``measure`` returns, subject first
    measure: Callable[[LatencyContext], Samples]
    note: str = ""  # printed under the table: the definition of each series
    # None when the row can run here, else why not (an optional extra missing, say).
    unavailable: Callable[[], str | None] = lambda: None

    def __post_init__(self) -> None:
        if not self.series or len(set(self.series)) != len(self.series):
            raise ValueError(f"latency row {self.key}: series must be named, each once")


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Percentiles | None:
        if not samples_ns:
            return None
        ordered = sorted(samples_ns)
        return cls(
            count=len(ordered),
            p50_us=_rank(ordered, 0.50) / 1000,
            p90_us=_rank(ordered, 0.90) / 1000,
            p99_us=_rank(ordered, 0.99) / 1000,
            max_us=ordered[-1] / 1000,
            mean_us=statistics.fmean(ordered) / 1000,
        )


@dataclass
class LatencyResult:
    row: LatencyRow
    samples: Samples = field(default_factory=dict)
    unavailable: str | None = None  # the row did not run: why
    error: str | None = None  # the row ran and failed: the first line of why

    def stats(self, series: str) -> Percentiles | None:
        return Percentiles.of(self.samples.get(series, []))

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.row.title,
            "kind": "latency",
            "servers": list(self.row.servers),
            "note": self.row.note,
            "unavailable": self.unavailable,
            "error": self.error,
            "series": {
                name: None if (s := self.stats(name)) is None else vars(s)
                for name in self.row.series
            },
        }


def _figures(result: LatencyResult, pick: Callable[[Percentiles], float]) -> str:
    """``a / b / c`` over the row's series, "—" for one that has no samples."""
    cells = []
    for name in result.row.series:
        stats = result.stats(name)
        cells.append("—" if stats is None else f"{pick(stats):,.0f}")
    return " / ".join(cells)


def table_row(result: LatencyResult, width: int) -> tuple[str, ...]:
    """One row of ``bench.report``'s table, ``width`` cells: the title, "reported" as the
    target, the sample count where a rate would be, the other series' names in the anchor
    cell, p50 and p99 as ``subject / others``, nothing in the ratio and CPU columns."""
    row = result.row
    if result.unavailable or result.error:
        why = result.unavailable or result.error or ""
        state = "not available" if result.unavailable else "error"
        middle = [f"{state} ({why[:80]})", "—"]
        p50 = p99 = "—"
    else:
        counts = [s.count for name in row.series if (s := result.stats(name)) is not None]
        middle = [f"{min(counts, default=0):,} round trips", " / ".join(row.series[1:]) or "—"]
        p50 = _figures(result, lambda s: s.p50_us)
        p99 = _figures(result, lambda s: s.p99_us)
    # scenario, target, subject, anchor, <ratio columns>, p50, p99, server µs/req, CPU, met?
    ratios = ["" for _ in range(width - 9)]
    return (row.title, "— (reported)", *middle, *ratios, p50, p99, "—", "—", "—")


def notes(results: Mapping[str, LatencyResult]) -> list[str]:
    lines = []
    for result in results.values():
        row = result.row
        if row.note:
            lines.append(f"{row.key}: {row.note}")
        if result.unavailable:
            lines.append(f"{row.key} not measured: {result.unavailable}")
        elif result.error:
            lines.append(f"{row.key} failed: {result.error}")
    return lines
