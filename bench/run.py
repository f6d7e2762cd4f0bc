"""The interleaved run: start what the scenarios need, then, repetition by repetition, measure
every leg of every scenario back to back.

Slow drift and noise from other processes (the bench machine is shared) then hit every server
alike within a repetition, and ratios are taken per repetition (``bench.results``). Odd
repetitions run a scenario's legs in reverse order: the subject and its anchor stay adjacent,
and neither is always the one measured first.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from bench.harness import measure
from bench.results import ScenarioResult
from bench.scenarios import SERVERS, Leg, Scenario, StartContext, servers_for
from bench.servers import Server
from bench.wire import BenchError, Workload

Progress = Callable[[str], None]


@dataclass
class Lineup:
    """The servers that started, and why the others did not."""

    running: dict[str, Server] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        # A view shares its server's process: stop each process once.
        for server in {id(s.process): s for s in self.running.values()}.values():
            server.stop()


def start_lineup(
    names: list[str], ctx: StartContext, progress: Progress, excluded: dict[str, str]
) -> Lineup:
    """Start ``names`` (minus ``excluded``: name -> reason); a failure becomes a reason."""
    lineup = Lineup(unavailable=dict(excluded))
    try:
        for name in names:
            if name in excluded:
                continue
            spec = SERVERS[name]
            if spec.view_of is not None and spec.view_of not in lineup.running:
                lineup.unavailable[name] = f"{spec.view_of} is not running"
                continue
            progress(f"starting {name}: {spec.title}")
            try:
                lineup.running[name] = ctx.running[name] = spec.start(ctx)
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                lineup.unavailable[name] = first
                progress(f"{name} not available: {first}")
    except BaseException:
        lineup.stop()
        raise
    return lineup


def plan(
    scenarios: list[Scenario], reps: int, headline_only: bool, running: Collection[str]
) -> list[tuple[int, Scenario, Leg]]:
    """Every measurement of the run, in the order it is made, on the servers ``running``."""
    steps: list[tuple[int, Scenario, Leg]] = []
    for rep in range(reps):
        for scenario in scenarios:
            legs = [leg for leg in scenario.legs(headline_only) if leg.server in running]
            steps += [(rep, scenario, leg) for leg in (legs if rep % 2 == 0 else legs[::-1])]
    return steps


def run_interleaved(
    scenarios: list[Scenario],
    lineup: Lineup,
    reps: int,
    duration: float,
    progress: Progress,
    headline_only: bool = False,
) -> dict[str, ScenarioResult]:
    results = {
        s.key: ScenarioResult(
            s,
            legs=tuple(leg.server for leg in s.legs(headline_only)),
            unavailable={
                leg.server: lineup.unavailable[leg.server]
                for leg in s.legs(headline_only)
                if leg.server in lineup.unavailable
            },
        )
        for s in scenarios
    }
    steps = plan(scenarios, reps, headline_only, lineup.running)
    workloads: dict[tuple[str, str], Workload] = {}  # built once per run: frames are random
    started = time.perf_counter()
    for done, (rep, scenario, leg) in enumerate(steps, start=1):
        server = lineup.running[leg.server]
        key = (leg.server, scenario.key)
        result = results[scenario.key]
        where = f"[{done:3d}/{len(steps)}] rep {rep + 1}/{reps} {scenario.key:10s} {leg.server:11s}"
        try:
            if key not in workloads:
                workloads[key] = leg.workload(server)
            m = measure(server, scenario.shape, workloads[key], duration)
        except BenchError as exc:
            result.add(leg.server, None, str(exc))
            progress(f"{where} ERROR {str(exc).splitlines()[0]}")
            continue
        result.add(leg.server, m, None)
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (len(steps) - done)
        progress(
            f"{where} {m.rate:>11,.0f} {scenario.unit:5s} p50 {m.p50_us:6.0f} us "
            f"p99 {m.p99_us:6.0f} us  cpu client {m.client_cpu_pct:3.0f}% "
            f"server {m.server_cpu_pct:3.0f}% machine {m.machine_cpu_pct:3.0f}%  eta {eta:4.0f} s"
        )
    return results


def run_all(
    scenarios: list[Scenario],
    ctx: StartContext,
    reps: int,
    duration: float,
    progress: Progress,
    headline_only: bool = False,
    excluded: dict[str, str] | None = None,
) -> dict[str, ScenarioResult]:
    """Start the lineup the scenarios need, run them interleaved, stop every server."""
    names = servers_for(scenarios, headline_only)
    lineup = start_lineup(names, ctx, progress, excluded or {})
    try:
        return run_interleaved(scenarios, lineup, reps, duration, progress, headline_only)
    finally:
        lineup.stop()
