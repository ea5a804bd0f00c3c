"""Server-rendered SVG charts for the project page: no script, no outside file.

Why SVG written by hand: the page must read without JavaScript and load
nothing from another host, and two chart shapes (stacked columns per day,
horizontal bars) do not justify a plotting dependency in the request path.
Every mark carries a ``<title>`` with its exact number, which browsers show
on hover without any script; the numbers themselves are also in the page's
tables.

Every text that reaches the SVG goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Layer", "stacked_columns", "two_lines", "nice_max"]


@dataclass(frozen=True)
class Layer:
    """One traffic class in the stack: its name, CSS class (colour) and per-day values."""

    label: str
    css: str
    values: Sequence[int]


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (an axis top that reads well)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _axis(width: int, height: int, left: int, bottom: int, top_value: float) -> list[str]:
    """Horizontal grid lines at 0, ½ and the top, with their values."""
    out = []
    plot_height = height - bottom - 8
    for fraction in (0.0, 0.5, 1.0):
        y = 8 + plot_height * (1 - fraction)
        out.append(f'<line class="grid" x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{_number(top_value * fraction)}</text>')
    return out


def _day_labels(days: Sequence[str], x_of, width_of: float, baseline: float) -> list[str]:
    """The first and last day under the axis, and a few between when there is room."""
    if not days:
        return []
    picks = {0, len(days) - 1}
    if len(days) > 2:
        picks |= {len(days) // 2}
    if len(days) > 8:
        picks |= {len(days) // 4, 3 * len(days) // 4}
    out = []
    for i in sorted(picks):
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        x = x_of(i) + (0 if anchor == "start" else width_of if anchor == "end" else width_of / 2)
        out.append(f'<text class="tick" x="{x:.1f}" y="{baseline + 16:.1f}" text-anchor="{anchor}">'
                   f'{html.escape(days[i])}</text>')
    return out


def stacked_columns(days: Sequence[str], layers: Sequence[Layer], title: str, width: int = 900,
                    height: int = 260) -> str:
    """One column per day, the layers stacked bottom-up in the order given.

    The first layer sits on the axis, so its heights read straight from the
    grid: the page puts the human series there.
    """
    left, bottom = 48, 24
    totals = [sum(layer.values[i] for layer in layers) for i in range(len(days))]
    top_value = nice_max(max(totals, default=0))
    plot_width, plot_height = width - left, height - bottom - 8
    slot = plot_width / max(1, len(days))
    gap = min(2.0, slot * 0.2)
    column = max(0.5, slot - gap)

    def x_of(i: int) -> float:
        return left + i * slot + gap / 2

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{html.escape(title)}</title>", *_axis(width, height, left, bottom, top_value)]
    baseline = 8 + plot_height
    for i, day in enumerate(days):
        y = baseline
        parts.append(f'<g class="day" data-day="{html.escape(day)}">')
        for layer in layers:
            value = layer.values[i]
            if value <= 0:
                continue
            h = plot_height * value / top_value
            y -= h
            parts.append(f'<rect class="{html.escape(layer.css)}" x="{x_of(i):.2f}" y="{y:.2f}" '
                         f'width="{column:.2f}" height="{h:.2f}"><title>{html.escape(day)} · '
                         f'{html.escape(layer.label)}: {value:,}</title></rect>')
        parts.append("</g>")
    parts += _day_labels(days, x_of, column, baseline)
    parts.append("</svg>")
    return "".join(parts)


def two_lines(days: Sequence[str], first: Sequence[int], second: Sequence[int], labels: tuple[str, str],
              title: str, width: int = 900, height: int = 180) -> str:
    """Two daily series as lines (downloads against index look-ups), with a point per day."""
    left, bottom = 48, 24
    top_value = nice_max(max([*first, *second], default=0))
    plot_width, plot_height = width - left, height - bottom - 8
    slot = plot_width / max(1, len(days))
    baseline = 8 + plot_height

    def point(i: int, value: int) -> tuple[float, float]:
        return left + (i + 0.5) * slot, baseline - plot_height * value / top_value

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{html.escape(title)}</title>", *_axis(width, height, left, bottom, top_value)]
    for values, css, label in ((first, "line-a", labels[0]), (second, "line-b", labels[1])):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in enumerate(values)))
        parts.append(f'<polyline class="{css}" fill="none" points="{points}"/>')
        if len(days) <= 120:
            for i, v in enumerate(values):
                x, y = point(i, v)
                parts.append(f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                             f"<title>{html.escape(days[i])} · {html.escape(label)}: {v:,}</title></circle>")
    parts += _day_labels(days, lambda i: left + i * slot, slot, baseline)
    parts.append("</svg>")
    return "".join(parts)
