"""docs/MIGRATING.md: every row of the differences table names a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .support import ROOT

DOC = ROOT / "docs" / "MIGRATING.md"
ALIASES = {"compat": "tests/test_codomyrmex_compat.py", "answers": "tests/test_recovery_answers.py"}


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _rows() -> list[str]:
    text = DOC.read_text()
    table = text.split("## What deliberately differs", 1)[1].split("\n## ", 1)[0]
    return [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]


def test_every_difference_row_names_an_existing_test() -> None:
    rows = _rows()
    assert len(rows) >= 15
    for row in rows:
        refs = re.findall(r"`(compat|answers|tests/[\w/]+\.py)::(test_\w+)`", row)
        assert refs, f"no test named in: {row[:60]}"
        for where, name in refs:
            path = ROOT / ALIASES.get(where, where)
            assert name in _tests_in(path), f"{where}::{name} does not exist"


def test_the_switch_is_one_import_line() -> None:
    text = DOC.read_text()
    assert "from codomyrmex.wallet import" in text
    assert "from wallet_client.codomyrmex import" in text
