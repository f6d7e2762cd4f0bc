"""Who asked for a signature, from the kernel: ``SO_PEERCRED`` and ``/proc/PID``.

The connection's uid and pid come from ``SO_PEERCRED`` (already in the
:class:`~walletd.model.peer.Peer`); this module adds what ``/proc/PID`` says of that pid: the
process start time (field 22 of ``stat``, clock ticks after boot), the executable
(``/proc/PID/exe``), the command line, and the systemd unit (from ``/proc/PID/cgroup``).

A process can exit, or its pid be reused, at any moment. So:

- every read that fails (the process is gone, or it is not ours to read: ``exe`` needs the
  same uid or privilege) leaves that field ``None``, never an exception;
- the start time is read first and last, and the ``Uid:`` line of ``status`` must be the
  peer's uid: if the pid now names another process, nothing from ``/proc`` is used (a
  requester with only uid and pid gets no process lease, the safe side).

``process_alive(pid, start_time)`` is the cheap check the daemon uses to end process leases:
one read of ``/proc/PID/stat``.

Everything read here is bounded and made terminal-safe (``printable``) before it is kept: a
program controls its own command line and could put escape sequences in it for the approver's
screen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from walletd.model.approval_summary import printable
from walletd.model.approvals import Requester

__all__ = ["PeerIdentity", "process_alive", "read_requester", "start_time_of", "unit_of_cgroup"]

PROC = Path("/proc")
MAX_ARGS = 32  # arguments of a command line kept
MAX_ARG = 256  # characters of one argument (or of the exe path) kept
_READ_LIMIT = 64 * 1024  # bytes read of any /proc file
_UNIT_SUFFIXES = (".service", ".scope")


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            return f.read(_READ_LIMIT)
    except OSError:  # gone (ENOENT, ESRCH), not ours (EACCES), or anything else
        return None


def start_time_of(pid: int, proc: Path = PROC) -> int | None:
    """Field 22 of ``/proc/PID/stat``, or ``None`` when the process is gone."""
    raw = _read(proc / str(pid) / "stat")
    if raw is None:
        return None
    # Field 2 (comm) is in parentheses and may itself hold spaces and ')': the fields after
    # it start after the LAST ')'. The first of them is field 3, so field 22 is index 19.
    _, _, rest = raw.rpartition(b")")
    fields = rest.split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


class PeerIdentity:
    """A requester as ``SO_PEERCRED`` gives it, for a lease lookup (walletd.model.leases).

    Reading a process's ``/proc`` record (:func:`read_requester`: six files and its command
    line) costs about 100 µs, and a leased request must cost about what a plain one does. A
    lease needs only the uid, and a process lease the pid's start time too: that one file is
    read the first time a process lease asks (``process``), and never otherwise.
    """

    __slots__ = ("_process", "_read", "_was_read", "pid", "uid")

    def __init__(
        self, uid: int, pid: int, start_time: Callable[[int], int | None] = start_time_of
    ) -> None:
        self.uid = uid
        self.pid = pid
        self._read = start_time
        self._was_read = False
        self._process: tuple[int, int] | None = None

    @property
    def process(self) -> tuple[int, int] | None:
        if not self._was_read:
            start = self._read(self.pid) if self.pid > 0 else None
            self._process = None if start is None else (self.pid, start)
            self._was_read = True
        return self._process


def process_alive(pid: int, start_time: int, proc: Path = PROC) -> bool:
    """Whether the process ``(pid, start_time)`` still runs (a reused pid does not count)."""
    return start_time_of(pid, proc) == start_time


def _uid_of(pid: int, proc: Path) -> int | None:
    raw = _read(proc / str(pid) / "status")
    if raw is None:
        return None
    for line in raw.splitlines():
        if line.startswith(b"Uid:"):
            parts = line.split()
            try:
                return int(parts[2])  # the effective uid: what SO_PEERCRED reports
            except (IndexError, ValueError):
                return None
    return None


def _exe_of(pid: int, proc: Path) -> str | None:
    try:
        return printable(os.readlink(proc / str(pid) / "exe"), MAX_ARG)
    except OSError:
        return None


def _cmdline_of(pid: int, proc: Path) -> tuple[str, ...]:
    raw = _read(proc / str(pid) / "cmdline")
    if not raw:
        return ()
    args = raw.rstrip(b"\0").split(b"\0")
    kept = [printable(a.decode("utf-8", errors="replace"), MAX_ARG) for a in args[:MAX_ARGS]]
    if len(args) > MAX_ARGS:
        kept.append(f"… ({len(args) - MAX_ARGS} more)")
    return tuple(kept)


def unit_of_cgroup(text: str) -> str | None:
    """The systemd unit of a ``/proc/PID/cgroup`` text: the deepest ``*.service`` or
    ``*.scope`` in its path (for a user service, the user's unit, not ``user@UID.service``)."""
    for line in text.splitlines():
        # cgroup v2: "0::/path"; v1 lines "N:controllers:/path" name the same units.
        _, _, path = line.partition("::") if "::" in line else line.rpartition(":")
        parts = [p for p in path.split("/") if p.endswith(_UNIT_SUFFIXES)]
        if parts:
            return printable(parts[-1], MAX_ARG)
    return None


def _unit_of(pid: int, proc: Path) -> str | None:
    raw = _read(proc / str(pid) / "cgroup")
    return None if raw is None else unit_of_cgroup(raw.decode("utf-8", errors="replace"))


def read_requester(uid: int, pid: int, proc: Path = PROC) -> Requester:
    """The requester ``(uid, pid)`` from ``SO_PEERCRED`` with what ``/proc`` tells of it."""
    bare = Requester(uid=uid, pid=pid)
    if pid <= 0:
        return bare
    start = start_time_of(pid, proc)
    if start is None or _uid_of(pid, proc) != uid:
        return bare
    exe = _exe_of(pid, proc)
    cmdline = _cmdline_of(pid, proc)
    unit = _unit_of(pid, proc)
    if start_time_of(pid, proc) != start:
        return bare  # the process exited and the pid was reused while we read
    return Requester(uid=uid, pid=pid, start_time=start, exe=exe, cmdline=cmdline, unit=unit)
