"""Backup floods (issue 12, item 7): one uid writes backup records as fast as it can, on as
many wallets as it likes, while another uid signs and lists its own (empty) backups.

Before the backup index every ``list_backups`` read and verified every file in the directory,
so the victim's listing grew with the attacker's flood (0.8 s after a large one); now it reads
only the victim's own files, and the attacker meets ``quota_exceeded`` at
``quotas.backups_per_wallet`` per wallet. The victim's p50/p99 quiet and under the flood, and
the daemon's peak RSS, are printed and recorded; asserted are only the things that must hold:
no victim request fails, the flood was refused at the quota, and the victim's listing under
the flood stays within a bound far below what a scan of every file costs.

Bounded in the suite (about 4 s of flood); ``WALLETD_SOAK=long`` floods for 30 s.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient

from ..support import DaemonProcess, call_as_nobody
from . import figures, flood_children
from .harness import rss_kib

pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.root]

FLOOD_SECONDS = 30.0 if figures.LONG_SOAK else 4.0
FLOODERS = 4  # connections (threads in the attacker's process), one wallet each
QUIET_SAMPLES = 200
#: Generous: a victim listing that read the attacker's files would take tens of ms at once.
LIST_P99_BOUND_MS = 50.0


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] * 1000 if ordered else 0.0


async def victim_round(client: AsyncWalletClient, sign: list[float], lists: list[float]) -> None:
    started = time.perf_counter()
    await client.sign_message("victim", b"payroll")
    sign.append(time.perf_counter() - started)
    started = time.perf_counter()
    listed = await client.list_backups("victim")
    lists.append(time.perf_counter() - started)
    assert list(listed) == []


async def test_backup_flood_does_not_slow_another_uids_listing(make_daemon: Any) -> None:
    daemon: DaemonProcess = make_daemon()
    daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    path = str(daemon.socket_path)
    backups = Path(daemon.state_dir) / "backups"
    rss_start = rss_kib(pid)
    quiet: tuple[list[float], list[float]] = ([], [])
    flood: tuple[list[float], list[float]] = ([], [])
    rss_peak = rss_start
    async with AsyncWalletClient(path, timeout=30) as victim:
        await victim.create_wallet("victim")
        for _ in range(QUIET_SAMPLES):
            await victim_round(victim, *quiet)
        outcome: dict[str, Any] = {}

        async def attacker() -> None:
            outcome.update(
                await trio.to_thread.run_sync(
                    lambda: call_as_nobody(
                        flood_children.backup_flood,
                        path,
                        str(FLOOD_SECONDS),
                        str(FLOODERS),
                        timeout=120,
                    )
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(attacker)
            # Measure from the moment the flood is visibly on (files appearing) until it ends.
            while not outcome and len(os.listdir(backups) if backups.exists() else []) < 50:
                await trio.sleep(0.01)
            while not outcome:
                await victim_round(victim, *flood)
                rss_peak = max(rss_peak, rss_kib(pid))
    rss_end = rss_kib(pid)
    files = len(os.listdir(backups))
    rows = {
        "flood (s) / attacker connections": f"{FLOOD_SECONDS:g} / {FLOODERS}",
        "attacker: created / quota_exceeded / other": (
            f"{outcome['created']} / {outcome['quota_exceeded']} / {outcome['other']}"
        ),
        "backup files at the end": files,
        "victim sign p50 / p99 (ms), quiet": f"{ms(quiet[0], 0.5):.2f} / {ms(quiet[0], 0.99):.2f}",
        "victim sign p50 / p99 (ms), flood": f"{ms(flood[0], 0.5):.2f} / {ms(flood[0], 0.99):.2f}",
        "victim list_backups p50 / p99 (ms), quiet": (
            f"{ms(quiet[1], 0.5):.2f} / {ms(quiet[1], 0.99):.2f}"
        ),
        "victim list_backups p50 / p99 (ms), flood": (
            f"{ms(flood[1], 0.5):.2f} / {ms(flood[1], 0.99):.2f} over {len(flood[1])}"
        ),
        "daemon RSS start / peak / end (MiB)": (
            f"{rss_start // 1024} / {rss_peak // 1024} / {rss_end // 1024}"
        ),
    }
    width = max(map(len, rows))
    print()
    for name, value in rows.items():
        print(f"{name.ljust(width)}  {value}")
    figures.record(
        "backup flood",
        cases=outcome["created"] + outcome["quota_exceeded"],
        errors=outcome["other"],
        p99_ms=round(ms(flood[0], 0.99), 2),
        rss_start_mib=rss_start // 1024,
        rss_end_mib=rss_end // 1024,
    )
    assert outcome["other"] == 0
    assert flood[1], "the flood ended before the victim could measure"
    assert ms(flood[1], 0.99) < LIST_P99_BOUND_MS, statistics.quantiles(flood[1], n=100)
    # The quota held: at most backups_per_wallet (1000) records per attacking wallet.
    assert outcome["created"] <= 1000 * FLOODERS
    assert files <= 1000 * FLOODERS
