"""One ``tools/call`` of ``wallet_sign_message`` over walletd-mcp's stdio, against direct calls.

``python -m bench.mcp_stdio [--seconds S]`` starts an ephemeral walletd and a walletd-mcp
child, and measures sequential round trips (p50 / p99, µs) of three legs, back to back:

- ``mcp``: a raw newline-delimited JSON-RPC ``tools/call`` on the child's pipes (the path an
  MCP host takes; every such signature carries a purpose, so it includes the audit commit);
- ``direct+purpose``: the blocking client's ``sign_message(..., purpose=...)``: the same
  daemon work, no MCP;
- ``direct``: ``sign_message`` without a purpose (the hot path, no commit).

The difference between the first two is what MCP (JSON, the SDK, a process hop) costs; the
difference between the last two is what recording a purpose costs. A short run (a few
seconds per leg) is the default, so it stays far under the suite's benchmark budget. It is
kept apart from ``bench.scenarios`` because the harness there speaks framed sockets only;
a stdio protocol for it is future work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.servers import BENCH_USER, start_walletd
from wallet_client import WalletClient


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


def _measure(call: Callable[[], object], seconds: float) -> list[float]:
    for _ in range(20):  # warm-up
        call()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(samples) < 200_000:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


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
            answer: dict[str, object] = json.loads(self.proc.stdout.readline())
            if answer.get("id") == self.next_id:
                return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(20)
        self.stderr.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_stdio")
    parser.add_argument("--seconds", type=float, default=3.0, help="per leg (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="walletd-bench-mcp-") as tmp:
        workdir = Path(tmp)
        server = start_walletd(workdir)
        child = _Child(server.socket_path, workdir)
        client = WalletClient(server.socket_path)
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
            legs: dict[str, Callable[[], object]] = {
                "mcp": lambda: child.request("tools/call", params),
                "direct+purpose": lambda: client.sign_message(BENCH_USER, message, purpose="b"),
                "direct": lambda: client.sign_message(BENCH_USER, message),
            }
            print(f"{'leg':<16} {'calls':>8} {'p50 µs':>9} {'p99 µs':>9}")
            for name, call in legs.items():
                samples = _measure(call, args.seconds)
                p50, p99 = _percentiles(samples)
                print(f"{name:<16} {len(samples):>8} {p50:>9.0f} {p99:>9.0f}")
        finally:
            client.close()
            child.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
