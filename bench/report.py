"""Medians, target checks and the markdown table.

Every figure in the table is a median over repetitions; the ratio is the median of the
per-repetition ratios walletd/reference (each measured back to back, so both saw similar noise).
Cells with two figures read "reference / walletd".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Measurement, Scenario

REFERENCE = "reference"
WALLETD = "walletd"
SSH_AGENT = "ssh-agent"

RATIO_MIN = 0.9
BATCH_MIN_SIGS = 300_000
CONN16_P99_MAX_US = 1000.0
STARTUP_WALLETS = 100_000
STARTUP_MAX_S = 3.0
STARTUP_MAX_RSS_MB = 200.0


@dataclass
class ScenarioResult:
    scenario: Scenario
    runs: dict[str, list[Measurement | None]] = field(default_factory=dict)  # per rep
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, target: str, measurement: Measurement | None, error: str | None) -> None:
        self.runs.setdefault(target, []).append(measurement)
        if error:
            self.errors.setdefault(target, []).append(error)

    def ok_runs(self, target: str) -> list[Measurement]:
        return [m for m in self.runs.get(target, []) if m is not None]

    def median(self, target: str, pick: Callable[[Measurement], float]) -> float | None:
        values = [pick(m) for m in self.ok_runs(target)]
        return statistics.median(values) if values else None

    def ratios(self) -> list[float]:
        pairs = zip(self.runs.get(REFERENCE, []), self.runs.get(WALLETD, []), strict=False)
        return [w.rate / r.rate for r, w in pairs if r is not None and w is not None and r.rate]

    def median_ratio(self) -> float | None:
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.scenario.title,
            "unit": self.scenario.unit,
            "config": {
                "client_processes": self.scenario.processes,
                "connections_per_process": self.scenario.connections,
                "depth": self.scenario.depth,
                "messages_per_request": self.scenario.batch,
            },
            "repetitions": {
                target: [m.to_json() if m else None for m in runs]
                for target, runs in self.runs.items()
            },
            "errors": self.errors,
            "ratios": self.ratios(),
            "median_ratio": self.median_ratio(),
            "median_rate": {t: self.median(t, lambda m: m.rate) for t in self.runs},
        }


@dataclass
class Check:
    name: str
    scenario: str  # the table row it belongs to
    value: float | None  # None: not measured
    limit: float
    at_least: bool  # True: value >= limit passes; False: value <= limit passes
    unit: str = ""
    enforced: bool = True  # False: "not measured" is reported but does not fail the run

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def describe(self) -> str:
        op = ">=" if self.at_least else "<="
        got = "not measured" if self.value is None else f"{self.value:,.2f}{self.unit}"
        return f"{self.name}: {got} (target {op} {self.limit:,g}{self.unit})"


def build_checks(
    results: dict[str, ScenarioResult], startup: dict[str, Any] | None, startup_n: int
) -> list[Check]:
    checks: list[Check] = []
    for key in ("sequential", "conn16", "pipelined"):
        if key in results:
            value = results[key].median_ratio()
            checks.append(Check(f"{key} walletd/reference ratio", key, value, RATIO_MIN, True))
    if "conn16" in results:
        p99 = results["conn16"].median(WALLETD, lambda m: m.p99_us)
        checks.append(Check("conn16 walletd p99", "conn16", p99, CONN16_P99_MAX_US, False, " us"))
    if "batch" in results:
        rate = results["batch"].median(WALLETD, lambda m: m.rate)
        checks.append(Check("batch walletd signatures/s", "batch", rate, BATCH_MIN_SIGS, True))
    # The startup figures only mean something at full size; a stub is reported, not failed.
    full = startup_n >= STARTUP_WALLETS
    enforced = startup is not None and full
    ready = startup.get("ready_s") if startup else None
    rss = startup.get("rss_mb") if startup else None
    checks.append(Check("startup ready", "startup", ready, STARTUP_MAX_S, False, " s", enforced))
    checks.append(Check("startup RSS", "startup", rss, STARTUP_MAX_RSS_MB, False, " MiB", enforced))
    return checks


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _one(result: ScenarioResult, target: str, pick: Callable[[Measurement], float]) -> str:
    return _num(result.median(target, pick))


def _pair(result: ScenarioResult, pick: Callable[[Measurement], float]) -> str:
    return f"{_one(result, REFERENCE, pick)} / {_one(result, WALLETD, pick)}"


def _met(checks: list[Check]) -> str:
    if not checks:
        return "—"
    states = [c.met for c in checks]
    if all(s is True for s in states):
        return "yes"
    failed = [c.name.split()[-1] for c in checks if c.met is False]
    if failed:
        return "**NO** (" + ", ".join(failed) + ")"
    return "not measured"


_TARGET_TEXT = {
    "sequential": f"ratio ≥ {RATIO_MIN}",
    "conn16": f"ratio ≥ {RATIO_MIN}, p99 ≤ {CONN16_P99_MAX_US / 1000:g} ms",
    "pipelined": f"ratio ≥ {RATIO_MIN}",
    "batch": f"≥ {BATCH_MIN_SIGS:,} sig/s",
    "ssh": "none (comparison; ssh-agent in the reference column)",
}


def render_table(
    results: dict[str, ScenarioResult],
    checks: list[Check],
    startup: dict[str, Any] | None,
    startup_note: str,
    startup_n: int,
    walletd_note: str | None,
) -> str:
    header = (
        "scenario",
        "target",
        "reference req/s",
        "walletd req/s",
        "ratio (median)",
        "p50 µs",
        "p99 µs",
        "client CPU %",
        "server CPU %",
        "met?",
    )
    rows: list[tuple[str, ...]] = []
    for key, result in results.items():
        scenario = result.scenario
        row_checks = [c for c in checks if c.scenario == key]
        if key == "ssh":
            rows.append(
                (
                    scenario.title,
                    _TARGET_TEXT[key],
                    _one(result, SSH_AGENT, lambda m: m.rate),
                    "—",
                    "—",
                    _one(result, SSH_AGENT, lambda m: m.p50_us),
                    _one(result, SSH_AGENT, lambda m: m.p99_us),
                    _one(result, SSH_AGENT, lambda m: m.client_cpu_pct),
                    _one(result, SSH_AGENT, lambda m: m.server_cpu_pct),
                    "—",
                )
            )
            continue
        unit = "" if scenario.unit == "req/s" else f" {scenario.unit}"
        wd_rate = result.median(WALLETD, lambda m: m.rate)
        rows.append(
            (
                scenario.title,
                _TARGET_TEXT.get(key, "—"),
                _num(result.median(REFERENCE, lambda m: m.rate)) + unit,
                (_num(wd_rate) + unit)
                if wd_rate is not None
                else _walletd_missing(result, walletd_note),
                _num(result.median_ratio(), 2),
                _pair(result, lambda m: m.p50_us),
                _pair(result, lambda m: m.p99_us),
                _pair(result, lambda m: m.client_cpu_pct),
                _pair(result, lambda m: m.server_cpu_pct),
                _met(row_checks),
            )
        )
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
            "—",
            measured,
            "—",
            "—",
            "—",
            "—",
            "—",
            met,
        )
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _walletd_missing(result: ScenarioResult, walletd_note: str | None) -> str:
    if walletd_note:
        return f"walletd not available ({walletd_note})"
    errors = result.errors.get(WALLETD)
    return f"error: {errors[-1].splitlines()[0][:80]}" if errors else "—"
