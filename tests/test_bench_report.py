"""The bench's scenario registry, paired ratios, goal checks, table and run plan.

Pure: measurements are built by hand (the real ``Measurement`` type), no server is started.
"""

from __future__ import annotations

import pytest

from bench.harness import Measurement
from bench.references import ASYNCIO, TRIO_SOCKET, TRIO_STREAM
from bench.report import build_checks, render_table
from bench.results import ScenarioResult
from bench.run import plan
from bench.scenarios import (
    REFERENCE,
    SCENARIOS,
    SERVERS,
    WALLETD,
    Goal,
    Leg,
    Scenario,
    Shape,
    servers_for,
    sign,
)


def m(server: str, rate: float, p50: float = 40.0, p99: float = 90.0) -> Measurement:
    return Measurement(
        target=server,
        rate=rate,
        requests=int(rate),
        elapsed_s=1.0,
        p50_us=p50,
        p90_us=p50,
        p99_us=p99,
        max_us=p99,
        mean_us=p50,
        client_cpu_pct=30.0,
        server_cpu_pct=80.0,
        machine_cpu_pct=120.0,
        server_cpu_us_per_request=25.0,
    )


def result_for(key: str, runs: dict[str, list[Measurement | None]]) -> ScenarioResult:
    scenario = SCENARIOS[key]
    result = ScenarioResult(scenario, legs=tuple(leg.server for leg in scenario.legs()))
    for server, measurements in runs.items():
        for measurement in measurements:
            result.add(server, measurement, None if measurement else "boom")
    return result


# --- the registry --------------------------------------------------------------------------------


def test_headline_anchors_are_the_issues_shared_references() -> None:
    anchors = {key: (s.anchor.server if s.anchor else None) for key, s in SCENARIOS.items()}
    assert anchors["sequential"] == TRIO_STREAM
    assert anchors["conn16"] == TRIO_SOCKET
    assert anchors["pipelined"] == ASYNCIO
    for key in ("sequential", "conn16", "pipelined"):
        headline = SCENARIOS[key].headline
        assert headline is not None and headline.versus == anchors[key]
        # Our own reference stays in the run, in its own column, with its old floor.
        assert REFERENCE in [leg.server for leg in SCENARIOS[key].others]


def test_every_leg_names_a_registered_server() -> None:
    for scenario in SCENARIOS.values():
        for leg in scenario.legs():
            assert leg.server in SERVERS, (scenario.key, leg.server)


@pytest.mark.parametrize(
    ("anchor", "others", "goals", "complaint"),
    [
        (Leg(TRIO_STREAM, sign), (Leg(TRIO_STREAM, sign),), (), "two legs"),
        (
            Leg(TRIO_STREAM, sign),
            (Leg(REFERENCE, sign),),
            (Goal("rate", 1, True, versus=REFERENCE, headline=True),),
            "headline",
        ),
        (
            Leg(TRIO_STREAM, sign),
            (),
            (Goal("p50_us", 1, False, versus=TRIO_STREAM, headline=True),),
            "headline",
        ),
        (None, (), (Goal("rate", 1, True, versus=ASYNCIO),), "does not run"),
    ],
)
def test_a_malformed_scenario_is_refused(
    anchor: Leg | None, others: tuple[Leg, ...], goals: tuple[Goal, ...], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        Scenario("x", "x", Shape(1, 1, 1), Leg(WALLETD, sign), anchor, others, goals)


def test_headline_only_runs_subject_and_anchor() -> None:
    scenarios = [SCENARIOS["sequential"], SCENARIOS["pipelined"]]
    assert servers_for(scenarios, headline_only=True) == [WALLETD, TRIO_STREAM, ASYNCIO]
    every = servers_for(scenarios)
    assert set(every) == {WALLETD, REFERENCE, TRIO_STREAM, TRIO_SOCKET, ASYNCIO}


# --- paired ratios -------------------------------------------------------------------------------


def test_ratios_pair_repetitions_and_skip_failed_ones() -> None:
    result = result_for(
        "sequential",
        {
            WALLETD: [m(WALLETD, 100), m(WALLETD, 90), None, m(WALLETD, 120)],
            TRIO_STREAM: [m(TRIO_STREAM, 200), None, m(TRIO_STREAM, 100), m(TRIO_STREAM, 100)],
        },
    )
    # Repetition 2 lost the anchor, repetition 3 the subject: only 1 and 4 pair up.
    assert result.ratios(TRIO_STREAM) == [0.5, 1.2]
    assert result.headline_ratio() == pytest.approx(0.85)
    assert result.errors == {TRIO_STREAM: ["boom"], WALLETD: ["boom"]}


def test_the_median_of_paired_ratios_is_not_the_ratio_of_medians() -> None:
    # A slow repetition that slowed both sides does not move a paired ratio.
    result = result_for(
        "sequential",
        {
            WALLETD: [m(WALLETD, 100), m(WALLETD, 50), m(WALLETD, 100)],
            TRIO_STREAM: [m(TRIO_STREAM, 100), m(TRIO_STREAM, 50), m(TRIO_STREAM, 200)],
        },
    )
    assert result.headline_ratio() == 1.0  # median of 1.0, 1.0, 0.5
    assert result.median(WALLETD, lambda x: x.rate) == 100


def test_goals_against_unplanned_legs_are_not_judged() -> None:
    scenario = SCENARIOS["sequential"]
    short = ScenarioResult(scenario, legs=(WALLETD, TRIO_STREAM))
    assert all(g.versus in (None, TRIO_STREAM) for g in short.goals())
    assert REFERENCE in {g.versus for g in result_for("sequential", {}).goals()}


# --- checks and table ----------------------------------------------------------------------------


def sequential_result(walletd: float, anchor: float, p50: float = 40.0) -> ScenarioResult:
    runs: dict[str, list[Measurement | None]] = {
        WALLETD: [m(WALLETD, walletd, p50=p50)],
        TRIO_STREAM: [m(TRIO_STREAM, anchor)],
        REFERENCE: [m(REFERENCE, walletd)],
        TRIO_SOCKET: [m(TRIO_SOCKET, walletd * 2)],
    }
    result = result_for("sequential", runs)
    result.unavailable[ASYNCIO] = "not started"
    return result


def test_checks_follow_the_goals() -> None:
    checks = build_checks({"sequential": sequential_result(90, 100, p50=45)}, None, 0)
    by_label = {c.label: c for c in checks if c.scenario == "sequential"}
    assert by_label["≥ 0.95x trio-stream"].met is False
    assert by_label["≥ 0.95x trio-stream"].headline
    assert by_label["p50 ≤ 1.1x trio-stream"].value == pytest.approx(45 / 40)
    assert by_label["p50 ≤ 1.1x trio-stream"].met is False
    assert by_label["≥ 0.9x reference"].met is True


def test_table_bolds_the_anchor_and_marks_what_did_not_run() -> None:
    results = {"sequential": sequential_result(95, 100)}
    table = render_table(results, build_checks(results, None, 0), None, "skipped", 0)
    header, _, row = table.splitlines()[:3]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|")), strict=True))
    assert cells["vs trio-stream"] == "**0.95**"
    assert cells["vs reference"] == "1.00"
    assert cells["vs trio-socket"] == "0.50"
    assert cells["vs asyncio"] == "n/a"
    assert cells["anchor rate"] == "100 (trio-stream)"
    assert cells["met?"] == "yes"


def test_a_missing_subject_says_why() -> None:
    result = result_for("sequential", {})
    result.unavailable[WALLETD] = "walletd --help exited 1"
    table = render_table({"sequential": result}, [], None, "", 0)
    assert "not available (walletd --help exited 1)" in table


# --- the run plan --------------------------------------------------------------------------------


def test_plan_interleaves_and_alternates_which_side_goes_first() -> None:
    running = {WALLETD, TRIO_STREAM, REFERENCE, ASYNCIO}  # trio-socket did not start
    steps = plan([SCENARIOS["sequential"], SCENARIOS["pipelined"]], 2, False, running)
    order = [(rep, s.key, leg.server) for rep, s, leg in steps]
    seq = [WALLETD, TRIO_STREAM, REFERENCE, ASYNCIO]
    pipe = [WALLETD, ASYNCIO, REFERENCE, TRIO_STREAM]
    assert order == (
        [(0, "sequential", s) for s in seq]
        + [(0, "pipelined", s) for s in pipe]
        + [(1, "sequential", s) for s in reversed(seq)]
        + [(1, "pipelined", s) for s in reversed(pipe)]
    )
