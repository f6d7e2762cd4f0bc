"""Test helpers: real daemon processes, in-process servers, and children running as nobody.

Readiness is always awaited on the socket itself (a connect that succeeds), never by sleeping.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from walletd.config import Config
from walletd.logs import configure_logging
from walletd.model.wallets import Wallet
from walletd.ops.daemon import build_daemon
from walletd.server.serve import Server

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
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


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


def run_as(
    uid: int, gid: int, code: str, *, timeout: float = 60.0, args: Sequence[str] = ()
) -> Any:
    """Run ``code`` in a Python child under ``uid``/``gid``; return what it printed as JSON.

    The machine's interpreter may live where ``nobody`` cannot read it (root's home), so the
    child starts as root, imports everything it needs, drops to ``uid``/``gid`` for good and
    only then runs ``code``: the peer credentials the daemon sees are the dropped ones.
    """
    proc = subprocess.run(
        [sys.executable, str(RUN_AS), str(uid), str(gid), code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise AssertionError(f"child as uid {uid} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def run_as_nobody(code: str, **kwargs: Any) -> Any:
    return run_as(NOBODY.pw_uid, NOBODY.pw_gid, code, **kwargs)


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
