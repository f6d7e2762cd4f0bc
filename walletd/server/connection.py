"""One client connection: read frames, answer them in order, enforce limits and timeouts.

=== THE FAST PATH ==========================================================================
``Connection._loop`` is the one place in walletd written for speed rather than for reading.
What it does, and what each choice is worth, measured by ``make bench`` (bench/, the
sequential / 16-connection / pipelined rows against the independent reference servers):

* ``recv_into`` the decoder's own buffer (no copy per read);
* every frame of one read decoded in place (memoryviews) and answered into one buffer
  (``encode_frame_into``), sent with one ``send``: pipelined requests cost one system call
  per batch, which is most of the pipelined row's lead over a read-answer-write loop;
* ``Dispatcher.respond`` returns a plain response when the handler did not wait, so the
  common path makes no coroutine (about 0.3 µs a request);
* debug logging is checked once per read, not per request;
* **when other connections are open, wait, then read**: our client is rarely ready the
  moment we answered (the loop serves the others meanwhile), and a read that finds nothing
  costs a system call and an exception. A/B 5 x 2 s against reading first: 16 connections
  33.2k -> 39.7k req/s (server CPU 29.6 -> 24.9 µs a request, p99 987 -> 790 µs); 256
  connections 28.2k -> 31.8k req/s (3 x 2 s, p99 18.8 -> 15.3 ms);
* **when the connection is the daemon's only one, read first, then poll, then wait**: it
  tries ``recv_into`` at once, and polls the socket for up to ``ALONE_POLL_S`` (50 µs)
  before it parks. Parking means trio's scheduler, ``epoll_wait`` and a context switch on
  the way back, and on this machine that round costs more server CPU than the request
  itself; one agent signing one request at a time sends its next one within the window.
  This is where issue 18's "12 µs" went. A/B 5 x 2 s, 1 connection: 17.6k -> 30.0k req/s,
  p50 56 -> 30 µs, server CPU 52 -> 33 µs a request; pipelined within noise (data is there,
  nothing polls). Off on a single CPU, where polling would take the time the client needs
  to send. It polls with ``poll(0)``, not by retrying ``recv_into``: a read that finds
  nothing raises (1.2 µs with its strerror text) where ``poll`` costs 0.37 µs. A/B 5 x 2 s,
  1 connection: Ed25519 1.07x (p50 69 -> 60 µs, server CPU 74 -> 62 µs a request), HMAC
  within noise (1.01x);
* a read that found data without waiting yields to the scheduler every 16th time in a row
  (``UNYIELDED_READS``) or after 0.1 ms of them (``UNYIELDED_S``), so a client that always
  has a request ready cannot starve anything else (the reaper, the accept loop, a new
  connection), and a run of requests does not pay a checkpoint each (one per request cost
  24% at 16 connections when the loop read first there).

Its readable twin is ``reference_loop`` in tests/test_fast_path.py (fifteen lines: read,
decode, respond, send); a hypothesis property feeds both the same byte streams, split at
random points and pipelined, over socket pairs, with the connection alone and with others
open, and requires the same bytes back.
============================================================================================

I/O is a non-blocking stdlib socket parked with ``trio.lowlevel.wait_readable`` /
``wait_writable``: with other connections open we wait first and then ``recv_into`` the frame
decoder's buffer, which saves the failed (EAGAIN) read a ``trio.socket`` recv makes on every
request/response round trip and a copy per read. Frames are decoded in place, and the
responses to every frame that arrived in one read go out in one send, so a pipelining client
costs one system call per batch. Every wait is a trio checkpoint, so connections cannot starve
each other.

Timeouts are enforced by the server's reaper (see :mod:`walletd.server.serve`), which reads
the timestamps kept here (trio's clock, so tests drive them with ``MockClock``), so the hot
path creates no cancel scope per read.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable
from types import CoroutineType
from typing import Any, Literal, Protocol

import msgspec
import structlog
import trio

import walletd_wire as wire
from walletd.logs import settings as log_settings
from walletd.model.peer import Peer
from walletd.ops.dispatch import Dispatcher
from walletd_wire import ErrorCode
from walletd_wire.framing import FrameDecoder, encode_frame, encode_frame_into

log = structlog.get_logger("walletd")

SEND_HIGH_WATER = 256 * 1024  # answers buffered before we send mid-batch
# A read that finds data without waiting skips the scheduler this many times in a row before
# it yields anyway, so a client that always has a request ready cannot starve anything else.
UNYIELDED_READS = 16
# ... nor for longer than this (seconds of trio's clock): with slower requests (Ed25519,
# a long policy) 16 reads in a row would keep the others waiting for milliseconds.
UNYIELDED_S = 0.0001
# A connection that is the daemon's only one polls its socket this long after it has
# answered, before it parks: its client is most likely about to send the next request, and
# parking costs the wake-up (epoll, a context switch, trio's scheduler) on every request.
# Never on a single CPU, where polling would take the time the client needs to send.
ALONE_POLL_S = 0.00005 if len(os.sched_getaffinity(0)) > 1 else 0.0
_encoder = msgspec.msgpack.Encoder()


class RequestCounter(Protocol):
    """Where the loop counts requests (the shared Context, for ``status``), and how many
    connections are open (the server keeps it)."""

    requests: int
    connections: int


# A connection's state, for the reaper's timeouts. Plain strings under a Literal type, not an
# enum.Enum: on Python 3.11 reading an Enum member costs ~90 ns more than a string constant,
# and the loop sets and tests the state several times per request.
State = Literal[
    "idle",  # waiting for a request, no partial frame buffered
    "reading",  # part of a frame has arrived
    "busy",  # handling requests
    "writing",  # sending responses
]


def _poll_alone(
    recv_into: Callable[[memoryview], int], frames: FrameDecoder, ready: Callable[[int], list[Any]]
) -> int:
    """``recv_into`` once ``ready`` (a ``poll`` of the socket) says data came, for up to
    ALONE_POLL_S; -1 if nothing came (then park).

    Why ``poll`` and not ``recv_into`` in the loop: a read that finds nothing raises, and the
    exception (its strerror text decoded through the locale) costs 1.2 µs here against
    0.37 µs for a ``poll(0)``, so the loop notices a request sooner and burns less.
    """
    deadline = time.perf_counter() + ALONE_POLL_S
    while time.perf_counter() < deadline:
        if ready(0):
            try:
                return recv_into(frames.recv_buffer())
            except BlockingIOError:
                pass
    return -1


def _poller(sock: socket.socket) -> Callable[[int], list[Any]]:
    """``poll(timeout_ms)`` of ``sock`` for reading: a non-empty list when data is there."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return poller.poll


def error_frame(code: ErrorCode, message: str, request_id: int | None = None) -> bytes:
    return encode_frame(_encoder.encode(wire.error(request_id, code, message)))


class Connection:
    __slots__ = (
        "closing",
        "conn_id",
        "dispatcher",
        "lingering",
        "max_frame_bytes",
        "peer",
        "scope",
        "since",
        "sock",
        "state",
    )

    def __init__(
        self,
        conn_id: int,
        sock: socket.socket,
        peer: Peer,
        dispatcher: Dispatcher,
        max_frame_bytes: int,
    ) -> None:
        self.conn_id = conn_id
        self.sock = sock
        self.peer = peer
        self.dispatcher = dispatcher
        self.max_frame_bytes = max_frame_bytes
        self.scope = trio.CancelScope()
        self.state: State = "idle"
        self.since = trio.current_time()  # when the current state began (trio's clock)
        self.closing = False  # shutdown: finish what was received, then close
        self.lingering = False  # closed on frame_too_large: the server lingers (linger.py)

    async def serve(self, counter: RequestCounter) -> None:
        with self.scope:
            try:
                await self._loop(counter)
            except (trio.BrokenResourceError, ConnectionError, OSError) as exc:
                log.debug("connection_lost", reason=type(exc).__name__)
            except Exception:
                # A bug must cost this connection, never the daemon (the exception would
                # otherwise reach the server's nursery and stop every connection with it).
                log.exception("connection_failed")

    async def _loop(self, counter: RequestCounter) -> None:
        sock, peer = self.sock, self.peer
        recv_into, send, wait_readable = sock.recv_into, sock.send, trio.lowlevel.wait_readable
        respond = self.dispatcher.respond
        encode_into = _encoder.encode_into
        frames = FrameDecoder(self.max_frame_bytes)
        out = bytearray()
        # trio's clock (MockClock in tests) without trio.current_time()'s two extra calls:
        # 0.16 against 0.35 µs, once per read.
        clock = trio.lowlevel.current_clock().current_time
        unyielded = 0  # reads in a row that found data without waiting (see the banner)
        yielded_at = clock()  # when this task last let the others run
        parked = False  # the read at hand follows a park (itself a checkpoint)
        ready: Callable[[int], list[Any]] | None = None  # made the first time it is alone
        while not self.closing:
            if counter.connections > 1:  # wait, then read (see the banner)
                await wait_readable(sock)  # parks the task: a checkpoint
                parked = True
            try:
                received = recv_into(frames.recv_buffer())
            except BlockingIOError:
                if counter.connections == 1:
                    if ready is None:
                        ready = _poller(sock)
                    received = _poll_alone(recv_into, frames, ready)
                else:
                    received = -1
                if received < 0:
                    await wait_readable(sock)  # parks the task: a checkpoint
                    parked = True
                    continue
            now = clock()  # once per read
            if parked:
                unyielded, yielded_at, parked = 0, now, False
            elif unyielded < UNYIELDED_READS and now - yielded_at < UNYIELDED_S:
                unyielded += 1
            else:
                await trio.lowlevel.checkpoint()  # let the other connections run
                unyielded, yielded_at = 0, now
            if not received:
                return  # EOF; a truncated frame is simply dropped with the connection
            # A started frame must complete within frame_timeout however slowly it trickles
            # in, so the clock of a partial frame starts when the frame does.
            frame_since = self.since if self.state == "reading" else now
            frames.received(received)
            self.state = "busy"
            debug = log_settings.debug
            payloads = frames.complete_views()
            if payloads:
                counter.requests += len(payloads)
                frame_since = now  # frames completed; a partial one after them is new
            for payload in payloads:
                if debug:
                    response: Any = await self._respond_logged(payload)
                else:
                    response = respond(peer, payload)
                    if response.__class__ is CoroutineType:
                        response = await response
                encode_frame_into(encode_into, response, out)
                if len(out) >= SEND_HIGH_WATER:
                    # Small requests can ask for large answers (audit_log): do not hold a
                    # whole read's worth of them. A peer that does not read meets the
                    # reaper's write_timeout here instead of growing our memory.
                    await self._send(out)
                    out.clear()
                    self.state = "busy"
            if frames.oversized is not None:
                # The stream has lost its framing: after the answers to what came before it,
                # say so once and close, without reading the payload.
                out += error_frame(ErrorCode.FRAME_TOO_LARGE, str(frames.oversized))
                await self._send(out)
                self.lingering = True  # the peer may still be writing the frame
                return
            if out:
                # Most answers fit the socket buffer at once: send inline, and only start the
                # waiting machinery (a coroutine) when they do not.
                try:
                    sent = send(out)
                except BlockingIOError:
                    sent = 0
                if sent != len(out):
                    await self._send(out, sent)
                out.clear()
            if frames.in_frame:
                self.state, self.since = "reading", frame_since
            else:
                self.state, self.since = "idle", now

    async def _respond_logged(self, payload: memoryview) -> Any:
        """``respond`` plus one debug event per request (only while debug logging is on)."""
        started = time.perf_counter()
        request = self.dispatcher.decode(payload)
        if isinstance(request, wire.ErrorResponse):
            response: Any = request
        else:
            response = self.dispatcher.run(self.peer, request)
            if response.__class__ is CoroutineType:
                response = await response
        outcome = "ok" if response.ok else response.error.code
        log.debug(
            "request",
            op=None if isinstance(request, wire.ErrorResponse) else request.__struct_config__.tag,
            id=response.id,
            outcome=outcome,
            duration_us=round((time.perf_counter() - started) * 1e6, 1),
        )
        return response

    async def _send(self, data: bytearray, sent: int = 0) -> None:
        """Send ``data[sent:]``, waiting for room as long as the reaper's write_timeout allows.

        The peer is not reading as fast as we answer; we stop reading meanwhile, so nothing
        piles up in memory for it.
        """
        sock = self.sock
        self.state, self.since = "writing", trio.current_time()
        with memoryview(data) as pending:
            while sent < len(pending):
                try:
                    sent += sock.send(pending[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)

    def expired(
        self, now: float, idle_timeout: float, frame_timeout: float, write_timeout: float
    ) -> str | None:
        """Which timeout this connection has run past, if any (called by the reaper)."""
        elapsed = now - self.since
        if self.state == "idle" and elapsed > idle_timeout:
            return "idle_timeout"
        if self.state == "reading" and elapsed > frame_timeout:
            return "frame_timeout"
        if self.state == "writing" and elapsed > write_timeout:
            return "write_timeout"
        return None
