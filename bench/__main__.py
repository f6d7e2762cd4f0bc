"""``python -m bench`` (``make bench``): walletd against independent references, interleaved.

Starts every server the selected scenarios need (walletd ``--ephemeral``, our own reference,
the shared references of ``../shared/bench-references/``, a private ssh-agent), then for each
repetition measures every leg of every scenario back to back (``bench.run``), so slow drift
and noise from other processes hit all of them alike. Prints a markdown table of medians on
stdout (headline: walletd against the scenario's anchor, in bold), progress on stderr, and
writes every repetition to ``bench/results/<UTC timestamp>.json`` and a chart of the headline
ratios against their targets to ``<same>.svg``.

``--check`` (``make bench-check``) runs the short gated configuration and compares the
headline ratios with ``bench/baseline.json`` (``bench.gate``); ``--write-baseline``
(``make bench-baseline``) runs the same configuration and rewrites that file.

Exit codes: 0 every target met (``--check``: the gate passed); 1 a target missed or not
measured (``--check``: a ratio regressed or could not be measured); 2 usage or baseline error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import gate
from bench.chart import chart_rows, render_svg
from bench.latency import notes as latency_notes
from bench.latency_rows import LATENCY_ROWS, run_latency_rows
from bench.references import references_dir
from bench.report import STARTUP_WALLETS, build_checks, render_table
from bench.results import PICK, ScenarioResult
from bench.run import run_all
from bench.scenarios import SCENARIOS, SERVERS, SSH_AGENT, WALLETD, StartContext
from bench.startup import run_startup_bench

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _env_quick() -> bool:
    return os.environ.get("WALLETD_BENCH_QUICK", "") not in ("", "0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark walletd against independent reference servers, interleaved.",
        epilog="WALLETD_BENCH_QUICK=1 gives a smoke run: 1 repetition of 0.5 s, startup n=1000.",
    )
    parser.add_argument("--reps", type=int, help="repetitions (5)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (2; gate 1)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of: {', '.join([*SCENARIOS, *LATENCY_ROWS])} "
        "(default all; gate: baseline's)",
    )
    parser.add_argument(
        "--startup-wallets",
        type=int,
        help=f"wallets for the startup bench ({STARTUP_WALLETS:,}); below that it is not checked",
    )
    parser.add_argument("--skip-startup", action="store_true", help="do not run the startup bench")
    parser.add_argument("--no-walletd", action="store_true", help="measure the references only")
    parser.add_argument(
        "--headline-only", action="store_true", help="run each scenario's subject and anchor only"
    )
    parser.add_argument(
        "--references", type=Path, help="the shared references' folder (../shared/bench-references)"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where JSON goes")
    parser.add_argument("--no-json", action="store_true", help="write neither JSON nor chart")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="gate headline ratios on the baseline")
    mode.add_argument("--write-baseline", action="store_true", help="rewrite the baseline")
    parser.add_argument("--baseline", type=Path, default=gate.BASELINE_PATH, help="its path")
    parser.add_argument("--baseline-note", default="", help="a note stored in a new baseline")
    args = parser.parse_args(argv)
    args.gated = args.check or args.write_baseline
    quick = _env_quick()
    if args.gated:  # the short configuration: headline legs only, no startup
        args.headline_only = args.skip_startup = True
    if args.reps is None:
        args.reps = gate.CHECK_REPS if args.gated else 1 if quick else 5
    if args.duration is None:
        args.duration = gate.CHECK_DURATION_S if args.gated else 0.5 if quick else 2.0
    if args.startup_wallets is None:
        args.startup_wallets = 1000 if quick else STARTUP_WALLETS
    if args.reps < 1 or args.duration <= 0:
        parser.error("--reps must be >= 1 and --duration > 0")
    args.latency_keys = [] if args.gated else list(LATENCY_ROWS)  # latency rows never gate
    if args.scenarios is not None:
        keys = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [s for s in keys if s not in SCENARIOS and s not in LATENCY_ROWS]
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)}")
        args.scenario_keys = [k for k in keys if k in SCENARIOS]
        args.latency_keys = [k for k in keys if k in LATENCY_ROWS]
    elif args.write_baseline:
        args.scenario_keys = [k for k, s in SCENARIOS.items() if s.headline is not None]
    else:
        args.scenario_keys = None if args.check else list(SCENARIOS)  # check: the baseline's
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_startup(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    if args.skip_startup:
        return None, "not measured (--skip-startup)"
    progress(f"startup bench with {args.startup_wallets:,} wallets ...")
    try:
        return run_startup_bench(args.startup_wallets), ""
    except NotImplementedError:
        return None, "not measured (bench/startup.py is a stub)"
    except Exception as exc:  # a broken startup bench must not hide the other results
        return None, f"error: {type(exc).__name__}: {exc}"


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _baseline_ratios(path: Path) -> dict[str, float] | None:
    """The committed baseline's ratios for the chart's markers; None when there is none."""
    try:
        entries, _ = gate.load_baseline(path)
    except gate.BaselineError:
        return None
    return {key: entry.ratio for key, entry in entries.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    baseline: dict[str, gate.BaselineEntry] = {}
    baseline_config: dict[str, Any] = {}
    if args.check:
        try:
            baseline, baseline_config = gate.load_baseline(args.baseline)
        except gate.BaselineError as exc:
            progress(f"bench-check: {exc}")
            return EXIT_USAGE
        if args.scenario_keys is None:
            args.scenario_keys = [k for k in baseline if k in SCENARIOS]
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="walletd-bench-"))
    excluded = {WALLETD: "disabled by --no-walletd"} if args.no_walletd else {}
    ctx = StartContext(workdir, references_dir(args.references))
    scenarios = [SCENARIOS[k] for k in args.scenario_keys]
    try:
        results = run_all(
            scenarios, ctx, args.reps, args.duration, progress, args.headline_only, excluded
        )
        rows = [LATENCY_ROWS[k] for k in args.latency_keys]
        latency = run_latency_rows(rows, ctx, args.reps, args.duration, progress, excluded)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    startup, startup_note = run_startup(args)
    checks = build_checks(results, startup, args.startup_wallets)
    print(render_table(results, checks, startup, startup_note, args.startup_wallets, latency))
    notes = _notes(results, startup_note, args) + latency_notes(latency)
    for note in notes:
        print(f"\n{note}")
    missed = [c.describe() for c in checks if c.met is False or (c.met is None and c.enforced)]
    missed += [
        f"{key} / {server}: {len(errors)} run(s) failed: {errors[-1].splitlines()[0]}"
        for key, result in results.items()
        for server, errors in result.errors.items()
    ]
    if missed:
        print("\nMissed (not gating with --check):" if args.gated else "\n**Missed:**")
        print("\n".join(f"- {m}" for m in missed))
    config = {
        "reps": args.reps,
        "duration_s": args.duration,
        "scenarios": args.scenario_keys,
        "latency_rows": args.latency_keys,
        "headline_only": args.headline_only,
        "startup_wallets": None if args.skip_startup else args.startup_wallets,
    }
    gate_rows = gate.compare(baseline, results) if args.check else []
    if gate_rows:
        print("\n**Regression gate** (headline ratio against bench/baseline.json):\n")
        print(gate.render_gate(gate_rows))
        drift = gate.config_drift(baseline_config, config)
        if drift:
            print(f"\n{drift}")
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    if not args.no_json:
        svg = render_svg(
            chart_rows(results, _baseline_ratios(args.baseline)),
            "walletd: headline ratios against their targets",
            f"{started_at:%Y-%m-%d %H:%M} UTC · medians of {args.reps} x {args.duration:g} s, "
            f"interleaved · {platform.node()} ({os.cpu_count()} CPUs)",
        )
        write_text(args.results_dir / f"{stamp}.svg", svg)
        document = {
            "started_at": started_at.isoformat(),
            "wall_s": round(time.perf_counter() - t0, 2),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
            },
            "config": config,
            "servers": {name: spec.title for name, spec in SERVERS.items()},
            "references_dir": str(ctx.references),
            "scenarios": {key: result.to_json() for key, result in results.items()},
            "latency": {key: result.to_json() for key, result in latency.items()},
            "startup": startup,
            "startup_note": startup_note,
            "targets": [
                {"name": c.name, "value": c.value, "limit": c.limit, "met": c.met} for c in checks
            ],
            "missed": missed,
            "gate": [
                {
                    "scenario": r.scenario,
                    "versus": r.versus,
                    "baseline": r.baseline,
                    "now": r.now,
                    "passed": r.passed,
                    "reason": r.reason,
                }
                for r in gate_rows
            ],
            "notes": notes,
        }
        write_text(args.results_dir / f"{stamp}.json", json.dumps(document, indent=2) + "\n")
        progress(f"results written to {args.results_dir / stamp}.json and .svg")
    if args.write_baseline:
        return _write_baseline(args, results, config, started_at)
    if args.check:
        failed = [r for r in gate_rows if not r.passed]
        for row in failed:
            now = "not measured" if row.now is None else f"{row.now:.3f}"
            progress(f"REGRESSED {row.scenario} vs {row.versus}: {now} (floor {row.floor:.3f})")
        wall = time.perf_counter() - t0
        progress(f"bench-check: {'FAILED' if failed else 'passed'} in {wall:.0f} s")
        return EXIT_MISSED if failed else EXIT_OK
    for miss in missed:
        progress(f"MISSED {miss}")
    if missed:
        return EXIT_MISSED
    progress("all targets met")
    return EXIT_OK


def _write_baseline(
    args: argparse.Namespace,
    results: dict[str, ScenarioResult],
    config: dict[str, Any],
    started_at: dt.datetime,
) -> int:
    document = gate.baseline_document(
        results, config, started_at.isoformat(), args.baseline_note or "make bench-baseline"
    )
    unmeasured = [
        k for k, r in results.items() if r.scenario.headline and k not in document["ratios"]
    ]
    if unmeasured:
        progress(f"baseline NOT written: no headline ratio for {', '.join(unmeasured)}")
        return EXIT_MISSED
    gate.write_baseline(args.baseline, document)
    progress(f"baseline written to {args.baseline}")
    return EXIT_OK


def _notes(
    results: dict[str, ScenarioResult], startup_note: str, args: argparse.Namespace
) -> list[str]:
    used = {server for r in results.values() for server in r.legs}
    notes = [
        f"Medians of {args.reps} repetition(s) x {args.duration:g} s, every leg interleaved. "
        "Ratio columns are subject/that server, median of per-repetition ratios; the anchor's "
        "(the headline) is in bold. Cells with two figures are subject / anchor. CPU % is of "
        f"one core (this machine has {os.cpu_count()}); client CPU is all client processes.",
        "Servers: " + "; ".join(f"{n} = {s.title}" for n, s in SERVERS.items() if n in used) + ".",
    ]
    unavailable = {s: why for r in results.values() for s, why in r.unavailable.items()}
    notes += [f"{server} not available: {why}" for server, why in unavailable.items()]
    if startup_note:
        notes.append(f"startup: {startup_note}")
    machine = [
        m.machine_cpu_pct for r in results.values() for runs in r.runs.values() for m in runs if m
    ]
    if machine:
        notes.append(
            f"Whole-machine CPU during measurements: median {statistics.median(machine):.0f}% of "
            f"{100 * (os.cpu_count() or 1)}% (client + server + anything else running)."
        )
    seq, ssh = results.get("sequential"), results.get("ssh")
    if seq and ssh:
        wd, agent = seq.median(WALLETD, PICK["rate"]), ssh.median(SSH_AGENT, PICK["rate"])
        if wd and agent:
            notes.append(f"walletd sequential sign is {wd / agent:.1f}x ssh-agent's ed25519 sign.")
    return notes


if __name__ == "__main__":
    sys.exit(main())
