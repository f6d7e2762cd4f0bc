"""The ``slow`` and ``root`` markers, kept honest by watching what tests start.

``slow`` means "starts real walletd processes", so ``pytest -m "not slow"`` is a fast loop of
in-process tests; ``root`` means the test needs root (children that drop to other uids, mounts),
and such tests are skipped, with that reason, when the suite runs as anyone else.

Nobody has to remember either rule: an audit hook (:func:`sys.addaudithook`, which sees every
``subprocess.Popen`` this process makes) refuses to start a walletd process from a test that is
not marked ``slow``, or a root-only child from a test not marked ``root``, and says which marker
to add. With ``WALLETD_MARKER_SURVEY=path`` it writes ``marker<TAB>test id`` lines to that file
instead of refusing (to find what an unmarked suite needs).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

SLOW = "slow"
ROOT = "root"

# Children that change uid first (setgroups/setgid/setuid): see tests/run_as.py.
_ROOT_SCRIPTS = ("run_as.py", "run_daemon_as.py", "agent.py")
_ROOT_TOOLS = {"mount", "umount", "unshare", "mkfs.ext4", "losetup", "nsenter", "setpriv"}

_current: pytest.Item | None = None


def needed_markers(argv: Sequence[str]) -> set[str]:
    """Which markers a test that starts ``argv`` must carry."""
    args = [os.fspath(a) for a in argv]
    needed: set[str] = set()
    names = [Path(a).name for a in args]
    runs_walletd = any(a == "-m" and b == "walletd" for a, b in itertools.pairwise(args)) or (
        "walletd" in names[:1] or "run_daemon_as.py" in names
    )
    if runs_walletd:
        needed.add(SLOW)
    if any(n in _ROOT_SCRIPTS for n in names) or (names and names[0] in _ROOT_TOOLS):
        needed.add(ROOT)
    return needed


def _markers_of(item: pytest.Item) -> set[str]:
    return {mark.name for mark in item.iter_markers()}


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event != "subprocess.Popen" or _current is None:
        return
    argv = args[1]
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        return  # only the tests' own list argvs are classified
    missing = needed_markers([str(a) for a in argv]) - _markers_of(_current)
    if not missing:
        return
    survey = os.environ.get("WALLETD_MARKER_SURVEY")
    if survey:
        with open(survey, "a") as out:
            out.writelines(f"{name}\t{_current.nodeid}\n" for name in sorted(missing))
        return
    raise RuntimeError(
        f"{_current.nodeid} starts {Path(str(argv[0])).name} ... but is not marked "
        f"{' and '.join(sorted(missing))}: add pytest.mark.<name> (see tests/markers.py)"
    )


def install() -> None:
    """Register the audit hook (once per process; audit hooks cannot be removed)."""
    sys.addaudithook(_audit)


def set_current(item: pytest.Item | None) -> None:
    global _current
    _current = item


def skip_root_tests_unless_root(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(
        reason="needs root: starts children that drop to other uids, or mounts filesystems"
    )
    for item in items:
        if ROOT in _markers_of(item):
            item.add_marker(skip)
