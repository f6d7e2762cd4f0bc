"""The latency rows of ``make bench`` (``bench.latency``) and the runner that measures them.

Rows (keys are accepted by ``--scenarios`` beside the rate scenarios'):

- ``approval-rtt``: a signature held for review, approved by another process as soon as it
  lists it (``bench.approval_rows``): approve → signature, and request → signature;
- ``mcp``: one ``tools/call`` of ``wallet_sign_message`` over walletd-mcp's stdio against
  the blocking client's ``sign_message`` with a purpose and without (``bench.mcp_stdio``).

They run after the rate scenarios, on servers started for them (the same specs, a fresh
process), and have no targets: the issue asks for their p50 / p99, reported.

Adding one: a ``measure(LatencyContext) -> {series: [ns, ...]}``, then one
``LatencyRow(...)`` in ``LATENCY_ROWS`` naming its servers and series, subject first.
"""

from __future__ import annotations

from bench import approval_rows, mcp_stdio
from bench.latency import LatencyContext, LatencyResult, LatencyRow
from bench.run import Progress, start_lineup
from bench.scenarios import WALLETD, WALLETD_LEASE, StartContext
from bench.wire import BenchError

LATENCY_ROWS: dict[str, LatencyRow] = {
    row.key: row
    for row in (
        LatencyRow(
            "approval-rtt",
            "(n) review → approve → signature, 1 conn, seq.: approve→sig / request→sig",
            (WALLETD_LEASE,),
            (approval_rows.APPROVE_TO_SIGNATURE, approval_rows.REQUEST_TO_SIGNATURE),
            approval_rows.measure_round_trips,
            note=(
                f"{approval_rows.ROUND_TRIPS} sequential round trips: the requester sends "
                "sign_message(wait_s=30) and blocks; an approver process (another uid) lists "
                "pending requests back to back and approves each as soon as it shows. "
                "approve→sig is from the approver sending approve to the requester holding "
                "the signature (how long after you click approve the agent has it); "
                "request→sig is the requester's whole wait with an instant approver."
            ),
        ),
        LatencyRow(
            "mcp",
            "(o) MCP tools/call wallet_sign_message over stdio, seq.: "
            "mcp / direct+purpose / direct",
            (WALLETD,),
            mcp_stdio.LEGS,
            mcp_stdio.measure_mcp,
            note=(
                "mcp is one JSON-RPC tools/call on walletd-mcp's pipes (always with a "
                "purpose); direct+purpose is the blocking client's sign_message with a "
                "purpose (the same daemon work); direct is sign_message without one. "
                "mcp minus direct+purpose is the bridge's cost."
            ),
            unavailable=mcp_stdio.mcp_unavailable,
        ),
    )
}


def run_latency_rows(
    rows: list[LatencyRow],
    ctx: StartContext,
    reps: int,
    duration: float,
    progress: Progress,
    excluded: dict[str, str] | None = None,
) -> dict[str, LatencyResult]:
    """Start the servers ``rows`` need, measure each row, stop them; failures become notes."""
    results = {row.key: LatencyResult(row) for row in rows}
    runnable = []
    for row in rows:
        reason = row.unavailable()
        if reason is None:
            runnable.append(row)
        else:
            results[row.key].unavailable = reason
            progress(f"{row.key}: not measured: {reason}")
    names = list(dict.fromkeys(name for row in runnable for name in row.servers))
    lineup = start_lineup(names, ctx, progress, excluded or {})
    try:
        for row in runnable:
            result = results[row.key]
            missing = [n for n in row.servers if n not in lineup.running]
            if missing:
                result.unavailable = "; ".join(
                    f"{n}: {lineup.unavailable.get(n, 'not started')}" for n in missing
                )
                continue
            progress(f"latency row {row.key} ...")
            latency_ctx = LatencyContext(
                servers={n: lineup.running[n] for n in row.servers},
                reps=reps,
                duration=duration,
                workdir=ctx.workdir,
                progress=progress,
            )
            try:
                result.samples = row.measure(latency_ctx)
            except (BenchError, OSError, RuntimeError) as exc:
                result.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                progress(f"latency row {row.key}: ERROR {result.error}")
                continue
            summary = []
            for name in row.series:
                stats = result.stats(name)
                if stats is not None:
                    summary.append(f"{name} p50 {stats.p50_us:,.0f} p99 {stats.p99_us:,.0f} us")
            progress(f"latency row {row.key}: " + "; ".join(summary))
    finally:
        lineup.stop()
    return results
