"""``python -m bench`` (``make bench``): walletd against the reference server, interleaved.

Starts the reference server, walletd (``--ephemeral``) and, when installed, a private
ssh-agent; then for each repetition runs every scenario against the reference and walletd back
to back (A B A B ...), so slow drift and noise from other processes hit both alike. Prints a
markdown table of medians on stdout, progress on stderr, writes every repetition to
``bench/results/<UTC timestamp>.json`` and exits non-zero naming each missed target.

Exit codes: 0 every target met; 1 a target missed or could not be measured; 2 usage error.
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

from bench import servers
from bench.harness import SCENARIOS, Measurement, measure
from bench.report import (
    REFERENCE,
    SSH_AGENT,
    STARTUP_WALLETS,
    WALLETD,
    ScenarioResult,
    build_checks,
    render_table,
)
from bench.startup import run_startup_bench
from bench.wire import BenchError

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _env_quick() -> bool:
    return os.environ.get("WALLETD_BENCH_QUICK", "") not in ("", "0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    quick = _env_quick()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark walletd against a bare trio+msgspec reference server.",
        epilog="WALLETD_BENCH_QUICK=1 gives a smoke run: 1 repetition of 0.5 s, startup n=1000.",
    )
    parser.add_argument("--reps", type=int, default=1 if quick else 5, help="repetitions (5)")
    parser.add_argument(
        "--duration", type=float, default=0.5 if quick else 2.0, help="seconds per measurement (2)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--startup-wallets",
        type=int,
        default=1000 if quick else STARTUP_WALLETS,
        help=f"wallets for the startup bench ({STARTUP_WALLETS:,}); below that it is not checked",
    )
    parser.add_argument("--skip-startup", action="store_true", help="do not run the startup bench")
    parser.add_argument("--no-walletd", action="store_true", help="measure the reference only")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where JSON goes")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    args.scenario_keys = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenario_keys if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.reps < 1 or args.duration <= 0:
        parser.error("--reps must be >= 1 and --duration > 0")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_servers(
    workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, servers.Server], str | None, str | None]:
    """Reference always; walletd and ssh-agent when possible. Returns (servers, why-not x2)."""
    started = {REFERENCE: servers.start_reference(workdir)}
    walletd_note: str | None = "disabled by --no-walletd" if args.no_walletd else None
    if walletd_note is None:
        walletd_note = servers.walletd_unavailable_reason()
    if walletd_note is None:
        try:
            started[WALLETD] = servers.start_walletd(workdir)
        except (BenchError, OSError) as exc:
            walletd_note = f"failed to start: {exc}"
    ssh_note: str | None = None
    if "ssh" in args.scenario_keys:
        if not Path("/usr/bin/ssh-agent").exists():
            ssh_note = "skipped: /usr/bin/ssh-agent not found"
        else:
            try:
                started[SSH_AGENT] = servers.start_ssh_agent(workdir)
            except (BenchError, OSError) as exc:
                ssh_note = f"skipped: {exc}"
    return started, walletd_note, ssh_note


def run_scenarios(
    running: dict[str, servers.Server], args: argparse.Namespace
) -> dict[str, ScenarioResult]:
    results = {key: ScenarioResult(SCENARIOS[key]) for key in args.scenario_keys}
    for rep in range(args.reps):
        for key, result in results.items():
            targets = [SSH_AGENT] if key == "ssh" else [REFERENCE, WALLETD]
            for target in targets:
                if target not in running:
                    continue
                try:
                    m = measure(running[target], result.scenario, args.duration)
                except BenchError as exc:
                    result.add(target, None, str(exc))
                    progress(f"rep {rep + 1}/{args.reps} {key:10s} {target:9s} ERROR {exc}")
                    continue
                result.add(target, m, None)
                progress(
                    f"rep {rep + 1}/{args.reps} {key:10s} {target:9s} "
                    f"{m.rate:>11,.0f} {result.scenario.unit:5s} p50 {m.p50_us:7.0f} us "
                    f"p99 {m.p99_us:7.0f} us  cpu client {m.client_cpu_pct:3.0f}% "
                    f"server {m.server_cpu_pct:3.0f}% machine {m.machine_cpu_pct:3.0f}%"
                )
    if "ssh" in results and SSH_AGENT not in running:
        del results["ssh"]
    return results


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


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="walletd-bench-"))
    running: dict[str, servers.Server] = {}
    try:
        running, walletd_note, ssh_note = start_servers(workdir, args)
        if walletd_note:
            progress(f"walletd not available: {walletd_note}")
        results = run_scenarios(running, args)
    finally:
        for server in running.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    startup, startup_note = run_startup(args)
    checks = build_checks(results, startup, args.startup_wallets)
    print(render_table(results, checks, startup, startup_note, args.startup_wallets, walletd_note))
    notes = _notes(results, walletd_note, ssh_note, startup_note, args)
    for note in notes:
        print(f"\n{note}")
    missed = [c.describe() for c in checks if c.met is False or (c.met is None and c.enforced)]
    missed += [
        f"{key} / {target}: {len(errors)} run(s) failed: {errors[-1].splitlines()[0]}"
        for key, result in results.items()
        for target, errors in result.errors.items()
    ]
    if missed:
        print("\n**Missed:**\n" + "\n".join(f"- {m}" for m in missed))
    if not args.no_json:
        document = {
            "started_at": started_at.isoformat(),
            "wall_s": round(time.perf_counter() - t0, 2),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
            },
            "config": {
                "reps": args.reps,
                "duration_s": args.duration,
                "scenarios": args.scenario_keys,
                "startup_wallets": args.startup_wallets,
            },
            "walletd_unavailable": walletd_note,
            "ssh_agent_note": ssh_note,
            "scenarios": {key: result.to_json() for key, result in results.items()},
            "startup": startup,
            "startup_note": startup_note,
            "targets": [
                {"name": c.name, "value": c.value, "limit": c.limit, "met": c.met} for c in checks
            ],
            "missed": missed,
            "notes": notes,
        }
        out = args.results_dir / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
        write_json(out, document)
        progress(f"results written to {out}")
    for miss in missed:
        progress(f"MISSED {miss}")
    if missed:
        return EXIT_MISSED
    progress("all targets met")
    return EXIT_OK


def cost(m: Measurement) -> float:
    return m.server_cpu_us_per_request


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _notes(
    results: dict[str, ScenarioResult],
    walletd_note: str | None,
    ssh_note: str | None,
    startup_note: str,
    args: argparse.Namespace,
) -> list[str]:
    notes = [
        f"Medians of {args.reps} repetition(s) x {args.duration:g} s, reference and walletd "
        "interleaved; cells with two figures are reference / walletd. CPU % is of one core "
        f"(this machine has {os.cpu_count()}); client CPU is all client processes together."
    ]
    if walletd_note:
        notes.append(f"walletd not available: {walletd_note}")
    if ssh_note:
        notes.append(f"ssh-agent: {ssh_note}")
    if startup_note:
        notes.append(f"startup: {startup_note}")
    machine = [
        m.machine_cpu_pct for r in results.values() for runs in r.runs.values() for m in runs if m
    ]
    if machine:
        busy = statistics.median(machine)
        notes.append(
            f"Whole-machine CPU during measurements: median {busy:.0f}% of "
            f"{100 * (os.cpu_count() or 1)}% (client + server + anything else running)."
        )
    per_request = [
        f"{r.scenario.key} {_num(r.median(REFERENCE, cost))} / {_num(r.median(WALLETD, cost))}"
        for r in results.values()
        if r.scenario.key != "ssh"
    ]
    if per_request:
        notes.append(
            "Server CPU µs per request, reference / walletd (less sensitive to noise than "
            "req/s): " + "; ".join(per_request) + "."
        )
    seq, ssh = results.get("sequential"), results.get("ssh")
    if seq and ssh:
        wd, agent = seq.median(WALLETD, lambda m: m.rate), ssh.median(SSH_AGENT, lambda m: m.rate)
        if wd and agent:
            notes.append(f"walletd sequential sign is {wd / agent:.1f}x ssh-agent's ed25519 sign.")
    return notes


if __name__ == "__main__":
    sys.exit(main())
