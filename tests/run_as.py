"""Child process for tests: import a function, drop to UID/GID for good, call it.

Usage: run_as.py UID GID MODULE:FUNCTION [ARGS...]. ``MODULE`` (say ``tests.children``) is
imported first, as root: the interpreter may live where the other uid cannot read it, so
everything the function needs must be imported by then, at its module's top. Privileges are
then dropped with setgroups/setgid/setuid, which is irreversible, and ``FUNCTION(*ARGS)`` is
called; its return value is printed as JSON. :func:`tests.support.call_as` is the way in.

Anything other than ``module:function`` is refused (exit 2) before any import: children are
functions that mypy and ruff check, never code strings.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The repository root, so that ``tests.children`` imports as the package module it is.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

USAGE = "usage: run_as.py UID GID MODULE:FUNCTION [ARGS...]"
_TARGET = re.compile(r"[\w.]+:\w+")
EXIT_USAGE = 2


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[0].isdigit() or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    uid, gid, target, *args = argv
    if not _TARGET.fullmatch(target):
        shown = target if len(target) <= 60 else target[:57] + "..."
        print(
            f"run_as.py: the target must be module:function (say tests.children:authz_matrix),"
            f" not {shown!r}; code strings are not run",
            file=sys.stderr,
        )
        return EXIT_USAGE
    module, name = target.split(":")
    function = getattr(importlib.import_module(module), name)  # as root, see above
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    assert os.getuid() == int(uid)
    assert os.geteuid() == int(uid)
    print(json.dumps(function(*args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
