"""The regression gate (``make bench-check``): headline ratios against ``bench/baseline.json``.

A headline ratio is walletd's rate over its anchor's, both measured in the same repetition,
so it carries less of the machine's mood than a raw rate: a slower box slows both sides. The
gate fails when a ratio falls more than ``TOLERANCE`` below the committed baseline, or cannot
be measured at all (a reference that did not start is a failure, not a pass). It does not
judge the targets: those are the table's job, and a baseline may sit below its target.

``make bench-baseline`` runs the same short configuration and rewrites the file; commit it
with the change that moved the figure, and say why in the commit message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import ScenarioResult

BASELINE_PATH = Path(__file__).resolve().parent / "baseline.json"
TOLERANCE = 0.15  # timing noise on a shared 2-core machine is ~5-10 % per ratio
# 8 headline scenarios x 2 legs x 4 x 0.8 s = 51 s of measuring, plus ~5 s to start the
# servers: within the 60 s (5 x 1 s took 84 s). Four repetitions, not three: the
# median of four per-repetition ratios moves less than that of three.
CHECK_REPS = 4
CHECK_DURATION_S = 0.8
FORMAT = 1


class BaselineError(Exception):
    """The baseline file is missing or not one this gate understands."""


@dataclass(frozen=True)
class BaselineEntry:
    versus: str
    ratio: float


@dataclass(frozen=True)
class GateRow:
    scenario: str
    versus: str
    baseline: float
    now: float | None
    reason: str = ""  # why ``now`` is missing

    @property
    def floor(self) -> float:
        return self.baseline * (1 - TOLERANCE)

    @property
    def passed(self) -> bool:
        return self.now is not None and self.now >= self.floor

    @property
    def change(self) -> float | None:
        return None if self.now is None else self.now / self.baseline - 1


def baseline_document(
    results: dict[str, ScenarioResult], config: dict[str, Any], written_at: str, note: str
) -> dict[str, Any]:
    """The file ``make bench-baseline`` writes: every headline ratio the run measured."""
    ratios: dict[str, Any] = {}
    for key, result in results.items():
        value = result.headline_ratio()
        if value is None or result.anchor is None:
            continue
        ratios[key] = {
            "versus": result.anchor,
            "ratio": round(value, 4),
            "per_rep": [round(r, 4) for r in result.ratios(result.anchor)],
        }
    return {
        "format": FORMAT,
        "written_at": written_at,
        "note": note,
        "config": config,
        "tolerance": TOLERANCE,
        "ratios": ratios,
    }


def write_baseline(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` atomically: an interrupted write never leaves half a baseline."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def load_baseline(path: Path) -> tuple[dict[str, BaselineEntry], dict[str, Any]]:
    """(scenario -> entry, the run configuration it was measured with)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(f"{path} not found: write one with `make bench-baseline`") from None
    except ValueError as exc:
        raise BaselineError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BaselineError(f"{path}: expected a format {FORMAT} baseline")
    entries: dict[str, BaselineEntry] = {}
    ratios = document.get("ratios")
    if not isinstance(ratios, dict) or not ratios:
        raise BaselineError(f"{path} holds no ratios")
    for key, entry in ratios.items():
        try:
            versus, ratio = str(entry["versus"]), float(entry["ratio"])
        except (KeyError, TypeError, ValueError):
            raise BaselineError(f"{path}: entry {key!r} needs 'versus' and 'ratio'") from None
        if ratio <= 0:
            raise BaselineError(f"{path}: entry {key!r} has a ratio <= 0")
        entries[key] = BaselineEntry(versus, ratio)
    config = document.get("config")
    return entries, config if isinstance(config, dict) else {}


def compare(
    baseline: dict[str, BaselineEntry], results: dict[str, ScenarioResult]
) -> list[GateRow]:
    rows = []
    for key, entry in baseline.items():
        result = results.get(key)
        now, reason = None, ""
        if result is None:
            reason = "not run"
        elif result.anchor != entry.versus:
            reason = f"anchor is now {result.anchor}: rewrite the baseline"
        else:
            now = result.headline_ratio()
            if now is None:
                missing = {**result.unavailable, **{s: e[-1] for s, e in result.errors.items()}}
                reason = "; ".join(f"{s}: {why.splitlines()[0]}" for s, why in missing.items())
                reason = reason or "not measured"
        rows.append(GateRow(key, entry.versus, entry.ratio, now, reason[:120]))
    return rows


def render_gate(rows: list[GateRow]) -> str:
    header = ("scenario", "vs", "baseline", "now", "change", f"floor (-{TOLERANCE:.0%})", "gate")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        now = "—" if row.now is None else f"{row.now:.3f}"
        change = "—" if row.change is None else f"{row.change:+.1%}"
        verdict = "pass" if row.passed else f"**FAIL** {row.reason or 'below the floor'}"
        cells = (row.scenario, row.versus, f"{row.baseline:.3f}", now, change, f"{row.floor:.3f}")
        lines.append("| " + " | ".join((*cells, verdict)) + " |")
    return "\n".join(lines)


def config_drift(baseline_config: dict[str, Any], config: dict[str, Any]) -> str | None:
    """A note when this run's configuration differs from the baseline's (ratios may shift)."""
    keys = ("reps", "duration_s", "headline_only")
    diff = [
        f"{k} {baseline_config.get(k)!r} -> {config.get(k)!r}"
        for k in keys
        if baseline_config.get(k) != config.get(k)
    ]
    return "baseline measured with a different configuration: " + ", ".join(diff) if diff else None
