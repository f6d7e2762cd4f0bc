"""Load with hostile clients: well-behaved connections mixing every operation, while hostile
ones flood the connection limit, trickle frames (slow-loris), announce huge frames, pipeline
requests without ever reading the answers, and flood recovery attempts.

Bounded in the suite (64 well-behaved connections for ~5 s); ``WALLETD_SOAK=long`` runs 256
for 60 s. Asserted: no well-behaved request fails or gets a wrong answer, every hostile is
stopped by the limit meant for it (seen in the daemon's JSON log and in its answers), and the
daemon's RSS does not grow without bound. Latency is reported, never asserted (that is
``make bench``'s job).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import trio

from wallet_client import AsyncWalletClient, RitualStep, WalletError, hash_response
from walletd_wire.framing import FrameDecoder

from ..support import ROOT, DaemonProcess, request_frame
from ..support import length_prefix as prefix
from . import figures
from .harness import event_counts, rss_kib, tracebacks

pytestmark = [pytest.mark.soak, pytest.mark.slow]

if figures.LONG_SOAK:
    GOOD, DURATION = 256, 60.0
else:
    GOOD, DURATION = 64, 5.0
FLOOD_ALLOWANCE, FLOOD_EXCESS = 8, 8
LORIS, HUGE, NON_READERS, RECOVERY_FLOOD = 4, 2, 4, 4
HOSTILE_SLOTS = LORIS + HUGE + NON_READERS + RECOVERY_FLOOD
RSS_BOUND_KIB = 64 * 1024
FRAME_TIMEOUT = 2.0
WRITE_TIMEOUT = 2.0


@dataclass
class Tally:
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    hostile: Counter[str] = field(default_factory=Counter)
    rss_peak_kib: int = 0
    probe: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- well-behaved


async def well_behaved(path: str, user: str, stop: trio.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    async with AsyncWalletClient(path, timeout=30) as client:

        async def timed(coro: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await coro
            except WalletError as exc:
                tally.errors.append(f"{user}: {exc.code}: {exc.message}")
                return None
            tally.latencies.append(time.perf_counter() - started)
            tally.completed += 1
            return result

        signature = await timed(client.sign_message(user, b"first"))
        last = (b"first", signature)
        while not stop.is_set():
            roll = rng.random()
            if roll < 0.35:
                message = rng.randbytes(rng.randint(0, 64))
                signature = await timed(client.sign_message(user, message))
                last = (message, signature)
            elif roll < 0.50:
                if last[1] is None:
                    continue  # the signature failed (already counted as an error)
                if await timed(client.verify_signature(user, *last)) is False:
                    tally.errors.append(f"{user}: its own latest signature did not verify")
            elif roll < 0.58:
                items = await timed(client.sign_batch(user, [b"a", b"b", b"c", b"d"]))
                if items is not None:
                    pairs = [(m, i.signature) for m, i in zip([b"a", b"b", b"c", b"d"], items)]
                    if await timed(client.verify_batch(user, pairs)) != [True] * 4:
                        tally.errors.append(f"{user}: a batch it just signed did not verify")
            elif roll < 0.66:
                await timed(client.get_wallet_address(user))
            elif roll < 0.72:
                await timed(client.rotation_status(user))
            elif roll < 0.78:
                await timed(client.get_policy(user))
            elif roll < 0.83:
                await timed(client.hello())
            elif roll < 0.88:
                await timed(client.audit_log(user, limit=5))
            elif roll < 0.92:
                await timed(client.has_ritual(user))
            elif roll < 0.95:
                await timed(client.set_policy(user, max_signatures=rng.randint(1000, 5000)))
            elif roll < 0.975:
                await timed(client.rotate_keys(user, "soak"))
                if last[1] is not None and await timed(client.verify_signature(user, *last)):
                    tally.errors.append(f"{user}: a signature by the replaced key still verifies")
                last = (b"x", await timed(client.sign_message(user, b"x")))
            else:
                record = await timed(client.create_backup(user, {"soak": True}))
                if (
                    record is not None
                    and await timed(client.verify_backup(user, record["backup_id"])) is not True
                ):
                    tally.errors.append(f"{user}: a fresh backup did not verify as current")
            await trio.lowlevel.checkpoint()


# --------------------------------------------------------------------------- hostile


async def read_until_closed(stream: trio.SocketStream, timeout: float) -> tuple[bytes, bool]:
    """What the daemon sent, and whether it closed the connection within ``timeout``."""
    received = bytearray()
    with trio.move_on_after(timeout):
        while True:
            try:
                data = await stream.receive_some(1 << 16)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return bytes(received), True
            if not data:
                return bytes(received), True
            received += data
    return bytes(received), False


def error_codes(data: bytes) -> list[str]:
    decoder = FrameDecoder()
    decoder.feed(data)
    return [msgspec.msgpack.decode(f).get("error", {}).get("code", "ok") for f in decoder.frames()]


async def connection_flood(path: str, stop: trio.Event, tally: Tally) -> None:
    """(a) Bursts: open connections up to the limit and past it, hold the ones let in for a
    moment, let go, and again."""
    while not stop.is_set():
        held: list[trio.SocketStream] = []
        refused = 0
        try:
            for _ in range(FLOOD_ALLOWANCE + HOSTILE_SLOTS + FLOOD_EXCESS):
                if refused >= FLOOD_EXCESS:
                    break
                stream = await trio.open_unix_socket(path)
                # A refused connection gets one `unavailable` frame and is closed at once.
                data, closed = await read_until_closed(stream, 0.05)
                if closed:
                    codes = error_codes(data)
                    tally.hostile["flood refused: " + ",".join(codes)] += 1
                    refused += codes == ["unavailable"]
                    await stream.aclose()
                else:
                    held.append(stream)
            tally.hostile["flood held at most"] = max(
                tally.hostile["flood held at most"], len(held)
            )
            with trio.move_on_after(0.5):
                await stop.wait()
        finally:
            for stream in held:
                await stream.aclose()
        with trio.move_on_after(1.5):
            await stop.wait()


async def slow_loris(path: str, stop: trio.Event, tally: Tally) -> None:
    """(b) A valid frame, one byte per second: frame_timeout must end it."""
    frame = request_frame("hello")
    while not stop.is_set():
        stream = await trio.open_unix_socket(path)
        try:
            for i in range(len(frame)):
                await stream.send_all(frame[i : i + 1])
                data, closed = await read_until_closed(stream, 1.0)
                if closed:
                    tally.hostile["loris dropped"] += 1
                    if data:
                        tally.hostile["loris answered: " + ",".join(error_codes(data))] += 1
                    break
                if stop.is_set():
                    break
            else:
                tally.hostile["loris completed a frame (not dropped)"] += 1
        except (trio.BrokenResourceError, OSError):
            tally.hostile["loris dropped"] += 1
        finally:
            await stream.aclose()


async def huge_frames(path: str, stop: trio.Event, tally: Tally) -> None:
    """(c) Announce a 2 GiB frame: frame_too_large, then the connection closes."""
    while not stop.is_set():
        stream = await trio.open_unix_socket(path)
        try:
            with contextlib.suppress(trio.BrokenResourceError):
                # Refused at the limit, the daemon may close before this is sent: read anyway.
                await stream.send_all(prefix(2**31) + b"\x00" * 16)
            data, closed = await read_until_closed(stream, 10.0)
            codes = error_codes(data)
            tally.hostile[f"huge frame: {','.join(codes)}{'' if closed else ' (left open)'}"] += 1
        finally:
            await stream.aclose()
        await trio.sleep(0.02)  # pacing only: a few hundred per second is plenty


async def non_reader(path: str, stop: trio.Event, tally: Tally) -> None:
    """(d) Pipeline requests whose answers are large and never read them."""
    # list_wallets as an admin answers with every wallet: ~600 times the request's size.
    burst = request_frame("list_wallets") * ((1 << 16) // len(request_frame("list_wallets")))
    while not stop.is_set():
        stream = await trio.open_unix_socket(path)
        try:
            while not stop.is_set():
                with trio.move_on_after(1.0):
                    await stream.send_all(burst)
                    tally.hostile["non-reader bursts sent"] += 1
                    continue
                tally.hostile["non-reader blocked (daemon stopped reading)"] += 1
                await trio.sleep(0.5)  # back off before writing again, not a readiness wait
        except (trio.BrokenResourceError, OSError):
            tally.hostile["non-reader dropped"] += 1
        finally:
            await stream.aclose()


async def recovery_flood(path: str, user: str, stop: trio.Event, tally: Tally) -> None:
    """(e) Wrong answers as fast as they are taken; an admin resets the lockout each time."""
    async with AsyncWalletClient(path, timeout=60) as client:
        wrong = [hash_response("wrong")]
        while not stop.is_set():
            try:
                await client.initiate_recovery(user, wrong)
                tally.hostile["recovery attempts"] += 1
            except WalletError as exc:
                tally.hostile[f"recovery refused: {exc.code}"] += 1
                if exc.code == "locked":
                    await client.reset_attempts(user)


PROBE = """
import json, sys, time
from wallet_client import WalletClient
path, user, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
latencies, errors = [], 0
with WalletClient(path, timeout=30) as client:
    client.create_wallet(user)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            client.sign_message(user, b"probe")
        except Exception:
            errors += 1
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)  # pacing: a probe every 10 ms, not a readiness wait
latencies.sort()
print(json.dumps({"p50": latencies[len(latencies) // 2] * 1000,
                  "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
                  "n": len(latencies), "errors": errors}))
"""


async def probe(
    path: str, tally: Tally, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """One agent in its own process, signing every 10 ms: the latency an agent sees while the
    soak runs (the well-behaved clients share this test's event loop, so theirs include it).
    Started once it is connected, before the hostiles take the free connection slots."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", PROBE, path, "probe", str(DURATION)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        output = b""
        while b"\n" not in output:
            chunk = await proc.stdout.receive_some()
            assert chunk, "the probe agent exited before it was ready"
            output += chunk
        task_status.started()
        while chunk := await proc.stdout.receive_some():
            output += chunk
        assert await proc.wait() == 0, output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    tally.probe = json.loads(output.splitlines()[-1])


async def sample_rss(pid: int, stop: trio.Event, tally: Tally) -> None:
    while not stop.is_set():
        tally.rss_peak_kib = max(tally.rss_peak_kib, rss_kib(pid))
        await trio.sleep(0.25)  # the sampling interval


# --------------------------------------------------------------------------- the soak


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(0.99 * (len(ordered) - 1))] * 1000 if ordered else 0.0


async def test_soak_with_hostile_clients(make_daemon: Any) -> None:
    daemon: DaemonProcess = make_daemon(
        max_connections=GOOD + FLOOD_ALLOWANCE + HOSTILE_SLOTS,
        frame_timeout=FRAME_TIMEOUT,
        write_timeout=WRITE_TIMEOUT,
        scrypt_n=2**14,  # the production cost: a recovery flood must not starve signing
        counter_flush_interval=0.5,
    ).start()
    path = str(daemon.socket_path)
    users = [f"good-{i}" for i in range(GOOD)]
    targets = [f"ritual-{i}" for i in range(RECOVERY_FLOOD)]
    async with AsyncWalletClient(path, timeout=30) as setup:
        for user in users + targets:
            await setup.create_wallet(user)
        for user in targets:
            await setup.register_ritual(user, [RitualStep("q?", hash_response("right"))])
    rss_start = rss_kib(daemon.pid)
    tally = Tally()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        for i, user in enumerate(users):
            nursery.start_soon(well_behaved, path, user, stop, tally, i)
        with trio.fail_after(30):  # every well-behaved client is connected before the flood
            while tally.completed < GOOD:
                await trio.sleep(0.01)
        await nursery.start(probe, path, tally)
        nursery.start_soon(sample_rss, daemon.pid, stop, tally)
        nursery.start_soon(connection_flood, path, stop, tally)
        for _ in range(LORIS):
            nursery.start_soon(slow_loris, path, stop, tally)
        for _ in range(HUGE):
            nursery.start_soon(huge_frames, path, stop, tally)
        for _ in range(NON_READERS):
            nursery.start_soon(non_reader, path, stop, tally)
        for user in targets:
            nursery.start_soon(recovery_flood, path, user, stop, tally)
        await trio.sleep(DURATION)  # the soak's length is the point: it is not a readiness wait
        stop.set()
    assert tally.probe, "the probe agent reported nothing"
    rss_end = rss_kib(daemon.pid)
    timed_out = event_counts(daemon, "connection_timed_out")
    refused = event_counts(daemon, "connection_refused")
    problems = tracebacks(daemon)
    assert daemon.stop() == 0
    figures.record(
        "soak",
        cases=tally.completed,
        errors=len(tally.errors),
        crashes=len(problems),
        p99_ms=round(tally.probe["p99"], 1),  # the agent in its own process: the daemon's share
        rss_start_mib=rss_start / 1024,
        rss_end_mib=rss_end / 1024,
        rss_peak_mib=round(tally.rss_peak_kib / 1024, 1),
        probe_p50_ms=round(tally.probe["p50"], 1),
        in_process_clients_p99_ms=round(p99(tally.latencies), 1),
        connections=f"{GOOD}+hostile",
        seconds=DURATION,
    )
    for reason, count in sorted(timed_out.items()):
        figures.record("soak", **{f"timed_out[{reason}]": count})
    for reason, count in sorted(refused.items()):
        figures.record("soak", **{f"refused[{reason}]": count})
    for what, count in sorted(tally.hostile.items()):
        figures.record("soak hostiles", **{what.replace(" ", "_"): count})
    print_table(tally, rss_start, rss_end, timed_out, refused)
    assert not tally.errors, tally.errors[:10]
    assert not tally.probe["errors"], tally.probe
    assert not problems, problems[:3]
    # The flood saw its refusals; the daemon logs them rate-limited (one line per uid per
    # 10 s, with the count it suppressed), so the log holds at least one, not one each.
    assert tally.hostile["flood refused: unavailable"] >= FLOOD_EXCESS, tally.hostile
    assert refused["max_connections"] >= 1, refused
    assert timed_out["frame_timeout"] >= 1, timed_out
    assert tally.hostile["loris completed a frame (not dropped)"] == 0
    assert tally.hostile["huge frame: frame_too_large"] >= 1, tally.hostile
    assert not [k for k in tally.hostile if k.startswith("huge frame:") and "left open" in k]
    assert tally.hostile["recovery attempts"] >= 1
    assert tally.rss_peak_kib < rss_start + RSS_BOUND_KIB, (
        f"daemon RSS peaked at {tally.rss_peak_kib // 1024} MiB from {rss_start // 1024} MiB"
    )
    assert rss_end < rss_start + RSS_BOUND_KIB


def print_table(
    tally: Tally, rss_start: int, rss_end: int, timed_out: Counter[str], refused: Counter[str]
) -> None:
    rows = [
        ("well-behaved connections", GOOD),
        ("duration (s)", DURATION),
        ("requests completed", tally.completed),
        ("errors", len(tally.errors)),
        ("p99 latency (ms), clients in this process", f"{p99(tally.latencies):.1f}"),
        (
            "probe agent (own process): p50 / p99 (ms)",
            f"{tally.probe['p50']:.1f} / "
            f"{tally.probe['p99']:.1f} over {tally.probe['n']} signatures",
        ),
        (
            "daemon RSS start / peak / end (MiB)",
            f"{rss_start // 1024} / {tally.rss_peak_kib // 1024} / {rss_end // 1024}",
        ),
        *((f"log: connection_timed_out reason={r}", n) for r, n in sorted(timed_out.items())),
        *((f"log: connection_refused reason={r}", n) for r, n in sorted(refused.items())),
        *((f"hostile: {what}", n) for what, n in sorted(tally.hostile.items())),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


# --------------------------------------------------------------------------- regression


def test_pipelined_requests_do_not_buffer_answers_without_bound(make_daemon: Any) -> None:
    """Regression: walletd.connection.Connection._loop answers every frame of one read into one
    buffer before sending any of it. 64 KiB of pipelined audit_log requests (33 bytes each)
    from a client that never reads made the daemon build ~1,800 answers in memory (each the
    caller's whole audit trail, up to 100,000 records): hundreds of MiB from one write, and
    write_timeout never applies because the connection is busy, not writing."""
    daemon = make_daemon(write_timeout=WRITE_TIMEOUT).start()
    from wallet_client import WalletClient

    with WalletClient(daemon.socket_path, timeout=30) as client:
        client.create_wallet("trail")
        for _ in range(300):  # an audit trail of ~300 records (~100 KiB per answer)
            client.rotate_keys("trail")
    start = rss_kib(daemon.pid)
    frame = request_frame("audit_log", 1, user_id="trail", limit=10_000)
    peak = start
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.socket_path))
        sock.sendall(frame * ((1 << 16) // len(frame)))
        deadline = time.monotonic() + 30
        # Poll until the daemon gives up on us (write_timeout) or its memory passes the bound.
        while time.monotonic() < deadline and peak < start + RSS_BOUND_KIB:
            peak = max(peak, rss_kib(daemon.pid))
            if event_counts(daemon, "connection_timed_out")["write_timeout"]:
                break
            time.sleep(0.1)
    figures.record("pipelined non-reader", rss_start_mib=start / 1024, rss_end_mib=peak / 1024)
    assert peak < start + RSS_BOUND_KIB, f"RSS grew from {start >> 10} to {peak >> 10} MiB"
    assert event_counts(daemon, "connection_timed_out")["write_timeout"] == 1


async def test_recovery_flood_does_not_leave_scrypt_memory_behind(make_daemon: Any) -> None:
    """Regression: each scrypt check (n=2**14, r=8) allocates 16 MiB in a worker thread. glibc
    raises its mmap threshold after the first such block is freed, so later blocks come from
    per-thread arenas and are kept: after a flood of recovery attempts the daemon stayed
    ~150 MiB larger (~16 MiB per worker thread that ever hashed; 128 MiB per thread at
    n=2**17). Bounded by the thread count, but never given back."""
    daemon: DaemonProcess = make_daemon(scrypt_n=2**14, recovery_concurrency=8).start()
    path = str(daemon.socket_path)
    users = [f"flood-{i}" for i in range(8)]
    async with AsyncWalletClient(path, timeout=60) as setup:
        for user in users:
            await setup.create_wallet(user)
            await setup.register_ritual(user, [RitualStep("q?", hash_response("right"))])
    start = rss_kib(daemon.pid)
    attempts = 0

    async def flood(user: str) -> None:
        nonlocal attempts
        async with AsyncWalletClient(path, timeout=60) as client:
            for _ in range(12):
                try:
                    await client.initiate_recovery(user, [hash_response("wrong")])
                    attempts += 1
                except WalletError:
                    await client.reset_attempts(user)

    async with trio.open_nursery() as nursery:
        for user in users:
            nursery.start_soon(flood, user)
    end = rss_kib(daemon.pid)
    figures.record(
        "recovery flood", cases=attempts, rss_start_mib=start / 1024, rss_end_mib=end / 1024
    )
    assert end < start + RSS_BOUND_KIB, f"RSS {start >> 10} MiB before, {end >> 10} MiB after"


async def test_a_burst_of_async_clients_beyond_the_listen_backlog(make_daemon: Any) -> None:
    """Regression: walletd listens with a backlog of 128 (server.BACKLOG). When more clients
    connect at once (agents reconnecting after a restart), a non-blocking connect() on a Unix
    socket fails with EAGAIN; trio's connect treats that as "in progress" and hands back a
    socket that is not connected, so AsyncWalletClient's first request failed with
    DaemonUnavailableError "[Errno 107] Transport endpoint is not connected". A blocking
    connect (the sync client) just waits for the daemon to accept."""
    burst = 400
    daemon: DaemonProcess = make_daemon(max_connections=burst + 16).start()
    failures: list[str] = []

    async def one(i: int) -> None:
        async with AsyncWalletClient(str(daemon.socket_path), timeout=30) as client:
            try:
                await client.hello()
            except WalletError as exc:
                failures.append(exc.message)

    async with trio.open_nursery() as nursery:
        for i in range(burst):
            nursery.start_soon(one, i)
    figures.record("connect burst", cases=burst, errors=len(failures))
    assert not failures, f"{len(failures)} of {burst} failed, e.g. {failures[0]}"
