"""Protocol fuzzing against one long-running walletd process.

Each case (see wire.py) is a hostile byte stream sent as uid nobody (who owns one wallet and
none of the fingerprinted ones) on a fresh connection, on a connection reused across cases, or
one byte per send. walletd must answer exactly one response per complete frame, in order, with
an error code from the documented set (never ``internal``), answer an oversized prefix with
``frame_too_large`` and close, and stay healthy: after every case it still answers ``hello``
on a new connection, a connection opened before the case still answers, and the fingerprinted
state (root's wallets, their addresses, deterministic signatures of a fixed message, and no
audit record by anyone but the fuzzing uid) is unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallet_client import WalletClient

from ..support import HELLO, DaemonProcess
from . import figures
from .harness import (
    NOBODY_UID,
    effective_uid,
    raw_connect,
    read_responses,
    roundtrip,
    running_daemon,
    tracebacks,
)
from .wire import check_response, expected, streams

pytestmark = [pytest.mark.fuzz, pytest.mark.slow, pytest.mark.root]

MAX_FRAME = 16384
CASES = 5000 if figures.LONG_FUZZ else 300
ROOT_WALLETS = ["fp-0", "fp-1", "fp-2"]
FINGERPRINT_MESSAGE = b"walletd adversarial fingerprint"
TARGETS = [*ROOT_WALLETS, "nb-0"]


def connect_as_nobody(path: Path) -> socket.socket:
    with effective_uid(NOBODY_UID):
        return raw_connect(path)


@dataclass(repr=False)
class Target:
    daemon: DaemonProcess
    root: WalletClient
    bystander: socket.socket
    baseline: dict[str, Any]
    reused: socket.socket | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:  # what hypothesis prints with a failing case
        return f"Target(walletd pid {self.daemon.pid}, log {self.daemon.log_path})"

    def fingerprint(self) -> dict[str, Any]:
        wallets = self.root.list_wallets()
        return {
            "wallets": {u: wallets.get(u) for u in ROOT_WALLETS},
            "signatures": [self.root.sign_message(u, FINGERPRINT_MESSAGE) for u in ROOT_WALLETS],
        }


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with running_daemon("fuzz", max_frame_bytes=MAX_FRAME, frame_timeout=5.0) as daemon:
        root = WalletClient(daemon.socket_path, timeout=10)
        for user in ROOT_WALLETS:
            root.create_wallet(user)
        nobody = WalletClient(daemon.socket_path, timeout=10)
        with effective_uid(NOBODY_UID):
            nobody.create_wallet("nb-0")  # so that some fuzzed requests pass authorization
        nobody.close()
        bystander = raw_connect(daemon.socket_path)
        assert roundtrip(bystander)["ok"]
        t = Target(daemon, root, bystander, {})
        t.baseline = t.fingerprint()
        yield t
        bystander.close()
        root.close()


def send(sock: socket.socket, data: bytes, *, tiny: bool) -> bool:
    """Send ``data`` (one byte per send when ``tiny``); False if the daemon closed first."""
    try:
        if tiny:
            for i in range(min(len(data), 2048)):
                sock.send(data[i : i + 1])
            sock.sendall(data[2048:])
        else:
            sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def run_case(t: Target, data: bytes, delivery: str) -> list[str]:
    """Send one case and return what went wrong (empty when walletd behaved)."""
    exp = expected(data, MAX_FRAME)
    fresh = delivery != "reused" or t.reused is None
    sock = connect_as_nobody(t.daemon.socket_path) if fresh else t.reused
    assert sock is not None
    send(sock, data, tiny=delivery == "tiny")
    want = len(exp.frames) + (1 if exp.too_large else 0)
    responses, closed = read_responses(sock, want)
    wrong = []
    if len(responses) != want:
        wrong.append(f"{len(responses)} responses to {want} frames (closed={closed})")
    for payload, response in zip(exp.frames, responses, strict=False):
        if (problem := check_response(payload, response)) is not None:
            wrong.append(problem)
    if exp.too_large:
        if len(responses) == want:
            error = responses[-1].get("error") or {}
            if error.get("code") != "frame_too_large":
                wrong.append(f"oversized prefix answered with {responses[-1]!r:.200}")
        more, closed = read_responses(sock, 1)
        if more or not closed:
            wrong.append("the connection stayed open after frame_too_large")
    elif closed:
        wrong.append("the daemon closed a connection that sent only answerable frames")
    if delivery == "reused" and not (exp.too_large or exp.partial or closed):
        t.reused = sock
    else:
        sock.close()
        if sock is t.reused:
            t.reused = None
    return wrong


def healthy(t: Target, started: float) -> list[str]:
    wrong = []
    with contextlib.closing(raw_connect(t.daemon.socket_path)) as probe:
        if not roundtrip(probe, HELLO)["ok"]:
            wrong.append("a new connection was not answered")
    if not roundtrip(t.bystander, HELLO)["ok"]:
        wrong.append("a connection opened before the case was disturbed")
    if t.fingerprint() != t.baseline:
        wrong.append("the fingerprinted state changed")
    foreign = [r for r in t.root.audit_log(since=started) if r.actor_uid != NOBODY_UID]
    if foreign:
        wrong.append(f"audit records by others appeared: {[r.event for r in foreign]}")
    return wrong


@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    data=streams(TARGETS, MAX_FRAME),
    delivery=st.sampled_from(["fresh", "reused", "reused", "tiny"]),
)
def test_hostile_frames_leave_walletd_healthy(target: Target, data: bytes, delivery: str) -> None:
    started = time.time()
    if target.daemon.proc is None or target.daemon.proc.poll() is not None:
        figures.record("protocol fuzz", crashes=1)
        raise AssertionError("walletd is not running")
    wrong = run_case(target, data, delivery)
    figures.record("protocol fuzz", cases=1, errors=len(wrong))
    state = healthy(target, started)
    figures.record("protocol fuzz", mismatches=len(state))
    assert not wrong + state, f"{delivery} case of {len(data)} bytes: {wrong + state}"


def test_no_tracebacks_after_fuzzing(target: Target) -> None:
    # Runs after the cases above (same module, same daemon): a handled frame logs no exception.
    problems = tracebacks(target.daemon)
    figures.record("protocol fuzz", errors=len(problems), log_tracebacks=len(problems))
    assert not problems, problems[:3]
    assert target.root.audit_verify().ok
