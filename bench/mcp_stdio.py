"""One ``tools/call`` of ``wallet_sign_message`` over walletd-mcp's stdio, against direct calls.

Measures sequential round trips (p50 / p99, µs) of three legs against one walletd:

- ``mcp``: a raw newline-delimited JSON-RPC ``tools/call`` on a walletd-mcp child's pipes
  (the path an MCP host takes; every such signature carries a purpose, so it includes the
  audit commit);
- ``direct+purpose``: the blocking client's ``sign_message(..., purpose=...)``: the same
  daemon work, no MCP;
- ``direct``: ``sign_message`` without a purpose (the hot path, no commit).

The difference between the first two is what MCP (JSON, the SDK, a process hop) costs; the
difference between the last two is what recording a purpose costs. The legs are interleaved:
each round runs every leg for its time budget, in alternating order, so drift hits all three.

In ``make bench`` this is the ``mcp`` latency row (``bench.latency_rows``), on the run's
walletd; ``python -m bench.mcp_stdio [--seconds S]`` runs it alone, on an ephemeral walletd of
its own. Both need the ``mcp`` extra (the child is ``python -m wallet_client.mcp.main``, whose
server is the MCP SDK); without it the row is a note.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.latency import LatencyContext, Percentiles, Samples
from bench.servers import BENCH_USER, start_walletd
from wallet_client import WalletClient

LEGS = ("mcp", "direct+purpose", "direct")
_WARM_UP = 20
_MAX_SAMPLES = 200_000


def mcp_unavailable() -> str | None:
    """None when walletd-mcp can start in this interpreter, else why not."""
    if importlib.util.find_spec("mcp") is None:
        return "the mcp extra is not installed (pip install -e '.[mcp]')"
    return None


def _measure(call: Callable[[], object], seconds: float, into: list[int]) -> None:
    end = time.perf_counter() + seconds
    clock = time.perf_counter_ns
    while time.perf_counter() < end and len(into) < _MAX_SAMPLES:
        start = clock()
        call()
        into.append(clock() - start)


class _Child:
    def __init__(self, socket: str, workdir: Path) -> None:
        argv = [sys.executable, "-m", "wallet_client.mcp.main", "--socket", socket]
        self.stderr = (workdir / "walletd-mcp.log").open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr
        )
        self.next_id = 0

    def request(self, method: str, params: dict[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("walletd-mcp closed its stdout (see walletd-mcp.log)")
            answer: dict[str, object] = json.loads(line)
            if answer.get("id") == self.next_id:
                return answer

    def sign(self, params: dict[str, object]) -> None:
        answer = self.request("tools/call", params)
        result = answer.get("result")
        if not isinstance(result, dict) or result.get("isError"):
            raise RuntimeError(f"tools/call failed: {str(answer)[:200]}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(20)
        self.stderr.close()


def measure_legs(socket_path: str, workdir: Path, rounds: int, seconds: float) -> Samples:
    """``rounds`` rounds of every leg for ``seconds`` each; round trips in ns per leg."""
    child = _Child(socket_path, workdir)
    client = WalletClient(socket_path)
    try:
        child.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        params: dict[str, object] = {
            "name": "wallet_sign_message",
            "arguments": {"user_id": BENCH_USER, "message": "x" * 64, "purpose": "bench"},
        }
        message = b"x" * 64
        calls: dict[str, Callable[[], object]] = {
            "mcp": lambda: child.sign(params),
            "direct+purpose": lambda: client.sign_message(BENCH_USER, message, purpose="b"),
            "direct": lambda: client.sign_message(BENCH_USER, message),
        }
        for call in calls.values():
            for _ in range(_WARM_UP):
                call()
        samples: Samples = {name: [] for name in LEGS}
        for round_ in range(rounds):
            order = LEGS if round_ % 2 == 0 else LEGS[::-1]
            for name in order:
                _measure(calls[name], seconds, samples[name])
        return samples
    finally:
        client.close()
        child.close()


def measure_mcp(ctx: LatencyContext) -> Samples:
    """The ``mcp`` latency row: the run's walletd, one round per repetition."""
    return measure_legs(ctx.servers["walletd"].socket_path, ctx.workdir, ctx.reps, ctx.duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_stdio")
    parser.add_argument("--seconds", type=float, default=3.0, help="per leg (default 3)")
    args = parser.parse_args(argv)
    reason = mcp_unavailable()
    if reason is not None:
        print(f"bench.mcp_stdio: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="walletd-bench-mcp-") as tmp:
        workdir = Path(tmp)
        server = start_walletd(workdir)
        try:
            samples = measure_legs(server.socket_path, workdir, 1, args.seconds)
        finally:
            server.stop()
    print(f"{'leg':<16} {'calls':>8} {'p50 µs':>9} {'p99 µs':>9}")
    for name in LEGS:
        stats = Percentiles.of(samples[name])
        if stats is not None:
            print(f"{name:<16} {stats.count:>8} {stats.p50_us:>9.0f} {stats.p99_us:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
