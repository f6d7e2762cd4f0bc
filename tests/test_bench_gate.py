"""The bench's regression gate, its baseline file, and the SVG chart of headline ratios."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench import gate
from bench.__main__ import EXIT_USAGE, main
from bench.chart import ChartRow, chart_rows, render_svg
from bench.references import ASYNCIO, TRIO_SOCKET, TRIO_STREAM
from bench.results import ScenarioResult
from bench.scenarios import SCENARIOS, WALLETD

from .test_bench_report import m

SVG = "{http://www.w3.org/2000/svg}"


def headline_result(key: str, ratios: list[float]) -> ScenarioResult:
    """A headline-only result whose per-repetition subject/anchor ratios are ``ratios``."""
    scenario = SCENARIOS[key]
    assert scenario.anchor is not None
    anchor = scenario.anchor.server
    result = ScenarioResult(scenario, legs=(WALLETD, anchor))
    for ratio in ratios:
        result.add(WALLETD, m(WALLETD, 1000 * ratio), None)
        result.add(anchor, m(anchor, 1000), None)
    return result


def three(seq: list[float], conn: list[float], pipe: list[float]) -> dict[str, ScenarioResult]:
    return {
        "sequential": headline_result("sequential", seq),
        "conn16": headline_result("conn16", conn),
        "pipelined": headline_result("pipelined", pipe),
    }


def written_baseline(tmp_path: Path, results: dict[str, ScenarioResult]) -> Path:
    path = tmp_path / "baseline.json"
    config = {"reps": 3, "duration_s": 1.0, "headline_only": True}
    gate.write_baseline(path, gate.baseline_document(results, config, "then", "provisional"))
    return path


# --- the gate ------------------------------------------------------------------------------------


def test_baseline_round_trips_every_headline_ratio(tmp_path: Path) -> None:
    path = written_baseline(tmp_path, three([0.8, 0.7, 0.9], [1.1], [1.05, 1.07]))
    entries, config = gate.load_baseline(path)
    assert entries == {
        "sequential": gate.BaselineEntry(TRIO_STREAM, 0.8),
        "conn16": gate.BaselineEntry(TRIO_SOCKET, 1.1),
        "pipelined": gate.BaselineEntry(ASYNCIO, 1.06),
    }
    assert config["reps"] == 3
    document = json.loads(path.read_text())
    assert document["ratios"]["sequential"]["per_rep"] == [0.8, 0.7, 0.9]
    assert document["note"] == "provisional"
    assert not path.with_suffix(".json.tmp").exists()


def test_gate_fails_only_beyond_fifteen_percent(tmp_path: Path) -> None:
    entries, _ = gate.load_baseline(written_baseline(tmp_path, three([0.8], [1.0], [1.0])))
    # sequential: exactly at the floor; conn16: just below it; pipelined: better than before.
    rows = gate.compare(entries, three([0.8 * 0.85], [0.849], [1.2]))
    verdict = {row.scenario: row.passed for row in rows}
    assert verdict == {"sequential": True, "conn16": False, "pipelined": True}
    table = gate.render_gate(rows)
    assert (
        "| conn16 | trio-socket | 1.000 | 0.849 | -15.1% | 0.850 | **FAIL** below the floor |"
        in (table)
    )


def test_gate_fails_what_it_cannot_measure(tmp_path: Path) -> None:
    entries, _ = gate.load_baseline(written_baseline(tmp_path, three([0.8], [1.0], [1.0])))
    unmeasured = headline_result("conn16", [])
    unmeasured.unavailable[TRIO_SOCKET] = "servers/trio_server.py not found"
    rows = gate.compare(
        entries, {"sequential": headline_result("sequential", [0.9]), "conn16": unmeasured}
    )
    reasons = {row.scenario: (row.passed, row.reason) for row in rows}
    assert reasons["sequential"] == (True, "")
    assert reasons["conn16"] == (False, "trio-socket: servers/trio_server.py not found")
    assert reasons["pipelined"] == (False, "not run")


def test_gate_refuses_a_baseline_taken_against_another_anchor(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(
        json.dumps({"format": 1, "ratios": {"sequential": {"versus": ASYNCIO, "ratio": 0.8}}})
    )
    entries, _ = gate.load_baseline(path)
    (row,) = gate.compare(entries, {"sequential": headline_result("sequential", [0.9])})
    assert not row.passed
    assert "anchor is now trio-stream" in row.reason


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "not found"),
        ("{", "not JSON"),
        ({"format": 2, "ratios": {}}, "format 1"),
        ({"format": 1, "ratios": {}}, "no ratios"),
        ({"format": 1, "ratios": {"sequential": {"ratio": 1}}}, "needs 'versus'"),
        ({"format": 1, "ratios": {"sequential": {"versus": "x", "ratio": 0}}}, "<= 0"),
    ],
)
def test_a_bad_baseline_is_named(tmp_path: Path, content: Any, complaint: str) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(gate.BaselineError, match=complaint):
        gate.load_baseline(path)


def test_check_without_a_baseline_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--baseline", str(tmp_path / "none.json")]) == EXIT_USAGE
    assert "make bench-baseline" in capsys.readouterr().err


def test_config_drift_is_noted() -> None:
    same = {"reps": 5, "duration_s": 1.0, "headline_only": True}
    assert gate.config_drift(same, dict(same)) is None
    drift = gate.config_drift(same, {**same, "reps": 2})
    assert drift is not None and "reps 5 -> 2" in drift


# --- the chart -----------------------------------------------------------------------------------


def rows_of(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}g")


def test_chart_draws_every_headline_against_its_target() -> None:
    results = three([0.7, 0.8, 0.75], [1.1, 1.0, 1.2], [1.05])
    results["batch"] = ScenarioResult(SCENARIOS["batch"])  # no headline: not charted
    rows = chart_rows(results, {"sequential": 0.9})
    assert [r.label.split(" — ")[1] for r in rows] == [
        "vs trio-stream",
        "vs trio-socket",
        "vs asyncio",
    ]
    assert (rows[0].value, rows[0].low, rows[0].high, rows[0].baseline) == (0.75, 0.7, 0.8, 0.9)
    svg = render_svg(rows, "headline ratios", "a subtitle")
    groups = rows_of(svg)
    assert [g.get("data-met") for g in groups] == ["False", "True", "True"]
    bars = [g.find(f"{SVG}rect[@class='bar']") for g in groups]
    assert [b.get("fill") for b in bars if b is not None] == ["#c62828", "#2e7d32", "#2e7d32"]
    # Bar widths are proportional to the ratios.
    widths = [float(b.get("width") or 0) for b in bars if b is not None]
    assert widths[1] / widths[0] == pytest.approx(1.1 / 0.75, rel=0.01)
    assert groups[0].find(f"{SVG}polygon[@class='baseline']") is not None
    assert groups[1].find(f"{SVG}polygon[@class='baseline']") is None


def test_chart_escapes_labels_and_shows_unmeasured_rows() -> None:
    row = ChartRow('a <b> & "c"', None, None, None, 0.95, True)
    svg = render_svg([row], "t & t")
    (group,) = rows_of(svg)
    assert group.get("data-label") == 'a <b> & "c"'
    texts = [t.text for t in group.iter(f"{SVG}text")]
    assert texts == ['a <b> & "c"', "not measured"]
    assert group.find(f"{SVG}rect[@class='bar']") is None
