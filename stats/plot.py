"""``haulage stats --plot``: downloads per day, stacked by traffic class.

Why this picture: download pages show one line that mixes mirrors, CI and
bots with people. Here every day is one stack whose bottom layer is the
human downloads, in the only strong colour, so its height reads straight
off the axis; CI, automation, unknown and mirror traffic sit on top in muted
colours, so the total is still visible without drowning the human series.

PNG and SVG come from matplotlib (no pyplot: no global state, no display);
``.html`` is one self-contained page with the chart inline as SVG and the
numbers as tables, to attach to an issue or publish as is.
"""

from __future__ import annotations

import html
import io
import math
import os
from typing import Any

from .render import LABELS, LEGEND, cell
from .report import SERIES, Report

FORMATS = (".png", ".svg", ".html")

# stacked bottom → top; human at the bottom so it starts at zero
LAYERS: tuple[tuple[str, str, str], ...] = (
    ("human", "human", "#1f5fbf"),
    ("ci", "CI", "#f2b36b"),
    ("automation", "automation", "#a3acb9"),
    ("unknown", "unknown agent", "#cfd5dd"),
    ("mirror", "mirror", "#e6e9ee"),
)
BAR_LIMIT = 120  # more days than this: stacked areas instead of bars
ANNOTATE_LIMIT = 31  # up to this many days: the human count is written in each bar
TREND_FROM = 28  # from this many (gapless) days on: a 7-day average of human on top


class PlotError(ValueError):
    """The plot file name has an extension we cannot write."""


def check_path(path: str) -> str:
    """The lower-case extension of ``path``, if it is one we can write."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PlotError(f"--plot {path}: use a file name ending in {', '.join(FORMATS)}")
    return ext


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _amount(value: float) -> str:
    """An average for people: whole numbers from 100 on, one decimal below."""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def figure(report: Report) -> Any:
    """The chart as a matplotlib Figure."""
    from matplotlib import patheffects
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    days = [day for day, _ in report.daily]
    n = len(days)
    x = list(range(n))
    fig = Figure(figsize=(11, 5.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()

    bottoms = [0] * n
    handles = []
    for name, label, colour in LAYERS:
        values = [counts.traffic(name) for _, counts in report.daily]
        total = sum(values)
        legend = f"{label}: {total:,} ({_percent(total, report.totals.total)})"
        if n <= BAR_LIMIT:
            handle = ax.bar(x, values, bottom=bottoms, width=0.8, color=colour, label=legend,
                            edgecolor="white", linewidth=0.5, zorder=2)
        else:
            tops = [b + v for b, v in zip(bottoms, values)]
            handle = ax.fill_between(x, bottoms, tops, color=colour, label=legend, linewidth=0, zorder=2)
        handles.append(handle)
        bottoms = [b + v for b, v in zip(bottoms, values)]

    human = [counts.human for _, counts in report.daily]
    if n > BAR_LIMIT:  # a line on top of the human area so its edge stays sharp
        ax.plot(x, human, color="#0b3d91", linewidth=0.8, zorder=3)
    if n >= TREND_FROM and not report.has_gaps:  # weekly cycles hide the trend; a 7-day mean shows it
        mean = [sum(human[max(0, i - 6): i + 1]) / len(human[max(0, i - 6): i + 1]) for i in range(n)]
        (trend,) = ax.plot(x[6:], mean[6:], color="#0a2a66", linewidth=2.2, zorder=5,
                           label="human, 7-day average",
                           path_effects=[patheffects.withStroke(linewidth=4.5, foreground="white")])
        handles.insert(0, trend)
    if n <= ANNOTATE_LIMIT:
        tallest = max(bottoms) or 1
        for xi, value, top in zip(x, human, bottoms):
            if value >= 0.06 * tallest:  # room for the label inside the human bar
                ax.annotate(f"{value:,}", (xi, value), xytext=(0, -3), textcoords="offset points",
                            ha="center", va="top", fontsize=8, color="white", fontweight="bold", zorder=4)
            if top:
                ax.annotate(f"{top:,}", (xi, top), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, color="#666666", zorder=4)

    t = report.totals
    fig.suptitle(f"{report.project}: downloads per day, {report.start} – {report.end}",
                 fontsize=14, fontweight="bold", x=0.01, ha="left")
    per_day = report.per_day("human")
    subtitle = (f"human {t.human:,} of {t.total:,} ({_percent(t.human, t.total)}), "
                f"{_amount(per_day)} a day · without mirrors {t.without_mirrors:,} · "
                f"bot share {100 * report.bot_share:.1f}%")
    if report.has_gaps:
        subtitle += " · days without data left out"
    ax.set_title(subtitle, fontsize=10, loc="left", color="#444444")

    ax.set_xlim(-0.6, n - 0.4)
    step = max(1, math.ceil(n / 8))  # at most ~8 day labels, always on whole days
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [days[i] for i in ticks])
    if len(ticks) > 5:
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("downloads per day")
    ax.set_xlabel(f"UTC day · source: {report.source} · haulage stats", fontsize=8, color="#888888")
    ax.grid(axis="y", color="#e5e5e5", zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    # legend top to bottom in the order of the stack, human last (nearest the axis)
    ax.legend(handles[::-1], [h.get_label() for h in handles[::-1]], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return fig


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE for inline use


def _html_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f"<th{' class=l' if i < left else ''}>{html.escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=l' if i < left else ''}>{html.escape(v)}</td>" for i, v in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """One self-contained page: the chart inline as SVG, then the numbers."""
    t = report.totals
    summary = _html_table(["", "downloads", "per day", "of total"], [
        [LABELS[name], f"{getattr(t, name):,}", f"{report.per_day(name):,.1f}", _percent(getattr(t, name), t.total)]
        for name in SERIES])
    daily = _html_table(["day", *(LABELS[n] for n in SERIES)], [
        [day, *(f"{v:,}" for v in counts.series().values())] for day, counts in report.daily])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.project)} downloads {report.start}..{report.end}</title>",
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}svg{max-width:100%;height:auto}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "th,td{padding:.25em .9em;text-align:right;font-variant-numeric:tabular-nums}th{border-bottom:1px solid #999}"
        ".l{text-align:left}tbody tr:nth-child(even){background:#f4f6f8}p.note{color:#555;font-size:.9em}</style>",
        "</head><body>",
        f"<h1>{html.escape(report.project)}: downloads {report.start} – {report.end}</h1>",
        f"<p>{t.human:,} human downloads of {t.total:,} in total over {len(report.days)} days with data; "
        f"{t.without_mirrors:,} without mirrors; bot share {100 * report.bot_share:.1f}%.</p>",
        f"<figure>{_svg(figure(report))}</figure>",
        "<h2>Summary</h2>", summary,
    ]
    if report.by:
        rows = [[*(cell(k) for k in keys), f"{c.total:,}", _percent(c.total, t.total),
                 *(f"{getattr(c, n):,}" for n in SERIES[1:])] for keys, c in report.breakdown]
        parts += [f"<h2>By {html.escape(', '.join(report.by))}</h2>",
                  _html_table([*report.by, "total", "share", *(LABELS[n] for n in SERIES[1:])], rows,
                              left=len(report.by))]
    parts += ["<h2>Per day</h2>", daily,
              f"<p class=note>{html.escape(LEGEND)}. Source: {html.escape(report.source)}.</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def write_plot(report: Report, path: str) -> None:
    """Write the chart to ``path`` as PNG, SVG or an HTML page (by extension)."""
    ext = check_path(path)
    if ext == ".html":
        text = render_html(report)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    fig = figure(report)
    metadata = {"Date": None} if ext == ".svg" else {"Software": "haulage stats"}
    fig.savefig(path, format=ext[1:], metadata=metadata)
