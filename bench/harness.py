"""One measurement: a scenario's client processes against one server, for one repetition.

The coordinator (this process) forks the client workers, meets them at a barrier once every
connection is open and has had one answer checked, then samples the server's CPU time over the
measurement window while the workers run. Client CPU comes from the workers' own
``process_time``; both are reported as % of one core so a reader can see which side was
saturated (the bench machine has 2 cores: client + server > ~190 % means the box was full).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from array import array
from dataclasses import asdict, dataclass
from typing import Any

from bench.client import WorkerResult, WorkerSpec, worker_main
from bench.servers import BENCH_USER, Server, cpu_seconds, machine_busy
from bench.wire import BenchError, Workload, batch_workload, sign_workload, ssh_sign_workload

_WORKER_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    processes: int
    connections: int  # per client process
    depth: int  # requests in flight per connection
    batch: int = 1  # messages per request; > 1 means sign_batch
    unit: str = "req/s"


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("sequential", "(a) sign, 1 conn, sequential", 1, 1, 1),
        Scenario("conn16", "(b) sign, 16 conns / 4 client procs", 4, 4, 1),
        Scenario("pipelined", "(c) sign, 1 conn, pipelined x64", 1, 1, 64),
        Scenario("batch", "(d) sign_batch 256 x 64 B, 1 conn", 1, 1, 1, batch=256, unit="sig/s"),
        Scenario("ssh", "(e) ssh-agent ed25519 sign, 1 conn, seq.", 1, 1, 1),
    )
}


@dataclass
class Measurement:
    target: str
    rate: float  # requests/s, or signatures/s for batch scenarios
    requests: int
    elapsed_s: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float
    client_cpu_pct: float
    server_cpu_pct: float
    machine_cpu_pct: float  # every process on the box, % of one core (noise from others shows here)
    server_cpu_us_per_request: float  # robust to noise: server CPU seconds / requests answered

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[int] | array[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 < q <= 1)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return int(sorted_values[rank - 1])


_workloads: dict[tuple[str, str], Workload] = {}


def workload_for(server: Server, scenario: Scenario) -> Workload:
    """The pre-encoded requests for this scenario on this server (built once per run)."""
    key = (server.name, scenario.key)
    if key not in _workloads:
        if server.protocol == "ssh":
            _workloads[key] = ssh_sign_workload(server.ssh_key_blob)
        elif scenario.batch > 1:
            _workloads[key] = batch_workload(BENCH_USER, scenario.batch)
        else:
            _workloads[key] = sign_workload(BENCH_USER)
    return _workloads[key]


def measure(server: Server, scenario: Scenario, duration: float) -> Measurement:
    """Run ``scenario`` against ``server`` for ``duration`` seconds; raise BenchError on failure."""
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} is not running (exit status {server.process.returncode})")
    ctx = multiprocessing.get_context("fork")  # the coordinator runs no threads: fork is safe
    barrier: threading.Barrier = ctx.Barrier(scenario.processes + 1)
    spec = WorkerSpec(
        server.socket_path,
        scenario.connections,
        scenario.depth,
        duration,
        workload_for(server, scenario),
    )
    pipes = []
    workers = []
    for _ in range(scenario.processes):
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=worker_main, args=(spec, barrier, sender), daemon=True)
        worker.start()
        sender.close()
        pipes.append(receiver)
        workers.append(worker)
    results: list[WorkerResult] = []
    try:
        cpu0 = t0 = 0.0
        try:
            barrier.wait(timeout=_WORKER_TIMEOUT)
            cpu0, t0, busy0 = cpu_seconds(server.pid), time.perf_counter(), machine_busy()
            time.sleep(duration)  # the measurement window: workers run on their own clocks
            cpu1, t1, busy1 = cpu_seconds(server.pid), time.perf_counter(), machine_busy()
        except threading.BrokenBarrierError:
            cpu1 = t1 = 0.0  # a worker failed before the start; its pipe says why
            busy0 = busy1 = (0.0, 0.0)
        for pipe in pipes:
            if not pipe.poll(_WORKER_TIMEOUT + duration):
                raise BenchError("a client worker did not report back")
            results.append(pipe.recv())
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for pipe in pipes:
            pipe.close()
    # A worker that failed first aborts the barrier; the others then fail with
    # BrokenBarrierError, which is not the news: report the root cause.
    errors = sorted((r.error for r in results if r.error), key=lambda e: "BrokenBarrier" in e)
    if errors:
        raise BenchError(errors[0])
    measurement = _summarise(server.name, scenario, results, cpu1 - cpu0, t1 - t0)
    busy, total = busy1[0] - busy0[0], busy1[1] - busy0[1]
    measurement.machine_cpu_pct = 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
    return measurement


def _summarise(
    name: str, scenario: Scenario, results: list[WorkerResult], server_cpu: float, window: float
) -> Measurement:
    latencies: array[int] = array("q")
    for result in results:
        latencies.frombytes(result.latencies_ns)
    ordered = sorted(latencies)
    requests = len(ordered)
    if not requests:
        raise BenchError("no request completed in the measurement window")
    rate = sum(r.completed / r.elapsed for r in results if r.elapsed > 0) * scenario.batch
    elapsed = max(r.elapsed for r in results)
    client_cpu = sum(r.cpu for r in results)
    return Measurement(
        target=name,
        rate=rate,
        requests=requests,
        elapsed_s=elapsed,
        p50_us=percentile(ordered, 0.50) / 1000,
        p90_us=percentile(ordered, 0.90) / 1000,
        p99_us=percentile(ordered, 0.99) / 1000,
        max_us=ordered[-1] / 1000,
        mean_us=sum(ordered) / requests / 1000,
        client_cpu_pct=100 * client_cpu / elapsed if elapsed else 0.0,
        server_cpu_pct=100 * server_cpu / window if window else 0.0,
        machine_cpu_pct=0.0,
        server_cpu_us_per_request=1e6 * server_cpu * (elapsed / window) / requests if window else 0,
    )
