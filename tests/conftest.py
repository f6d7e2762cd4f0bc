"""Shared fixtures: an in-process walletd (``server``/``client``) and real processes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient
from walletd.config import Config
from walletd.logs import configure_logging
from walletd.ops.daemon import build_daemon
from walletd.server.serve import Server

from .support import DaemonProcess, daemon_process

# eth-account (a test-only oracle) raises the interpreter's recursion limit to 100 000 when it
# is imported. msgspec bounds decoding depth by that limit, so with it a deeply nested frame
# overflows the C stack (a segfault) instead of raising the RecursionError the daemon turns
# into bad_request (tests/test_errors.py). The daemon never imports eth-account; import it
# here, first, and put the default limit back for every test.
_RECURSION_LIMIT = sys.getrecursionlimit()
import eth_account  # noqa: E402, F401

sys.setrecursionlimit(_RECURSION_LIMIT)

# Fast scrypt for tests; the production default (n=2**14) is exercised in test_ritual.
FAST_SCRYPT = {"scrypt_n": 2**10}


class Clock:
    """An injectable wall clock, so age-based policy is tested without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(**overrides: Any) -> Config:
        values: dict[str, Any] = {
            "socket": str(tmp_path / "run" / "walletd.sock"),
            "state_dir": str(tmp_path / "state"),
            "log_level": "warning",
            **FAST_SCRYPT,
            **overrides,
        }
        return Config(**values)

    return make


@pytest.fixture
async def start_server(nursery: trio.Nursery, clock: Clock) -> Callable[..., Any]:
    """``await start_server(config)`` -> a running in-process Server."""

    async def start(config: Config, **kwargs: Any) -> Server:
        configure_logging(config.log_level, config.log_format)
        daemon = build_daemon(config, clock=kwargs.pop("clock", clock))
        server = Server(daemon, **kwargs)
        started: Server = await nursery.start(server.run)
        return started

    return start


@pytest.fixture
async def server(start_server: Callable[..., Any], make_config: Callable[..., Config]) -> Server:
    started: Server = await start_server(make_config(ephemeral=True))
    return started


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncWalletClient]:
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        yield c


@pytest.fixture
def open_tmp() -> Any:
    """A temporary directory other uids can traverse (pytest's tmp_path is under a 0700 dir),
    for sockets that a child running as nobody must reach."""
    path = Path(tempfile.mkdtemp(prefix="walletd-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(open_tmp: Path) -> Any:
    """Factory for real walletd processes; every one started is stopped at teardown."""
    started: list[DaemonProcess] = []

    def make(*extra: str, **kwargs: Any) -> DaemonProcess:
        proc = daemon_process(open_tmp, *extra, **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("WALLETD_TEST", "1")
