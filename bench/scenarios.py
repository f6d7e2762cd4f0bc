"""What ``make bench`` measures: the servers it can start and the scenarios (table rows) it runs.

A **scenario** is one row of the table. It names a client *shape* (processes x connections x
requests in flight), a *subject* leg (the server and workload being judged, usually walletd),
an *anchor* leg (the yardstick its headline ratio is taken against), optional further legs
shown in their own ratio columns, and its *goals*. Every leg of a scenario is measured in
every repetition, back to back with the others (see ``bench.run``), so ratios are taken
between measurements that saw the same noise.

A **goal** is a limit on one figure: absolute (``versus=None``: the subject's median) or
relative (``versus=<leg>``: the median of per-repetition subject/leg ratios). At most one goal
per scenario is the *headline*: a rate ratio against the anchor. Headline ratios are what the
chart draws and what ``make bench-check`` gates against ``bench/baseline.json``.

Adding a row (say, Ed25519 sign against ssh-agent):

1. a workload factory, ``Server -> Workload`` (pre-encoded frames; ``bench.wire`` has some);
2. a ``ServerSpec`` in ``SERVERS`` if the row needs a server that is not there yet (a walletd
   started with a policy file, say): a name and a ``start(StartContext) -> Server``. A row
   that compares two kinds of wallet rather than two daemons names a *view* (``view_of``):
   the same process, given more wallets, under another name;
3. one ``Scenario(...)`` in ``SCENARIOS``, with its anchor and goals.

Servers are started only when a selected scenario needs them; one that cannot start (no
ssh-agent, no shared references) turns its legs into notes, not into a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench import approval_rows, policy_rows, servers
from bench.references import ASYNCIO, SHARED, TRIO_SOCKET, TRIO_STREAM, start_shared
from bench.servers import BENCH_USER, Server
from bench.wire import BenchError, Workload, batch_workload, sign_workload, ssh_sign_workload

REFERENCE = "reference"  # bench/reference_server.py: our own ceiling, same I/O design
WALLETD = "walletd"
SSH_AGENT = "ssh-agent"
WALLETD_POLICY = "walletd-policy"  # a view of WALLETD: its wallets under signing policies
WALLETD_LEASE = "walletd-lease"  # bench.approval_rows: review rules, an approved lease

Metric = Literal["rate", "p50_us", "p99_us"]
WorkloadFactory = Callable[[Server], Workload]


@dataclass(frozen=True)
class StartContext:
    """What a server's start function may use: a private work directory, the shared folder."""

    workdir: Path
    references: Path
    # The servers started so far, by name: a view's start finds the server it views here.
    running: dict[str, Server] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    title: str  # what it is, for the notes under the table
    start: Callable[[StartContext], Server]
    # The server whose process this one is (started first, stopped once), given more
    # wallets. Why: two walletd processes doing the same work measure apart in one
    # interleaved run (3-5% in paired runs on the bench machine, once 14%), so a row that
    # compares two kinds of wallet in one process measures the wallets, not the processes.
    view_of: str | None = None


@dataclass(frozen=True)
class Shape:
    processes: int  # client processes
    connections: int  # connections per client process
    depth: int  # requests in flight per connection

    def describe(self) -> str:
        conns = self.processes * self.connections
        return f"{conns} conn{'s' if conns > 1 else ''}, depth {self.depth}"


@dataclass(frozen=True)
class Leg:
    server: str  # a key of SERVERS; unique within a scenario
    workload: WorkloadFactory


@dataclass(frozen=True)
class Goal:
    metric: Metric
    limit: float
    at_least: bool  # True: the figure must be >= limit; False: <= limit
    versus: str | None = None  # None: the subject's own figure; else subject / that leg
    headline: bool = False

    def describe(self) -> str:
        """The goal as the table's target column writes it: "≥ 0.95x trio-stream"."""
        op = "≥" if self.at_least else "≤"
        what = "" if self.metric == "rate" else f"{self.metric.removesuffix('_us')} "
        if self.versus is None:
            unit = "" if self.metric == "rate" else " µs"
            return f"{what or 'rate '}{op} {self.limit:,g}{unit}"
        return f"{what}{op} {self.limit:g}x {self.versus}"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    shape: Shape
    subject: Leg
    anchor: Leg | None = None
    others: tuple[Leg, ...] = ()
    goals: tuple[Goal, ...] = ()
    unit: str = "req/s"

    def __post_init__(self) -> None:
        names = [leg.server for leg in self.legs()]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario {self.key}: a server appears in two legs")
        heads = [g for g in self.goals if g.headline]
        anchor = self.anchor.server if self.anchor else None
        if len(heads) > 1 or any(g.versus != anchor or g.metric != "rate" for g in heads):
            raise ValueError(f"scenario {self.key}: the headline is one rate ratio vs the anchor")
        if any(g.versus is not None and g.versus not in names for g in self.goals):
            raise ValueError(f"scenario {self.key}: a goal is relative to a leg it does not run")

    def legs(self, headline_only: bool = False) -> tuple[Leg, ...]:
        """Subject first, then the anchor, then the others (dropped when ``headline_only``)."""
        anchor = (self.anchor,) if self.anchor else ()
        return (self.subject, *anchor, *(() if headline_only else self.others))

    @property
    def headline(self) -> Goal | None:
        return next((g for g in self.goals if g.headline), None)


# --- workloads --------------------------------------------------------------------------------


def sign(server: Server) -> Workload:
    """``sign_message`` of 64 bytes; checked against the key when the server's key is known."""
    return sign_workload(BENCH_USER, server.reference_key)


def sign_batch_256(server: Server) -> Workload:
    return batch_workload(BENCH_USER, 256)


def ssh_sign(server: Server) -> Workload:
    return ssh_sign_workload(server.ssh_key_blob)


# The public-key wallets walletd's bench server creates beside BENCH_USER (bench.servers).
def sign_ed25519(server: Server) -> Workload:
    return sign_workload(f"{BENCH_USER}-ed25519")


def sign_secp256k1(server: Server) -> Workload:
    """EIP-191 ``personal_sign``: sign_message on a secp256k1 wallet."""
    return sign_workload(f"{BENCH_USER}-secp256k1")


def sign_batch_256_ed25519(server: Server) -> Workload:
    return batch_workload(f"{BENCH_USER}-ed25519", 256)


def sign_ten_rules(server: Server) -> Workload:
    """``sign_message`` on the wallet with the 10-rule owner layer (bench.policy_rows)."""
    return sign_workload(policy_rows.TEN_RULES_USER)


def sign_rolling(server: Server) -> Workload:
    """``sign_message`` on the wallet with one rolling-window limit (bench.policy_rows)."""
    return sign_workload(policy_rows.ROLLING_USER)


# --- servers ----------------------------------------------------------------------------------


def _start_walletd(ctx: StartContext) -> Server:
    reason = servers.walletd_unavailable_reason()
    if reason is not None:
        raise BenchError(reason)
    return servers.start_walletd(ctx.workdir)


def _shared(name: str) -> ServerSpec:
    def start(ctx: StartContext) -> Server:
        return start_shared(name, ctx.workdir, ctx.references)

    return ServerSpec(name, f"{SHARED[name].title} (shared reference)", start)


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(WALLETD, "walletd --ephemeral", _start_walletd),
        ServerSpec(
            REFERENCE,
            "bench/reference_server.py (ours; walletd's I/O design)",
            lambda ctx: servers.start_reference(ctx.workdir),
        ),
        ServerSpec(
            SSH_AGENT,
            "OpenSSH ssh-agent, one ed25519 key",
            lambda ctx: servers.start_ssh_agent(ctx.workdir),
        ),
        _shared(TRIO_STREAM),
        _shared(TRIO_SOCKET),
        _shared(ASYNCIO),
        ServerSpec(
            WALLETD_POLICY,
            "the `walletd` process, given wallets with signing policies (bench/policy_rows.py)",
            lambda ctx: policy_rows.add_policy_wallets(ctx.running[WALLETD]),
            view_of=WALLETD,
        ),
        ServerSpec(
            WALLETD_LEASE,
            "walletd --ephemeral, bench wallets under review, `bench` with approved leases "
            "of scope uid (bench/approval_rows.py)",
            lambda ctx: approval_rows.start_walletd_with_lease(ctx.workdir),
        ),
    )
}


# --- scenarios --------------------------------------------------------------------------------

# Own-reference floor, kept from the first bench: walletd within 10% of our own ceiling.
OWN_RATIO_MIN = 0.9
# Issue 18: sequential sign >= 0.95x the trio SocketStream server's rate, p50 within 10%.
SEQUENTIAL_MIN = 0.95
SEQUENTIAL_P50_MAX = 1.10
# "Without losing the 16-connection or pipelined figures": measured 0.98-1.22 and 1.06-1.11
# against their anchors; the floor leaves room for noise below parity.
PARALLEL_MIN = 0.95
CONN16_P99_MAX_US = 1000.0
BATCH_MIN_SIGS = 300_000
# Issue 14: Ed25519 >= 15x ssh-agent's ed25519 rate (its ~520 us of server CPU per signature
# against OpenSSL's ~19 us), sequentially and at 16 connections; secp256k1 EIP-191 pipelined
# >= 10,000 sig/s; sign_batch of 256 Ed25519 messages >= 40,000 sig/s.
ED25519_VS_SSH_MIN = 15.0
SECP256K1_PIPELINED_MIN_SIGS = 10_000
ED25519_BATCH_MIN_SIGS = 40_000
# Issue 15: with a 10-rule owner layer (prefixes, a pattern, two limits) the 16-connection
# HMAC sign rate is >= 0.8x the no-policy rate in the same run; a rolling window alike.
POLICY_VS_NONE_MIN = 0.8
# Issue 18: a request signed under an approved lease >= 0.9x a plain one, 16 connections.
LEASE_VS_NONE_MIN = 0.9
# Issue 18 asks for signing p99 at 256 connections and sets no target. The ceiling is loose on
# purpose: a closed loop of 256 connections at depth 1 keeps ~256 requests queued on one
# event loop, so p50 is about 256 x the per-request cost (4.6-7.4 ms) and p99 a few
# scheduler slices more: 9-26 ms in short runs on the 2-core bench machine, walletd and
# trio-socket alike. Once, with other jobs holding both cores, walletd's p99 was 58 ms and its
# p50 15 us (trio-socket: 15 ms, 9 ms): its read-first loop then kept answering the few
# connections whose client was running and left the rest waiting. 100 ms is above that and
# catches a loop that starves some connections for a tenth of a second.
CONN256_P99_MAX_US = 100_000.0

_SIGN = Leg(WALLETD, sign)
_REF = Leg(REFERENCE, sign)
_STREAM, _RAW, _ASYNC = Leg(TRIO_STREAM, sign), Leg(TRIO_SOCKET, sign), Leg(ASYNCIO, sign)
_OWN = Goal("rate", OWN_RATIO_MIN, True, versus=REFERENCE)

SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "sequential",
            "(a) sign, 1 conn, sequential",
            Shape(1, 1, 1),
            _SIGN,
            anchor=_STREAM,
            others=(_REF, _RAW, _ASYNC),
            goals=(
                Goal("rate", SEQUENTIAL_MIN, True, versus=TRIO_STREAM, headline=True),
                Goal("p50_us", SEQUENTIAL_P50_MAX, False, versus=TRIO_STREAM),
                _OWN,
            ),
        ),
        Scenario(
            "conn16",
            "(b) sign, 16 conns / 4 client procs",
            Shape(4, 4, 1),
            _SIGN,
            anchor=_RAW,
            others=(_REF, _STREAM, _ASYNC),
            goals=(
                Goal("rate", PARALLEL_MIN, True, versus=TRIO_SOCKET, headline=True),
                Goal("p99_us", CONN16_P99_MAX_US, False),
                _OWN,
            ),
        ),
        Scenario(
            "pipelined",
            "(c) sign, 1 conn, pipelined x64",
            Shape(1, 1, 64),
            _SIGN,
            anchor=_ASYNC,
            others=(_REF, _STREAM, _RAW),
            goals=(Goal("rate", PARALLEL_MIN, True, versus=ASYNCIO, headline=True), _OWN),
        ),
        Scenario(
            "batch",
            "(d) sign_batch 256 x 64 B, 1 conn",
            Shape(1, 1, 1),
            Leg(WALLETD, sign_batch_256),
            # The shared references speak sign_message only: the batch row keeps our own.
            anchor=Leg(REFERENCE, sign_batch_256),
            goals=(Goal("rate", BATCH_MIN_SIGS, True),),
            unit="sig/s",
        ),
        Scenario(
            "ssh",
            "(e) ssh-agent ed25519 sign, 1 conn, seq.",
            Shape(1, 1, 1),
            Leg(SSH_AGENT, ssh_sign),
        ),
        Scenario(
            "ed25519",
            "(f) Ed25519 sign vs ssh-agent, 1 conn, seq.",
            Shape(1, 1, 1),
            Leg(WALLETD, sign_ed25519),
            anchor=Leg(SSH_AGENT, ssh_sign),
            goals=(Goal("rate", ED25519_VS_SSH_MIN, True, versus=SSH_AGENT, headline=True),),
        ),
        Scenario(
            "ed25519-16",
            "(g) Ed25519 sign vs ssh-agent, 16 conns / 4 procs",
            Shape(4, 4, 1),
            Leg(WALLETD, sign_ed25519),
            anchor=Leg(SSH_AGENT, ssh_sign),
            goals=(Goal("rate", ED25519_VS_SSH_MIN, True, versus=SSH_AGENT, headline=True),),
        ),
        Scenario(
            "secp256k1",
            "(h) secp256k1 EIP-191 sign, 1 conn, pipelined x64",
            Shape(1, 1, 64),
            Leg(WALLETD, sign_secp256k1),
            goals=(Goal("rate", SECP256K1_PIPELINED_MIN_SIGS, True),),
            unit="sig/s",
        ),
        Scenario(
            "ed25519-batch",
            "(i) sign_batch 256 x 64 B Ed25519, 1 conn",
            Shape(1, 1, 1),
            Leg(WALLETD, sign_batch_256_ed25519),
            goals=(Goal("rate", ED25519_BATCH_MIN_SIGS, True),),
            unit="sig/s",
        ),
        Scenario(
            "policy-10",
            "(j) HMAC sign, 10-rule owner policy vs none, 16 conns / 4 procs",
            Shape(4, 4, 1),
            Leg(WALLETD_POLICY, sign_ten_rules),
            anchor=_SIGN,
            goals=(Goal("rate", POLICY_VS_NONE_MIN, True, versus=WALLETD, headline=True),),
        ),
        Scenario(
            "policy-rolling",
            "(k) HMAC sign, one rolling-window limit vs none, 16 conns / 4 procs",
            Shape(4, 4, 1),
            Leg(WALLETD_POLICY, sign_rolling),
            anchor=_SIGN,
            goals=(Goal("rate", POLICY_VS_NONE_MIN, True, versus=WALLETD, headline=True),),
        ),
        Scenario(
            "lease",
            "(l) HMAC sign under an approved lease vs plain, 16 conns / 4 procs",
            Shape(4, 4, 1),
            Leg(WALLETD_LEASE, sign),
            anchor=_SIGN,
            goals=(Goal("rate", LEASE_VS_NONE_MIN, True, versus=WALLETD, headline=True),),
        ),
        Scenario(
            "conn256",
            "(m) sign, 256 conns / 8 client procs",
            Shape(8, 32, 1),
            _SIGN,
            anchor=_RAW,
            goals=(Goal("p99_us", CONN256_P99_MAX_US, False),),
        ),
    )
}


def servers_for(scenarios: list[Scenario], headline_only: bool = False) -> list[str]:
    """The servers the selected scenarios run on (and the servers their views view), in
    registry order: a view comes after the server it views."""
    wanted = {leg.server for s in scenarios for leg in s.legs(headline_only)}
    viewed = {SERVERS[name].view_of for name in wanted}
    return [name for name in SERVERS if name in wanted or name in viewed]
