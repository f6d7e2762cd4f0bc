"""The bench's lease, 256-connection and latency rows: registry entries, figures, rendering.

The registry checks start nothing; the one ``slow`` + ``root`` test at the end starts the
``walletd-lease`` server for real (its approver is a child under ``nobody``) and checks that
a leased request signs and that a few review round trips pair up.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import msgspec
import pytest

from bench import approval_rows, mcp_stdio, policy_rows
from bench.__main__ import parse_args
from bench.latency import LatencyContext, LatencyResult, LatencyRow, Percentiles, table_row
from bench.latency_rows import LATENCY_ROWS
from bench.references import TRIO_SOCKET
from bench.report import render_table
from bench.run import start_lineup
from bench.scenarios import (
    SCENARIOS,
    SERVERS,
    WALLETD,
    WALLETD_LEASE,
    WALLETD_POLICY,
    Leg,
    Scenario,
    Shape,
    StartContext,
    servers_for,
)
from bench.servers import BENCH_USER
from bench.wire import BenchError, call, sign_workload
from walletd.config import load_config
from walletd_wire import CancelApproval, LeaseSpec, SignMessage

# --- the rate rows -------------------------------------------------------------------------------


def test_the_lease_row_compares_a_leased_wallet_with_plain_walletd() -> None:
    lease = SCENARIOS["lease"]
    assert lease.subject.server == WALLETD_LEASE and WALLETD_LEASE in SERVERS
    assert lease.anchor is not None and lease.anchor.server == WALLETD
    assert (lease.shape.processes, lease.shape.connections, lease.shape.depth) == (4, 4, 1)
    headline = lease.headline
    assert headline is not None
    assert (headline.versus, headline.limit, headline.at_least) == (WALLETD, 0.9, True)
    assert servers_for([lease]) == [WALLETD, WALLETD_LEASE]


def test_the_policy_rows_compare_wallets_of_one_walletd_process() -> None:
    for key, user_id in (
        ("policy-10", policy_rows.TEN_RULES_USER),
        ("policy-rolling", policy_rows.ROLLING_USER),
    ):
        row = SCENARIOS[key]
        assert row.subject.server == WALLETD_POLICY
        assert row.anchor is not None and row.anchor.server == WALLETD
        assert servers_for([row]) == [WALLETD, WALLETD_POLICY]
        workload = row.subject.workload(None)  # type: ignore[arg-type]  # uses no server
        first = msgspec.msgpack.decode(workload.frames[0][4:])  # after the length prefix
        assert (first["op"], first["user_id"]) == ("sign_message", user_id)
    assert SERVERS[WALLETD_POLICY].view_of == WALLETD
    # A row naming only the view still starts the process it views, first.
    alone = Scenario("x", "x", Shape(1, 1, 1), Leg(WALLETD_POLICY, lambda s: sign_workload("x")))
    assert servers_for([alone]) == [WALLETD, WALLETD_POLICY]


def test_a_view_whose_server_did_not_start_is_unavailable(tmp_path: Path) -> None:
    said: list[str] = []
    lineup = start_lineup(
        [WALLETD, WALLETD_POLICY],
        StartContext(tmp_path, tmp_path),
        said.append,
        excluded={WALLETD: "excluded here"},
    )
    assert lineup.running == {}
    assert lineup.unavailable == {
        WALLETD: "excluded here",
        WALLETD_POLICY: "walletd is not running",
    }
    assert said == []  # nothing was started


@pytest.mark.slow
def test_the_policy_view_is_the_walletd_process_with_policy_wallets(tmp_path: Path) -> None:
    lineup = start_lineup([WALLETD, WALLETD_POLICY], StartContext(tmp_path, tmp_path), print, {})
    try:
        plain, view = lineup.running[WALLETD], lineup.running[WALLETD_POLICY]
        assert view.pid == plain.pid and view.socket_path == plain.socket_path
        path = plain.socket_path
        for user_id in (policy_rows.TEN_RULES_USER, policy_rows.ROLLING_USER, BENCH_USER):
            signed = call(path, SignMessage(id=1, user_id=user_id, message=bytes(range(64))))
            assert len(signed["signature"]) == 32
        # The ten rules are in force on their wallet, and only there.
        with pytest.raises(BenchError, match="policy_denied"):
            call(path, SignMessage(id=2, user_id=policy_rows.TEN_RULES_USER, message=b"admin:x"))
        call(path, SignMessage(id=3, user_id=BENCH_USER, message=b"admin:x"))
    finally:
        lineup.stop()  # one process: stopped once, though two names share it
    assert plain.process.poll() is not None


def test_the_256_connection_row_has_a_loose_p99_ceiling_and_no_headline() -> None:
    row = SCENARIOS["conn256"]
    assert row.shape.processes * row.shape.connections == 256
    assert row.subject.server == WALLETD
    assert row.anchor is not None and row.anchor.server == TRIO_SOCKET
    assert row.headline is None  # the issue sets no target: nothing for the gate or chart
    (goal,) = row.goals
    assert (goal.metric, goal.versus, goal.at_least) == ("p99_us", None, False)


def test_the_leases_cover_a_long_run_within_the_daemons_caps(tmp_path: Path) -> None:
    # What the wire lets an approver ask for ...
    spec = {
        "scope": "uid",
        "ttl_s": approval_rows.LEASE_TTL_S,
        "max_uses": approval_rows.LEASE_USES,
    }
    msgspec.convert(spec, LeaseSpec)
    # ... what the daemon's config allows (the bench's config file, parsed as walletd does) ...
    config = load_config(str(approval_rows._config(tmp_path, 65534)), {})
    assert config.approvals.lease_max_uses == approval_rows.LEASE_USES
    assert config.approvals.lease_max_ttl_s == approval_rows.LEASE_TTL_S
    assert config.approvals.approver_group == "65534"
    assert config.approvals.max_wait_s >= approval_rows.WAIT_S
    # ... and enough for 30 s of 100k signatures/s, three times a default run's 5 x 2 s.
    assert approval_rows.LEASES * approval_rows.LEASE_USES >= 30 * 100_000


# --- the latency rows ----------------------------------------------------------------------------


def test_latency_rows_name_registered_servers_and_do_not_shadow_scenarios() -> None:
    assert set(LATENCY_ROWS) == {"approval-rtt", "mcp"}
    assert not set(LATENCY_ROWS) & set(SCENARIOS)
    for row in LATENCY_ROWS.values():
        assert all(name in SERVERS for name in row.servers), row.key
    assert LATENCY_ROWS["approval-rtt"].servers == (WALLETD_LEASE,)
    assert LATENCY_ROWS["approval-rtt"].series[0] == approval_rows.APPROVE_TO_SIGNATURE
    assert LATENCY_ROWS["mcp"].servers == (WALLETD,)
    assert LATENCY_ROWS["mcp"].series == ("mcp", "direct+purpose", "direct")


def test_a_latency_row_needs_distinct_series() -> None:
    with pytest.raises(ValueError, match="each once"):
        LatencyRow("x", "x", (WALLETD,), ("a", "a"), lambda ctx: {})


def test_percentiles_are_nearest_rank_in_microseconds() -> None:
    stats = Percentiles.of([n * 1000 for n in range(100, 0, -1)])  # 1..100 µs, unsorted
    assert stats is not None
    assert (stats.count, stats.p50_us, stats.p90_us, stats.p99_us, stats.max_us) == (
        100,
        50.0,
        90.0,
        99.0,
        100.0,
    )
    assert stats.mean_us == pytest.approx(50.5)
    assert Percentiles.of([]) is None


def _rtt(samples: dict[str, list[int]]) -> LatencyResult:
    return LatencyResult(LATENCY_ROWS["approval-rtt"], samples=samples)


def test_a_latency_row_fills_the_tables_p50_and_p99_columns() -> None:
    result = _rtt(
        {
            approval_rows.APPROVE_TO_SIGNATURE: [500_000] * 99 + [900_000],
            approval_rows.REQUEST_TO_SIGNATURE: [800_000] * 100,
        }
    )
    table = render_table({}, [], None, "skipped", 0, {"approval-rtt": result})
    header, _, row = table.splitlines()[:3]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|")), strict=True))
    assert cells["target"] == "— (reported)"
    assert cells["subject rate"] == "100 round trips"
    assert cells["anchor rate"] == approval_rows.REQUEST_TO_SIGNATURE
    assert (cells["p50 µs"], cells["p99 µs"]) == ("500 / 800", "500 / 800")
    assert cells["met?"] == "—"
    assert result.to_json()["series"][approval_rows.APPROVE_TO_SIGNATURE]["max_us"] == 900.0


def test_a_latency_row_that_could_not_run_says_why() -> None:
    result = LatencyResult(LATENCY_ROWS["mcp"], unavailable="the mcp extra is not installed")
    cells = table_row(result, 12)
    assert len(cells) == 12
    assert cells[2] == "not available (the mcp extra is not installed)"
    assert result.to_json()["series"] == {"mcp": None, "direct+purpose": None, "direct": None}


def test_scenarios_take_latency_row_keys_and_the_gate_runs_none() -> None:
    args = parse_args(["--scenarios", "lease,mcp,conn256"])
    assert (args.scenario_keys, args.latency_keys) == (["lease", "conn256"], ["mcp"])
    assert parse_args([]).latency_keys == list(LATENCY_ROWS)
    assert parse_args(["--check"]).latency_keys == []


def test_mcp_row_is_skipped_only_without_the_extra() -> None:
    import importlib.util

    reason = mcp_stdio.mcp_unavailable()
    assert (reason is None) == (importlib.util.find_spec("mcp") is not None)


# --- the lease server, for real ------------------------------------------------------------------


def _has_nobody() -> bool:
    try:
        pwd.getpwnam(approval_rows.APPROVER_ACCOUNT)
    except KeyError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not _has_nobody(), reason="needs root and nobody")
def test_the_lease_server_signs_under_its_leases_and_pairs_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SERVERS[WALLETD_LEASE].start(StartContext(tmp_path, tmp_path))
    try:
        signed = call(server.socket_path, SignMessage(id=1, user_id=BENCH_USER, message=b"x"))
        assert len(signed["signature"]) == 32  # under the lease: no pending answer
        held = call(
            server.socket_path,
            SignMessage(id=2, user_id=approval_rows.REVIEW_USER, message=b"x"),
        )
        assert held["kind"] == "pending"  # the review wallet has no lease
        # Withdrawn, so the approver below sees only the round trips' requests.
        call(server.socket_path, CancelApproval(id=3, approval_id=held["approval_id"]))
        monkeypatch.setattr(approval_rows, "ROUND_TRIPS", 5)
        monkeypatch.setattr(approval_rows, "WARM_UP", 1)
        ctx = LatencyContext({WALLETD_LEASE: server}, 1, 0.1, tmp_path, lambda _: None)
        samples = approval_rows.measure_round_trips(ctx)
    finally:
        server.stop()
    approve = samples[approval_rows.APPROVE_TO_SIGNATURE]
    whole = samples[approval_rows.REQUEST_TO_SIGNATURE]
    assert len(approve) == len(whole) == 5
    assert all(0 < a < w for a, w in zip(approve, whole, strict=True))


def test_a_row_has_no_ratio_against_its_own_subject() -> None:
    from bench.results import ScenarioResult

    from .test_bench_report import m

    lease, conn256 = SCENARIOS["lease"], SCENARIOS["conn256"]
    results = {
        "lease": ScenarioResult(lease, legs=(WALLETD_LEASE, WALLETD)),
        "conn256": ScenarioResult(conn256, legs=(WALLETD, TRIO_SOCKET)),
    }
    for server, rate in ((WALLETD_LEASE, 45.0), (WALLETD, 50.0)):
        results["lease"].add(server, m(server, rate), None)
    for server, rate in ((WALLETD, 40.0), (TRIO_SOCKET, 40.0)):
        results["conn256"].add(server, m(server, rate), None)
    table = render_table(results, [], None, "skipped", 0)
    header, _, lease_row, conn_row = table.splitlines()[:4]
    columns = [c.strip() for c in header.strip("|").split("|")]

    def cells(row: str) -> dict[str, str]:
        return dict(zip(columns, (c.strip() for c in row.strip("|").split("|")), strict=True))

    assert cells(lease_row)["vs walletd"] == "**0.90**"
    assert cells(conn_row)["vs walletd"] == ""  # walletd is conn256's subject
    assert cells(conn_row)["vs trio-socket"] == "**1.00**"


def test_a_row_that_cannot_run_here_starts_nothing(tmp_path: Path) -> None:
    from bench.latency_rows import run_latency_rows

    def never(ctx: LatencyContext) -> dict[str, list[int]]:
        raise AssertionError("measured a row that said it cannot run")

    row = LatencyRow("x", "x", (WALLETD,), ("a",), never, unavailable=lambda: "no extra")
    said: list[str] = []
    results = run_latency_rows([row], StartContext(tmp_path, tmp_path), 1, 0.1, said.append)
    assert results["x"].unavailable == "no extra"
    assert said == ["x: not measured: no extra"]  # and no "starting walletd"
