"""An SVG chart of every headline ratio against its target, written by hand (no plotting stack).

One horizontal bar per headline: the median ratio walletd/anchor, green when it meets its
target and red when not; a whisker across the per-repetition ratios (the spread shows how far
to trust the bar); a blue dashed line at the target; a grey diamond at the committed baseline; a
solid line at parity (1.0). The SVG is plain elements with ``class`` names, so a test can
read it back with ElementTree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from bench.results import ScenarioResult

WIDTH = 860
LABEL_W = 330  # left column: the row's label
PLOT_X0 = LABEL_W + 10
PLOT_X1 = WIDTH - 120  # room on the right for the value text
ROW_H = 46
TOP = 64
BAR_H = 16
MET, MISSED, INK, GRID = "#2e7d32", "#c62828", "#222222", "#dddddd"
TARGET = "#1565c0"  # blue: stands out over a green or red bar


@dataclass(frozen=True)
class ChartRow:
    label: str
    value: float | None  # median ratio; None: not measured
    low: float | None  # smallest per-repetition ratio
    high: float | None
    limit: float
    at_least: bool
    baseline: float | None = None

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit


def chart_rows(
    results: dict[str, ScenarioResult], baseline: dict[str, float] | None = None
) -> list[ChartRow]:
    """One row per scenario with a headline goal, in table order."""
    rows = []
    for key, result in results.items():
        goal = result.scenario.headline
        if goal is None or goal.versus is None:
            continue
        per_rep = result.ratios(goal.versus)
        rows.append(
            ChartRow(
                label=f"{result.scenario.title} — vs {goal.versus}",
                value=result.headline_ratio(),
                low=min(per_rep) if per_rep else None,
                high=max(per_rep) if per_rep else None,
                limit=goal.limit,
                at_least=goal.at_least,
                baseline=(baseline or {}).get(key),
            )
        )
    return rows


def _axis_max(rows: list[ChartRow]) -> float:
    """The right end of the axis: past every figure, rounded up to a quarter."""
    figures = [1.0] + [
        f for r in rows for f in (r.value, r.high, r.limit, r.baseline) if f is not None
    ]
    return math.ceil(max(figures) * 1.08 * 4) / 4


def _text(x: float, y: float, body: str, cls: str, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
        f'text-anchor="{anchor}">{escape(body)}</text>'
    )


def render_svg(rows: list[ChartRow], title: str, subtitle: str = "") -> str:
    top = max(1.0, _axis_max(rows))
    height = TOP + ROW_H * max(1, len(rows)) + 64

    def x(value: float) -> float:
        return PLOT_X0 + (PLOT_X1 - PLOT_X0) * max(0.0, value) / top

    bottom = TOP + ROW_H * max(1, len(rows))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        _text(12, 24, title, "title", size=16),
        _text(12, 44, subtitle, "subtitle", size=11),
    ]
    # Grid every quarter, labelled on the axis below the rows.
    for i in range(int(top * 4) + 1):
        gx = x(i / 4)
        parts.append(
            f'<line class="grid" x1="{gx:.1f}" y1="{TOP - 6}" x2="{gx:.1f}" y2="{bottom}" '
            f'stroke="{GRID}"/>'
        )
        parts.append(_text(gx, bottom + 16, f"{i / 4:g}", "tick", "middle", 10))
    px = x(1.0)
    parts.append(
        f'<line class="parity" x1="{px:.1f}" y1="{TOP - 6}" x2="{px:.1f}" y2="{bottom}" '
        f'stroke="{INK}" stroke-width="1.5"/>'
    )
    for i, row in enumerate(rows):
        parts += _row(row, TOP + ROW_H * i, x)
    legend = (
        "bar: median of per-repetition ratios, green met, red missed; whisker: min to max",
        "blue dashed: target; grey diamond: committed baseline; solid line: parity (1.0)",
    )
    for i, line in enumerate(legend):
        parts.append(_text(12, bottom + 36 + 14 * i, line, "legend", size=10))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _row(row: ChartRow, y0: float, x: Callable[[float], float]) -> list[str]:
    mid = y0 + ROW_H / 2
    parts = [
        f'<g class="row" data-label={quoteattr(row.label)} data-met={quoteattr(str(row.met))}>',
        _text(LABEL_W, mid + 4, row.label, "label", "end"),
    ]
    if row.value is None:
        parts.append(_text(PLOT_X0 + 4, mid + 4, "not measured", "value"))
    else:
        colour = MET if row.met else MISSED
        width = x(row.value) - x(0.0)
        parts.append(
            f'<rect class="bar" x="{x(0.0):.1f}" y="{mid - BAR_H / 2:.1f}" width="{width:.1f}" '
            f'height="{BAR_H}" fill="{colour}"/>'
        )
        if row.low is not None and row.high is not None:
            parts.append(
                f'<line class="spread" x1="{x(row.low):.1f}" y1="{mid:.1f}" '
                f'x2="{x(row.high):.1f}" y2="{mid:.1f}" stroke="{INK}" stroke-width="1.5"/>'
            )
        op = "≥" if row.at_least else "≤"
        right = max(x(row.value), x(row.high or 0.0), x(row.limit))
        figure = f"{row.value:.2f} (target {op} {row.limit:g})"
        parts.append(_text(right + 8, mid + 4, figure, "value"))
    tx = x(row.limit)
    parts.append(
        f'<line class="target" x1="{tx:.1f}" y1="{mid - 14:.1f}" x2="{tx:.1f}" '
        f'y2="{mid + 14:.1f}" stroke="{TARGET}" stroke-width="2" stroke-dasharray="4 3"/>'
    )
    if row.baseline is not None:
        bx = x(row.baseline)
        points = f"{bx:.1f},{mid - 12:.1f} {bx + 5:.1f},{mid - 7:.1f} "
        points += f"{bx:.1f},{mid - 2:.1f} {bx - 5:.1f},{mid - 7:.1f}"
        parts.append(f'<polygon class="baseline" points="{points}" fill="#888888"/>')
    parts.append("</g>")
    return parts
