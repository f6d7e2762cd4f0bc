"""One scenario's measurements over the repetitions, and the figures taken from them.

Every figure is a median over repetitions. A ratio is the median of *per-repetition* ratios
subject/leg: both were measured back to back in that repetition, so they saw similar noise,
and the median of paired ratios is steadier than the ratio of two medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Measurement
from bench.scenarios import Goal, Metric, Scenario

PICK: dict[Metric, Callable[[Measurement], float]] = {
    "rate": lambda m: m.rate,
    "p50_us": lambda m: m.p50_us,
    "p99_us": lambda m: m.p99_us,
}


@dataclass
class ScenarioResult:
    scenario: Scenario
    legs: tuple[str, ...] = ()  # the servers this run planned for it (all, or subject + anchor)
    # server -> one entry per repetition (None: that run failed), so lists align by repetition
    runs: dict[str, list[Measurement | None]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # server -> why it did not run

    @property
    def subject(self) -> str:
        return self.scenario.subject.server

    @property
    def anchor(self) -> str | None:
        return self.scenario.anchor.server if self.scenario.anchor else None

    def add(self, server: str, measurement: Measurement | None, error: str | None) -> None:
        self.runs.setdefault(server, []).append(measurement)
        if error:
            self.errors.setdefault(server, []).append(error)

    def ok_runs(self, server: str) -> list[Measurement]:
        return [m for m in self.runs.get(server, []) if m is not None]

    def median(self, server: str, pick: Callable[[Measurement], float]) -> float | None:
        values = [pick(m) for m in self.ok_runs(server)]
        return statistics.median(values) if values else None

    def ratios(self, versus: str, metric: Metric = "rate") -> list[float]:
        """Per-repetition subject/``versus`` for the repetitions where both were measured."""
        pick = PICK[metric]
        pairs = zip(self.runs.get(self.subject, []), self.runs.get(versus, []), strict=False)
        return [pick(s) / pick(v) for s, v in pairs if s is not None and v is not None and pick(v)]

    def median_ratio(self, versus: str, metric: Metric = "rate") -> float | None:
        ratios = self.ratios(versus, metric)
        return statistics.median(ratios) if ratios else None

    def goal_value(self, goal: Goal) -> float | None:
        if goal.versus is None:
            return self.median(self.subject, PICK[goal.metric])
        return self.median_ratio(goal.versus, goal.metric)

    def goals(self) -> list[Goal]:
        """The scenario's goals this run can judge: none against a leg it did not plan."""
        return [g for g in self.scenario.goals if g.versus is None or g.versus in self.legs]

    def headline_ratio(self) -> float | None:
        goal = self.scenario.headline
        return self.goal_value(goal) if goal else None

    def to_json(self) -> dict[str, Any]:
        scenario = self.scenario
        versus = [s for s in self.runs if s != self.subject]
        headline = scenario.headline
        return {
            "title": scenario.title,
            "unit": scenario.unit,
            "config": {
                "client_processes": scenario.shape.processes,
                "connections_per_process": scenario.shape.connections,
                "depth": scenario.shape.depth,
            },
            "subject": self.subject,
            "legs": list(self.legs),
            "anchor": self.anchor,
            "headline": None
            if headline is None
            else {
                "versus": headline.versus,
                "ratio": self.headline_ratio(),
                "per_rep": self.ratios(headline.versus or ""),
                "limit": headline.limit,
            },
            "repetitions": {
                server: [m.to_json() if m else None for m in runs]
                for server, runs in self.runs.items()
            },
            "errors": self.errors,
            "unavailable": self.unavailable,
            "ratios": {server: self.ratios(server) for server in versus},
            "median_ratio": {server: self.median_ratio(server) for server in versus},
            "median_rate": {server: self.median(server, PICK["rate"]) for server in self.runs},
        }
