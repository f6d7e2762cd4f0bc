"""Requester identity from /proc: real processes, exited ones, and a made-up /proc for the
cases a live system will not show on demand (odd comm names, unit paths, hostile cmdlines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from walletd.model.approvals import Requester
from walletd.ops.requester import (
    process_alive,
    read_requester,
    start_time_of,
    unit_of_cgroup,
)


def _stat_line(pid: int, comm: str, start: int) -> str:
    # Fields 3..52 after "(comm)"; field 22 (index 19 after comm) is the start time.
    rest = ["S"] + ["0"] * 18 + [str(start)] + ["0"] * 30
    return f"{pid} ({comm}) {' '.join(rest)}\n"


def fake_proc(
    root: Path,
    pid: int,
    *,
    uid: int,
    start: int,
    comm: str = "agent",
    cmdline: bytes = b"agent\0--run\0",
    cgroup: str = "0::/system.slice/agent.service\n",
) -> Path:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(_stat_line(pid, comm, start))
    (d / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "cmdline").write_bytes(cmdline)
    (d / "cgroup").write_text(cgroup)
    os.symlink("/usr/bin/agent", d / "exe")
    return root


def test_this_process_is_read_in_full() -> None:
    me = read_requester(os.getuid(), os.getpid())
    assert (me.uid, me.pid) == (os.getuid(), os.getpid())
    assert me.start_time is not None and me.start_time == start_time_of(os.getpid())
    assert me.exe is not None and os.path.realpath(me.exe) == os.path.realpath(sys.executable)
    assert me.cmdline and "pytest" in " ".join(me.cmdline)
    assert me.process == (os.getpid(), me.start_time)
    assert process_alive(os.getpid(), me.start_time)


def test_a_process_that_exited_leaves_only_the_kernel_peer_values() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = read_requester(os.getuid(), child.pid)
    assert gone == Requester(uid=os.getuid(), pid=child.pid)
    assert gone.process is None  # so no process lease can be bound to it


def test_the_start_time_tells_a_reused_pid_from_the_process_that_asked() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        asked = read_requester(os.getuid(), child.pid)
        assert asked.start_time is not None
        assert process_alive(child.pid, asked.start_time)
        assert not process_alive(child.pid, asked.start_time + 1)  # another process, same pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert not process_alive(child.pid, asked.start_time)


def test_a_pid_now_owned_by_another_uid_is_not_attributed(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 77, uid=1001, start=500)
    assert read_requester(1002, 77, proc) == Requester(uid=1002, pid=77)
    assert read_requester(1001, 77, proc).start_time == 500


@pytest.mark.parametrize("comm", ["agent", "a b", "x) (y", "))", "(", ""])
def test_field_22_is_found_whatever_the_command_name(tmp_path: Path, comm: str) -> None:
    proc = fake_proc(tmp_path, 88, uid=1001, start=123456, comm=comm)
    assert start_time_of(88, proc) == 123456


@pytest.mark.parametrize("stat", ["", "garbage", "1 (x) S 1 2", "1 (x) " + "z " * 30])
def test_a_stat_that_makes_no_sense_gives_no_start_time(tmp_path: Path, stat: str) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "stat").write_text(stat)
    assert start_time_of(5, tmp_path) is None
    assert read_requester(1001, 5, tmp_path) == Requester(uid=1001, pid=5)


def test_a_hostile_command_line_is_bounded_and_made_terminal_safe(tmp_path: Path) -> None:
    args = [b"agent\x1b[2J", "\u202eevil".encode(), b"y" * 1000] + [b"a"] * 100
    proc = fake_proc(tmp_path, 9, uid=1001, start=1, cmdline=b"\0".join(args) + b"\0")
    got = read_requester(1001, 9, proc)
    assert got.cmdline[0] == "agent\\x1b[2J"
    assert got.cmdline[1] == "\\u202eevil"
    assert len(got.cmdline[2]) <= 257
    assert len(got.cmdline) == 33 and got.cmdline[-1].endswith("more)")
    assert got.exe == "/usr/bin/agent" and got.unit == "agent.service"


@pytest.mark.parametrize(
    ("cgroup", "unit"),
    [
        ("0::/system.slice/walletd-agent.service\n", "walletd-agent.service"),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/bot.service\n", "bot.service"),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"),
        ("0::/\n", None),
        ("0::/init.scope\n", "init.scope"),
        (
            "12:pids:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n",
            "cron.service",
        ),
        ("", None),
        ("0::/docker/0123abcd\n", None),
    ],
)
def test_the_systemd_unit_comes_from_the_cgroup_path(cgroup: str, unit: str | None) -> None:
    assert unit_of_cgroup(cgroup) == unit


def test_pid_zero_is_not_looked_up(tmp_path: Path) -> None:
    assert read_requester(0, 0, tmp_path) == Requester(uid=0, pid=0)
