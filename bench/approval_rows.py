"""The human-approval rows of the bench: signing under an approved lease, and the round trip
from a pending request to its signature after a person approves.

``walletd-lease`` is a ``walletd --ephemeral`` whose bench wallets' admin layers send every
``sign_message`` to ``review`` (rule ``bench-review``):

- on ``BENCH_USER`` an approver has granted :data:`LEASES` leases of scope ``uid`` (any
  process of the requesting uid: the bench's client workers are several processes), each of
  the most a lease may cover: :data:`LEASE_USES` signatures (10**6, the cap of both the wire's
  ``LeaseSpec.max_uses`` and ``[approvals] lease_max_uses``) for :data:`LEASE_TTL_S` (7 days,
  the cap of ``lease_ttl_s`` and ``lease_max_ttl_s``). Leases are used narrowest first, then
  oldest first, so they are spent one after the other: 3 x 10**6 signatures is 30 s at
  100k/s, more than a ``make bench`` run (5 x 2 s per leg) asks. A spent lease would turn the
  next requests into ``pending`` answers, which the warm-up check refuses as "malformed
  signature result" and the cap of 8 pending per uid turns into ``unavailable`` errors: the
  run fails loudly, it does not count pending answers as signatures;
- ``REVIEW_USER`` has the same rule and no lease: every request waits for a person
  (:func:`measure_round_trips`).

The approver is another uid: an approval is never decided by the uid that asked, admin or
not (docs/OPERATIONS.md, "Human approval"), and the bench's requests come from root. It is a
child forked from the bench that drops to ``nobody``, whose primary gid is the daemon's
``[approvals] approver_group``; the socket is group ``nobody``, mode 0660, in a directory of
its own that ``nobody`` may traverse. So this server needs root and a ``nobody`` account.

What the lease row measured first (0.05-0.11x plain walletd, ~200-270 us of server CPU per
leased request against ~20): a cProfile of the daemon put 86% of ``sign_message``'s time in
``walletd.ops.requester.read_requester``, which ``Review.handle`` calls for every request
the policy sends to review, before it looks for a lease: six ``/proc/PID`` reads, a
``readlink`` and ``printable`` over the whole command line. A lease lookup needs only the
uid, and for a process lease the pid's start time (one ``stat`` read); the full record is
for requests that wait for a person.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from bench import servers
from bench.latency import LatencyContext, Samples
from bench.servers import BENCH_USER, Server
from bench.wire import BenchError, call, create_wallet, recv_frame
from walletd_wire import (
    Approve,
    AwaitApproval,
    LeaseSpec,
    ListLeases,
    ListPending,
    Request,
    Response,
    SetSigningPolicy,
    SignMessage,
)
from walletd_wire.framing import encode_frame

REVIEW_USER = f"{BENCH_USER}-review"
RULE_ID = "bench-review"
REVIEW_RULES: list[dict[str, Any]] = [
    {
        "id": RULE_ID,
        "action": "review",
        "reason": "every bench signature needs a person",
        "match": {"ops": "sign_message"},
    }
]
LEASES = 3
LEASE_USES = 10**6
LEASE_TTL_S = 7 * 86_400.0
APPROVER_ACCOUNT = "nobody"

ROUND_TRIPS = 200  # measured per run, after WARM_UP that are not
WARM_UP = 10
WAIT_S = 30.0  # the requester's wait_s: far above a round trip, below max_wait_s
_CHILD_TIMEOUT_S = 120.0

_encoder = msgspec.msgpack.Encoder()
_decode_response = msgspec.msgpack.Decoder(Response).decode


class _Line:
    """One persistent connection: a request, its answer's result decoded (BenchError if not ok)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(_CHILD_TIMEOUT_S)
        self.sock.connect(path)
        self.next_id = 0

    def send(self, request: Request) -> None:
        self.sock.sendall(encode_frame(_encoder.encode(request)))

    def answer(self) -> dict[str, Any]:
        response = _decode_response(recv_frame(self.sock))
        if not response.ok:
            raise BenchError(f"request failed: {response.error}")
        result: dict[str, Any] = msgspec.msgpack.decode(response.result)
        return result

    def request(self, request: Request) -> dict[str, Any]:
        self.send(request)
        return self.answer()

    def ident(self) -> int:
        self.next_id += 1
        return self.next_id

    def close(self) -> None:
        self.sock.close()


# --- the approver: a child under another uid ------------------------------------------------


def approver_ids() -> tuple[int, int]:
    """(uid, gid) of the approver account; BenchError when this bench cannot switch to it."""
    if os.geteuid() != 0:
        raise BenchError("the approval rows need root: the approver is another uid")
    try:
        entry = pwd.getpwnam(APPROVER_ACCOUNT)
    except KeyError:
        raise BenchError(f"no {APPROVER_ACCOUNT!r} account for the approver") from None
    return entry.pw_uid, entry.pw_gid


def _child_main(target: Callable[..., Any], args: tuple[Any, ...], pipe: Connection) -> None:
    try:
        uid, gid = approver_ids()
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        pipe.send((True, target(*args)))
    except BaseException as exc:  # the parent decides; it gets the reason, not a hang
        pipe.send((False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
    pipe.close()


class Approver:
    """``target(*args)`` in a forked child running as the approver account."""

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        ctx = multiprocessing.get_context("fork")  # as bench.harness: no threads here
        self._pipe, sender = ctx.Pipe(duplex=False)
        self._child = ctx.Process(target=_child_main, args=(target, args, sender), daemon=True)
        self._child.start()
        sender.close()

    def result(self, timeout: float = _CHILD_TIMEOUT_S) -> Any:
        try:
            if not self._pipe.poll(timeout):
                raise BenchError("the approver did not report back")
            ok, value = self._pipe.recv()
        finally:
            self._child.join(timeout=10)
            if self._child.is_alive():
                self._child.kill()
                self._child.join()
            self._pipe.close()
        if not ok:
            raise BenchError(f"approver: {value}")
        return value


def _approve_with_leases(path: str, approval_ids: list[str]) -> int:
    line = _Line(path)
    try:
        lease = LeaseSpec(scope="uid", ttl_s=LEASE_TTL_S, max_uses=LEASE_USES)
        for approval_id in approval_ids:
            line.request(Approve(id=line.ident(), approval_id=approval_id, lease=lease))
    finally:
        line.close()
    return len(approval_ids)


def _approve_as_they_come(path: str, count: int) -> list[int]:
    """List pending requests back to back; approve each as soon as it shows. Returns the
    ``perf_counter_ns`` just before each ``approve`` was sent, in order."""
    line = _Line(path)
    sent: list[int] = []
    deadline = time.monotonic() + _CHILD_TIMEOUT_S
    try:
        while len(sent) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(sent)} of {count} requests showed up")
            pending = line.request(ListPending(id=line.ident()))["pending"]
            waiting = [
                p for p in pending if p["state"] == "pending" and p["user_id"] == REVIEW_USER
            ]
            if not waiting:
                continue
            request = Approve(id=line.ident(), approval_id=waiting[0]["approval_id"])
            sent.append(time.perf_counter_ns())
            line.request(request)
    finally:
        line.close()
    return sent


# --- the server -------------------------------------------------------------------------------


class _ApprovalServer(Server):
    """A Server whose socket lives in a directory of its own, removed when it stops."""

    socket_dir: str = ""

    def stop(self) -> None:
        super().stop()
        if self.socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def _config(workdir: Path, approver_gid: int) -> Path:
    path = workdir / "walletd-lease.toml"
    path.write_text(
        "[approvals]\n"
        f'approver_group = "{approver_gid}"\n'
        f"lease_max_uses = {LEASE_USES}\n"
        f"lease_max_ttl_s = {LEASE_TTL_S}\n"
        f"max_wait_s = {WAIT_S * 2}\n"
    )
    return path


def _set_admin_layer(path: str, user_id: str) -> None:
    call(
        path,
        SetSigningPolicy(
            id=1, user_id=user_id, layer="admin", rules=REVIEW_RULES, expected_version=0
        ),
    )


def _grant_leases(path: str) -> None:
    """Hold :data:`LEASES` requests, have the approver approve each with a lease, collect."""
    lines = [_Line(path) for _ in range(LEASES)]
    try:
        ids = []
        for line in lines:
            held = line.request(SignMessage(id=1, user_id=BENCH_USER, message=os.urandom(64)))
            if held.get("kind") != "pending":
                raise BenchError(f"{BENCH_USER} signed without review: the rule did not apply")
            ids.append(str(held["approval_id"]))
        Approver(_approve_with_leases, path, ids).result()
        for line, approval_id in zip(lines, ids, strict=True):
            signed = line.request(AwaitApproval(id=2, approval_id=approval_id, timeout_s=WAIT_S))
            if len(signed.get("signature") or b"") != 32:
                raise BenchError(f"approved request {approval_id} did not sign: {signed!r}")
        leases = lines[0].request(ListLeases(id=3))["leases"]
    finally:
        for line in lines:
            line.close()
    uses = sum(lease["uses_left"] for lease in leases if lease["user_id"] == BENCH_USER)
    if uses != LEASES * LEASE_USES:
        raise BenchError(f"the leases cover {uses} signatures, not {LEASES * LEASE_USES}")


def start_walletd_with_lease(workdir: Path, timeout: float = 30.0) -> Server:
    """The ``walletd-lease`` server (see the module docstring)."""
    reason = servers.walletd_unavailable_reason()
    if reason is not None:
        raise BenchError(reason)
    _, approver_gid = approver_ids()
    socket_dir = tempfile.mkdtemp(prefix="walletd-bench-approvals-")
    os.chmod(socket_dir, 0o711)  # the approver may reach the socket, not list the directory
    path = str(Path(socket_dir) / "walletd.sock")
    argv = [*servers.walletd_command(), "--config", str(_config(workdir, approver_gid))]
    argv += ["--ephemeral", "--socket", path, "--socket-mode", "0660"]
    argv += ["--socket-group", str(approver_gid), "--log-level", "warning"]
    process, log = servers._spawn("walletd-lease", argv, workdir)
    server = _ApprovalServer("walletd-lease", "walletd", path, process, log)
    server.socket_dir = socket_dir
    servers._ready_or_stop(server, timeout, create=True)
    try:
        create_wallet(path, REVIEW_USER)
        for user_id in (BENCH_USER, REVIEW_USER):
            _set_admin_layer(path, user_id)
        _grant_leases(path)
    except BaseException:
        server.stop()
        raise
    return server


# --- the round trip ---------------------------------------------------------------------------

APPROVE_TO_SIGNATURE = "approve→signature"
REQUEST_TO_SIGNATURE = "request→signature"


def measure_round_trips(ctx: LatencyContext) -> Samples:
    """:data:`ROUND_TRIPS` (+ :data:`WARM_UP`) sequential round trips on ``REVIEW_USER``.

    The requester (this process, root) sends ``sign_message(wait_s=30)`` and blocks; the
    approver child lists pending requests back to back and approves each as soon as it shows.
    ``approve→signature``: from just before the approver sends ``approve`` to the requester
    holding the signature (what a person waits for after clicking approve). And
    ``request→signature``: from the requester's send to the signature, with an approver that
    decides at once (the approval machinery's whole cost: hold, audit, listing, decision).
    """
    server = ctx.servers["walletd-lease"]
    total = WARM_UP + ROUND_TRIPS
    approver = Approver(_approve_as_they_come, server.socket_path, total)
    line = _Line(server.socket_path)
    sent_at, signed_at = [], []
    try:
        for i in range(total):
            request = SignMessage(
                id=i + 1, user_id=REVIEW_USER, message=os.urandom(64), wait_s=WAIT_S
            )
            frame = encode_frame(_encoder.encode(request))
            sent_at.append(time.perf_counter_ns())
            line.sock.sendall(frame)
            result = line.answer()
            signed_at.append(time.perf_counter_ns())
            if len(result.get("signature") or b"") != 32:
                raise BenchError(f"round trip {i}: no signature but {result.get('kind')!r}")
    finally:
        line.close()
    approved_at: list[int] = approver.result()
    trips = list(zip(sent_at, approved_at, signed_at, strict=True))[WARM_UP:]
    if any(not sent < approved < signed for sent, approved, signed in trips):
        raise BenchError("an approval was sent outside its request's round trip")
    return {
        APPROVE_TO_SIGNATURE: [signed - approved for _, approved, signed in trips],
        REQUEST_TO_SIGNATURE: [signed - sent for sent, _, signed in trips],
    }
