"""One measurement: a scenario's client processes against one server (one leg, one repetition).

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
from bench.scenarios import Shape
from bench.servers import Server, cpu_seconds, machine_busy
from bench.wire import BenchError, Workload

_WORKER_TIMEOUT = 120.0


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


def measure(server: Server, shape: Shape, workload: Workload, duration: float) -> Measurement:
    """Run ``shape`` x ``workload`` against ``server`` for ``duration`` s; BenchError on failure."""
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} is not running (exit status {server.process.returncode})")
    ctx = multiprocessing.get_context("fork")  # the coordinator runs no threads: fork is safe
    barrier: threading.Barrier = ctx.Barrier(shape.processes + 1)
    spec = WorkerSpec(server.socket_path, shape.connections, shape.depth, duration, workload)
    pipes = []
    workers = []
    for _ in range(shape.processes):
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
    items = workload.items_per_request
    measurement = _summarise(server.name, items, results, cpu1 - cpu0, t1 - t0)
    busy, total = busy1[0] - busy0[0], busy1[1] - busy0[1]
    measurement.machine_cpu_pct = 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
    return measurement


def _summarise(
    name: str, items: int, results: list[WorkerResult], server_cpu: float, window: float
) -> Measurement:
    latencies: array[int] = array("q")
    for result in results:
        latencies.frombytes(result.latencies_ns)
    ordered = sorted(latencies)
    requests = len(ordered)
    if not requests:
        raise BenchError("no request completed in the measurement window")
    rate = sum(r.completed / r.elapsed for r in results if r.elapsed > 0) * items
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
