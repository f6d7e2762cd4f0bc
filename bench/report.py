"""Target checks and the markdown table.

One row per scenario: the subject's rate, the anchor's, the headline ratio (subject/anchor, in
bold in its column) and the ratio against every other leg in its own column, then latency and
CPU as "subject / anchor". Every figure is a median over repetitions (``bench.results``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Measurement
from bench.latency import LatencyResult
from bench.latency import table_row as latency_table_row
from bench.results import PICK, ScenarioResult
from bench.scenarios import SERVERS, Goal

STARTUP_WALLETS = 100_000
STARTUP_MAX_S = 2.0  # issue 18: 100k wallets of mixed key types
STARTUP_MAX_RSS_MB = 250.0


@dataclass
class Check:
    name: str
    scenario: str  # the table row it belongs to
    value: float | None  # None: not measured
    limit: float
    at_least: bool  # True: value >= limit passes; False: value <= limit passes
    unit: str = ""
    enforced: bool = True  # False: "not measured" is reported but does not fail the run
    label: str = ""  # the target as the table writes it
    headline: bool = False

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def describe(self) -> str:
        op = ">=" if self.at_least else "<="
        got = "not measured" if self.value is None else f"{self.value:,.2f}{self.unit}"
        return f"{self.name}: {got} (target {op} {self.limit:,g}{self.unit})"


def goal_check(result: ScenarioResult, goal: Goal) -> Check:
    subject = result.subject
    if goal.versus is None:
        name = f"{result.scenario.key} {subject} {goal.metric}"
        unit = " us" if goal.metric != "rate" else ""
    else:
        name = f"{result.scenario.key} {subject}/{goal.versus} {goal.metric} ratio"
        unit = ""
    return Check(
        name,
        result.scenario.key,
        result.goal_value(goal),
        goal.limit,
        goal.at_least,
        unit,
        label=goal.describe(),
        headline=goal.headline,
    )


def build_checks(
    results: dict[str, ScenarioResult], startup: dict[str, Any] | None, startup_n: int
) -> list[Check]:
    checks = [goal_check(r, goal) for r in results.values() for goal in r.goals()]
    # The startup figures only mean something at full size; a stub is reported, not failed.
    enforced = startup is not None and startup_n >= STARTUP_WALLETS
    ready = startup.get("ready_s") if startup else None
    rss = startup.get("rss_mb") if startup else None
    checks.append(Check("startup ready", "startup", ready, STARTUP_MAX_S, False, " s", enforced))
    checks.append(Check("startup RSS", "startup", rss, STARTUP_MAX_RSS_MB, False, " MiB", enforced))
    return checks


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(checks: list[Check]) -> str:
    if not checks:
        return "—"
    states = [c.met for c in checks]
    if all(s is True for s in states):
        return "yes"
    failed = [c.label or c.name for c in checks if c.met is False]
    if failed:
        return "**NO** (" + "; ".join(failed) + ")"
    return "not measured"


def comparison_columns(results: dict[str, ScenarioResult]) -> list[str]:
    """Every server some row is compared with, in registry order: one ratio column each."""
    used = {server for r in results.values() for server in r.legs if server != r.subject}
    return [name for name in SERVERS if name in used]


def _ratio_cell(result: ScenarioResult, server: str) -> str:
    if server not in result.legs or server == result.subject:  # walletd is not "vs walletd"
        return ""
    if server in result.unavailable:
        return "n/a"
    value = result.median_ratio(server)
    text = _num(value, 2)
    return f"**{text}**" if server == result.anchor and value is not None else text


def _pair(result: ScenarioResult, pick: Callable[[Measurement], float], digits: int = 0) -> str:
    subject = _num(result.median(result.subject, pick), digits)
    if result.anchor is None:
        return subject
    return f"{subject} / {_num(result.median(result.anchor, pick), digits)}"


def _subject_cell(result: ScenarioResult) -> str:
    rate = result.median(result.subject, PICK["rate"])
    if rate is not None:
        return _num(rate)
    why = result.unavailable.get(result.subject)
    if why:
        return f"not available ({why[:80]})"
    errors = result.errors.get(result.subject)
    return f"error: {errors[-1].splitlines()[0][:80]}" if errors else "—"


def _anchor_cell(result: ScenarioResult) -> str:
    anchor = result.anchor
    if anchor is None:
        return "—"
    if anchor in result.unavailable:
        return f"{anchor}: not available"
    return f"{_num(result.median(anchor, PICK['rate']))} ({anchor})"


def render_table(
    results: dict[str, ScenarioResult],
    checks: list[Check],
    startup: dict[str, Any] | None,
    startup_note: str,
    startup_n: int,
    latency: dict[str, LatencyResult] | None = None,
) -> str:
    columns = comparison_columns(results)
    header = (
        "scenario",
        "target",
        "subject rate",
        "anchor rate",
        *(f"vs {name}" for name in columns),
        "p50 µs",
        "p99 µs",
        "server µs/req",
        "CPU % client/server",
        "met?",
    )
    rows: list[tuple[str, ...]] = []
    for key, result in results.items():
        row_checks = [c for c in checks if c.scenario == key]
        subject_cpu = (
            f"{_num(result.median(result.subject, lambda m: m.client_cpu_pct))}"
            f" / {_num(result.median(result.subject, lambda m: m.server_cpu_pct))}"
        )
        rows.append(
            (
                result.scenario.title,
                "; ".join(c.label for c in row_checks) or "—",
                _subject_cell(result) + ("" if result.scenario.unit == "req/s" else " sig/s"),
                _anchor_cell(result),
                *(_ratio_cell(result, name) for name in columns),
                _pair(result, lambda m: m.p50_us),
                _pair(result, lambda m: m.p99_us),
                _pair(result, lambda m: m.server_cpu_us_per_request, 1),
                subject_cpu,
                _met(row_checks),
            )
        )
    rows += [latency_table_row(r, len(header)) for r in (latency or {}).values()]
    start_checks = [c for c in checks if c.scenario == "startup"]
    if startup is not None:
        measured = f"{startup.get('ready_s', 0):.2f} s, {startup.get('rss_mb', 0):.0f} MiB"
    else:
        measured = startup_note
    met = _met(start_checks) if startup_n >= STARTUP_WALLETS else f"n/a (n={startup_n:,})"
    rows.append(
        (
            f"startup to ready, {startup_n:,} wallets",
            f"≤ {STARTUP_MAX_S:g} s, RSS ≤ {STARTUP_MAX_RSS_MB:g} MiB",
            measured,
            *("—" for _ in range(len(header) - 4)),
            met,
        )
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
