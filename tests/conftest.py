"""Shared fixtures: an in-process walletd (``server``/``client``) and real processes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient
from walletd.config import Config
from walletd.logs import configure_logging
from walletd.ops.daemon import build_daemon
from walletd.server.serve import Server

from . import markers
from .support import Clock, DaemonFactory, DaemonProcess, MakeConfig, StartServer, daemon_process

# eth-account (a test-only oracle) imports py_ecc, which raises the interpreter's recursion
# limit to 100,000 at import time. The daemon's refusal of deeply nested frames relies on
# the default limit (msgspec raises RecursionError at it); at 100,000 a 200 KB frame of
# nested arrays overflows the C stack and kills the test process. Import the oracle once
# here and put the limit back, so every test runs with the limit the daemon has.
_recursion_limit = sys.getrecursionlimit()
import eth_account  # noqa: E402, F401

sys.setrecursionlimit(_recursion_limit)

# Fast scrypt for tests; the production default (n=2**14) is exercised in test_ritual.
FAST_SCRYPT = {"scrypt_n": 2**10}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
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


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr() -> None:
    """walletd's logger writes to the stream that was sys.stderr when logging was configured;
    under pytest that is one test's capture file, closed when the test ends. Configure it
    afresh for every test, so a daemon built without a server (a dispatcher alone) never logs
    into an earlier test's closed stream. Tests that configure logging themselves still do."""
    configure_logging("info", "json")


@pytest.fixture
async def start_server(nursery: trio.Nursery, clock: Clock) -> StartServer:
    """``await start_server(config)`` -> a running in-process Server."""

    async def start(config: Config, **kwargs: Any) -> Server:
        configure_logging(config.log_level, config.log_format)
        daemon = build_daemon(config, clock=kwargs.pop("clock", clock))
        server = Server(daemon, **kwargs)
        started: Server = await nursery.start(server.run)
        return started

    return start


@pytest.fixture
async def server(start_server: StartServer, make_config: MakeConfig) -> Server:
    started: Server = await start_server(make_config(ephemeral=True))
    return started


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncWalletClient]:
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        yield c


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory other uids can traverse (pytest's tmp_path is under a 0700 dir),
    for sockets that a child running as nobody must reach."""
    path = Path(tempfile.mkdtemp(prefix="walletd-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(open_tmp: Path) -> Iterator[DaemonFactory]:
    """Factory for real walletd processes; every one started is stopped at teardown."""
    started: list[DaemonProcess] = []

    def make(*extra: str, **kwargs: Any) -> DaemonProcess:
        proc = daemon_process(open_tmp, *extra, **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.kill_if_running()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("WALLETD_TEST", "1")
    markers.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers.skip_root_tests_unless_root(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    # Setup, call and teardown all count: fixtures start daemons too.
    markers.set_current(item)
    try:
        return (yield)
    finally:
        markers.set_current(None)
