"""Figures the adversarial tests record, printed as one table at the end of the session.

A test calls :func:`record` with what it measured (cases run, crashes, state mismatches,
acknowledged writes lost, errors, p99 latency, daemon RSS) and :func:`problem` for anything
that must fail the run; conftest.py prints the table and turns recorded problems into a
failing exit status even if the test that saw them was not the one to fail.
"""

from __future__ import annotations

import os
from typing import Any

#: ``make fuzz`` sets WALLETD_FUZZ=long, ``make soak`` WALLETD_SOAK=long; otherwise bounded.
LONG_FUZZ = os.environ.get("WALLETD_FUZZ") == "long"
LONG_SOAK = os.environ.get("WALLETD_SOAK") == "long"

#: The columns of the summary table, in order (a section may leave some empty).
COLUMNS = (
    "cases",
    "crashes",
    "mismatches",
    "acked_lost",
    "errors",
    "p99_ms",
    "rss_start_mib",
    "rss_end_mib",
)

#: Columns that must be zero (or absent) for the run to pass.
FAILING = ("crashes", "mismatches", "acked_lost", "errors")

SECTIONS: dict[str, dict[str, Any]] = {}
PROBLEMS: list[str] = []


def record(section: str, **values: Any) -> None:
    """Add ``values`` to ``section``: numbers add up across calls, other values replace."""
    row = SECTIONS.setdefault(section, {})
    for name, value in values.items():
        old = row.get(name)
        if isinstance(value, int | float) and isinstance(old, int | float) and name in _SUMMED:
            row[name] = old + value
        else:
            row[name] = value


_SUMMED = frozenset({"cases", "crashes", "mismatches", "acked_lost", "errors"})


def problem(text: str) -> None:
    PROBLEMS.append(text)


def table() -> list[str]:
    """The summary as aligned text lines."""
    header = ["section", *COLUMNS, "notes"]
    rows = [header]
    for section, values in SECTIONS.items():
        cells = [section]
        for column in COLUMNS:
            value = values.get(column, "")
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        notes = ", ".join(f"{k}={v}" for k, v in values.items() if k not in COLUMNS)
        cells.append(notes)
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return lines
