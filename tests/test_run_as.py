"""tests/run_as.py: children are ``module:function`` targets called after a one-way drop.

The refusals happen before any import or privilege change; the call shows that the function
really runs under the uid and gid asked for, with no supplementary groups left.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from . import process_children
from .support import NOBODY, ROOT, RUN_AS, call_as_nobody

pytestmark = pytest.mark.root

EXIT_USAGE = 2


def run_as(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_AS), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_the_function_runs_as_the_dropped_uid_and_gid() -> None:
    assert call_as_nobody(process_children.identity) == {
        "uid": NOBODY.pw_uid,
        "euid": NOBODY.pw_uid,
        "gid": NOBODY.pw_gid,
        "egid": NOBODY.pw_gid,
        "groups": [],
    }


@pytest.mark.parametrize(
    "target",
    [
        "result = 1",  # a code string, as children once were
        "import os; result = os.getuid()",
        "tests.process_children",  # a module without a function
        "tests.process_children:identity:extra",
    ],
)
def test_anything_but_module_function_is_refused(target: str) -> None:
    uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
    proc = run_as(uid, gid, target)
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    assert "the target must be module:function" in proc.stderr
    assert "code strings are not run" in proc.stderr


@pytest.mark.parametrize(
    "argv", [[], ["65534", "65534"], ["nobody", "65534", "tests.process_children:identity"]]
)
def test_a_malformed_command_line_prints_the_usage(argv: list[str]) -> None:
    proc = run_as(*argv)
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: run_as.py UID GID MODULE:FUNCTION")


def test_a_nested_function_is_refused_before_any_child_starts() -> None:
    def nested() -> None:
        return None

    with pytest.raises(ValueError, match="not a module-level function"):
        call_as_nobody(nested)
