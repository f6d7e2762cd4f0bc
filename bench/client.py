"""The load generator: blocking stdlib sockets in forked worker processes.

Each worker opens its connections, checks one answer per connection in full, waits at a
barrier with the coordinator, then keeps ``depth`` requests in flight on every connection for
``duration`` seconds (a closed loop: a response releases the next request). Latency is measured
per request from the ``send`` that carried it to the ``recv`` that completed it. After the
deadline no new requests are sent; the ones still in flight are drained and not counted.

The hot loops avoid everything but the socket calls: frames are pre-encoded, answers are checked
with one msgspec decode of a small Struct (id + ok), and one send carries every request a recv
released.
"""

from __future__ import annotations

import select
import socket
import struct
import time
import traceback
from array import array
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from bench.wire import (
    SSH_AGENT_SIGN_RESPONSE,
    BenchError,
    Workload,
    check_first_answer,
    check_response,
)
from walletd_wire import Response

RECV_BYTES = 1 << 18
_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class WorkerSpec:
    socket_path: str
    connections: int
    depth: int
    duration: float
    workload: Workload


@dataclass
class WorkerResult:
    completed: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    latencies_ns: bytes = b""  # array('q') of per-request latencies
    error: str | None = None


@dataclass
class _Conn:
    """One connection's state in the closed loop."""

    sock: socket.socket
    workload: Workload
    buf: bytearray = field(default_factory=bytearray)
    sent_at: deque[int] = field(default_factory=deque)
    next_send: int = 0
    next_recv: int = 0

    def send(self, count: int, now: int) -> None:
        frames = self.workload.frames
        n = len(frames)
        start = self.next_send
        if count == 1:
            self.sock.sendall(frames[start % n])
        else:
            self.sock.sendall(b"".join([frames[(start + k) % n] for k in range(count)]))
        self.next_send = start + count
        self.sent_at.extend([now] * count)

    def receive(self, data: bytes) -> int:
        """Take ``data``, check every complete answer in it; return how many completed."""
        buf = self.buf
        buf += data
        ids = self.workload.ids
        n_ids = len(ids) if ids is not None else 0
        decode = _decode
        unpack_from = _U32.unpack_from
        end = len(buf)
        pos = 0
        done = 0
        expect = self.next_recv
        while end - pos >= 4:
            (size,) = unpack_from(buf, pos)
            stop = pos + 4 + size
            if stop > end:
                break
            if ids is not None:
                response = decode(buf[pos + 4 : stop])
                if not response.ok or response.id != ids[expect % n_ids]:
                    check_response("walletd", buf[pos + 4 : stop], ids[expect % n_ids])
            elif buf[pos + 4] != SSH_AGENT_SIGN_RESPONSE:
                check_response("ssh", buf[pos + 4 : stop], None)
            pos = stop
            expect += 1
            done += 1
        del buf[:pos]
        self.next_recv = expect
        return done


_decode = msgspec.msgpack.Decoder(Response).decode


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def _warm_up(conn: _Conn) -> None:
    """One request, answer checked in full (signature size, address), before the clock starts."""
    conn.sock.sendall(conn.workload.frames[0])
    check_first_answer(conn.workload, _recv_frame(conn.sock))
    conn.next_send = conn.next_recv = 1


def _recv_frame(sock: socket.socket) -> bytes:
    data = bytearray()
    while True:
        if len(data) >= 4:
            (size,) = _U32.unpack_from(data)
            if len(data) >= 4 + size:
                if len(data) > 4 + size:
                    raise BenchError("unexpected extra bytes after an answer")
                return bytes(data[4:])
        chunk = sock.recv(RECV_BYTES)
        if not chunk:
            raise BenchError("server closed the connection")
        data += chunk


def drive(conns: list[_Conn], depth: int, duration: float) -> tuple[array[int], float]:
    """Run the closed loop on ``conns``; return (latencies in ns, elapsed seconds)."""
    now = time.perf_counter_ns
    latencies: array[int] = array("q")
    record = latencies.append
    start = now()
    deadline = start + int(duration * 1e9)
    for conn in conns:
        conn.send(depth, now())
    outstanding = depth * len(conns)
    last = start
    single = conns[0] if len(conns) == 1 else None
    by_fd = {conn.sock.fileno(): conn for conn in conns}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    try:
        while outstanding:
            # One connection: a blocking recv is one syscall; several: epoll says who is ready.
            ready = [single] if single is not None else [by_fd[fd] for fd, _ in poller.poll()]
            for conn in ready:
                data = conn.sock.recv(RECV_BYTES)
                if not data:
                    raise BenchError("server closed the connection mid-run")
                done = conn.receive(data)
                if not done:
                    continue
                t = now()
                sent_at = conn.sent_at
                if t <= deadline:
                    for _ in range(done):
                        record(t - sent_at.popleft())
                    last = t
                    conn.send(done, t)
                else:
                    for _ in range(done):
                        sent_at.popleft()
                    outstanding -= done
    finally:
        poller.close()
    return latencies, (last - start) / 1e9


def worker_main(spec: WorkerSpec, barrier: Any, pipe: Connection) -> None:
    """Entry point of one client process (forked by the harness)."""
    result = WorkerResult()
    try:
        try:
            path = spec.socket_path
            conns = [_Conn(_connect(path), spec.workload) for _ in range(spec.connections)]
            for conn in conns:
                _warm_up(conn)
        except BaseException:
            barrier.abort()
            raise
        barrier.wait(timeout=120)
        cpu0 = time.process_time()
        latencies, elapsed = drive(conns, spec.depth, spec.duration)
        result.cpu = time.process_time() - cpu0
        result.completed = len(latencies)
        result.elapsed = elapsed
        result.latencies_ns = latencies.tobytes()
        for conn in conns:
            conn.sock.close()
    except BaseException as exc:  # report everything to the coordinator, which decides
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
    pipe.send(result)
    pipe.close()
