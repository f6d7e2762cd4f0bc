"""Test helpers: real daemon processes, in-process servers, and children running as nobody.

Readiness is always awaited on the socket itself (a connect that succeeds), never by sleeping.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio

from walletd.config import Config
from walletd.logs import configure_logging
from walletd.model.wallets import Wallet
from walletd.ops.daemon import build_daemon
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

ROOT = Path(__file__).resolve().parent.parent
NOBODY = pwd.getpwnam("nobody")
RUN_AS = Path(__file__).resolve().parent / "run_as.py"

# The fixtures' types, named once so that every test module annotates them the same way.
MakeConfig = Callable[..., Config]
"""``make_config(**overrides)``: a Config under the test's tmp_path (conftest.py)."""
StartServer = Callable[..., Awaitable[Server]]
"""``await start_server(config, **server_kwargs)``: a running in-process Server."""
Ctl = Callable[..., tuple[int, str, str]]
"""``ctl(*argv)``: walletctl's main() on a daemon: (exit code, stdout, stderr)."""


class Clock:
    """An injectable wall clock, so age-based policy is tested without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for_socket(
    path: str | Path, *, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Return once ``path`` accepts a connection; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"walletd exited with {proc.returncode} before serving")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {path} after {timeout}s") from None
            # Polling the socket is the readiness check; this only paces the loop.
            time.sleep(0.01)
        finally:
            probe.close()


@dataclass
class DaemonProcess:
    """A real ``walletd`` process started by a test."""

    socket_path: Path
    state_dir: Path
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, wait: bool = True) -> DaemonProcess:
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "walletd", *self.args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=ROOT,
        )
        log.close()
        if wait:
            wait_for_socket(self.socket_path, proc=self.proc)
        return self

    def stop(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(20)
        if self.proc.stdout:
            self.proc.stdout.close()

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None, "the daemon was never started"
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        """The exit status, once the process has exited on its own (or been signalled)."""
        assert self.proc is not None, "the daemon was never started"
        return self.proc.wait(timeout)

    def restart(self) -> DaemonProcess:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.log_path)

    def kill_if_running(self) -> None:
        """For fixture teardown: whatever the test left running is killed."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a file (walletd's log), skipping any line that is not JSON."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def walletd_argv(
    socket_path: Path, state_dir: Path, *, socket_mode: str = "0600", log_level: str = "debug"
) -> list[str]:
    """The command line of a walletd process started by hand (not through DaemonProcess)."""
    return [
        sys.executable,
        "-m",
        "walletd",
        "--socket",
        str(socket_path),
        "--socket-mode",
        socket_mode,
        "--state-dir",
        str(state_dir),
        "--log-level",
        log_level,
    ]


def daemon_process(
    tmp: Path,
    *extra: str,
    socket_mode: str = "0666",
    ephemeral: bool = False,
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    """A daemon whose socket sits in a directory others can reach (for the nobody tests)."""
    run_dir = tmp / "run"
    run_dir.mkdir(exist_ok=True)
    run_dir.chmod(0o755)
    tmp.chmod(0o755)
    state = tmp / "state"
    sock = run_dir / "walletd.sock"
    args = [
        "--socket",
        str(sock),
        "--socket-mode",
        socket_mode,
        "--state-dir",
        str(state),
        "--log-level",
        "debug",
        *extra,
    ]
    if ephemeral:
        args.append("--ephemeral")
    return DaemonProcess(sock, state, args, tmp / "walletd.log", env=env or {})


DaemonFactory = Callable[..., DaemonProcess]
"""``daemon(*flags, **daemon_process_options)``: a real walletd, not started (conftest.py)."""


def wallet_in(server: Server, user_id: str) -> Wallet:
    """The in-memory wallet an in-process daemon holds for ``user_id`` (which must exist)."""
    wallet = server.daemon.ctx.book.get(user_id)
    assert wallet is not None, "no such wallet in the daemon's book"
    return wallet


def call_as(
    uid: int, gid: int, function: Callable[..., Any], *args: str, timeout: float = 60.0
) -> Any:
    """``function(*args)`` in a Python child under ``uid``/``gid``; what it returned, through
    JSON. ``function`` is a module-level function of an importable module (the children
    live in tests/*children*.py) taking strings and returning JSON values.

    The machine's interpreter may live where ``nobody`` cannot read it (root's home), so the
    child (tests/run_as.py) starts as root, imports ``function``'s module, drops to
    ``uid``/``gid`` for good and only then calls it: the peer credentials the daemon sees
    are the dropped ones.
    """
    module, name = function.__module__, function.__qualname__
    if module == "__main__" or "." in name:
        raise ValueError(f"{module}:{name} is not a module-level function run_as.py can import")
    proc = subprocess.run(
        [sys.executable, str(RUN_AS), str(uid), str(gid), f"{module}:{name}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise AssertionError(f"child as uid {uid} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def call_as_nobody(function: Callable[..., Any], *args: str, timeout: float = 60.0) -> Any:
    """:func:`call_as` as ``nobody``."""
    return call_as(NOBODY.pw_uid, NOBODY.pw_gid, function, *args, timeout=timeout)


@asynccontextmanager
async def running(config: Config, clock: Any) -> AsyncIterator[Server]:
    """An in-process server that is fully stopped (store closed) when the block exits."""
    configure_logging(config.log_level, config.log_format)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(Server(build_daemon(config, clock=clock)).run)
        try:
            yield server
        finally:
            server.shutdown()


# --------------------------------------------------------------------------- raw frames


def length_prefix(length: int) -> bytes:
    """A frame's 4-byte big-endian length prefix alone."""
    return struct.pack(">I", length)


def request_frame(op: str, request_id: int = 1, **fields: Any) -> bytes:
    """A framed request map, built by hand (no client-side checks)."""
    return encode_frame(msgspec.msgpack.encode({"op": op, "id": request_id, **fields}))


HELLO = request_frame("hello")


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a change the daemon makes on its own (a reaped connection, a counter).

    Polls with trio.sleep, so under MockClock(autojump_threshold=0) it costs no real time."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


class Wire:
    """A raw client: frames whatever it is given and decodes responses as plain maps."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.frames = FrameDecoder(1 << 30)

    @classmethod
    async def open(cls, path: str) -> Wire:
        return cls(await trio.open_unix_socket(path))

    async def send(self, message: Any) -> None:
        payload = message if isinstance(message, bytes) else msgspec.msgpack.encode(message)
        await self.stream.send_all(encode_frame(payload))

    async def receive(self) -> dict[str, Any] | None:
        """The next response, or None once the daemon has closed the connection."""
        with trio.fail_after(10):
            while (frame := self.frames.next_frame()) is None:
                try:
                    data = await self.stream.receive_some(1 << 16)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    return None
                self.frames.feed(data)
        response: dict[str, Any] = msgspec.msgpack.decode(frame)
        return response

    async def receive_many(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` responses; the daemon must not close the connection first."""
        out: list[dict[str, Any]] = []
        with trio.fail_after(20):
            while len(out) < count:
                response = await self.receive()
                assert response is not None, "the daemon closed the connection"
                out.append(response)
        return out

    async def call(self, message: Any) -> dict[str, Any]:
        await self.send(message)
        response = await self.receive()
        assert response is not None, "the daemon closed the connection"
        return response

    async def error(self, message: Any) -> dict[str, Any]:
        """Send ``message``, expect an error response, and check the connection still works."""
        response = await self.call(message)
        assert response["ok"] is False, response
        assert set(response) == {"id", "ok", "error"}
        assert set(response["error"]) == {"code", "message"}
        hello = await self.call({"op": "hello", "id": 4242})
        assert hello["ok"] is True and hello["id"] == 4242
        return response

    async def aclose(self) -> None:
        await self.stream.aclose()


def connect_as(uid: int, path: str) -> trio.SocketStream:
    """A connection to ``path`` that SO_PEERCRED reports as ``uid`` (root only): the
    effective uid at connect time is what the kernel records, so switch it just for that."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.seteuid(uid)
    try:
        sock.connect(path)
    finally:
        os.seteuid(0)
    sock.setblocking(False)
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def read_answer(stream: trio.SocketStream) -> dict[str, Any]:
    """The next response on ``stream``; fails the test if the daemon closes without one."""
    answer = await Wire(stream).receive()
    assert answer is not None, "closed without an answer"
    return answer
