"""Fixtures for the adversarial tests, and the end-of-session summary of their figures."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support import DaemonProcess
from . import figures
from .harness import Agent, configured_daemon

_dirs = itertools.count(1)


@pytest.fixture
def make_daemon(open_tmp: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``make_daemon(**options)`` -> a real walletd (not started) with a TOML config; each gets
    its own directory under ``open_tmp`` and is killed at teardown if still running."""
    made: list[DaemonProcess] = []

    def make(*extra: str, log_level: str = "info", **options: Any) -> DaemonProcess:
        home = open_tmp / f"d{next(_dirs)}"
        home.mkdir()
        daemon = configured_daemon(home, *extra, log_level=log_level, **options)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.kill_if_running()


@pytest.fixture
def make_agent() -> Iterator[Callable[..., Agent]]:
    """``make_agent(uid, gid, socket_path)`` -> an Agent, closed at teardown."""
    made: list[Agent] = []

    def make(uid: int, gid: int, socket_path: Path, **kwargs: Any) -> Agent:
        agent = Agent(uid, gid, socket_path, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not figures.SECTIONS and not figures.PROBLEMS:
        return
    mode = []
    if figures.LONG_FUZZ:
        mode.append("WALLETD_FUZZ=long")
    if figures.LONG_SOAK:
        mode.append("WALLETD_SOAK=long")
    terminalreporter.section(f"walletd adversarial summary ({', '.join(mode) or 'bounded'})")
    for line in figures.table():
        terminalreporter.write_line(line)
    for text in figures.PROBLEMS:
        terminalreporter.write_line(f"PROBLEM: {text}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A bad figure (a crash, a state mismatch, a lost acknowledged write, an error) fails the
    # run even if the test that recorded it chose to report rather than to stop.
    for section, values in figures.SECTIONS.items():
        for column in figures.FAILING:
            if values.get(column):
                figures.problem(f"{section}: {column} = {values[column]}")
    if figures.PROBLEMS and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
