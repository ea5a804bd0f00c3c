"""The HTML of ``haulage serve``: home, project page, and the not-found page.

Why server-rendered HTML: every number must be readable without JavaScript
(the page carries none; its Content-Security-Policy forbids any) and nothing
may come from another host — the style is inline, the charts are inline SVG.

Escaping rule: every value that did not come from this module's own
constants goes through :func:`html.escape` (text and attributes) or
:func:`urllib.parse.quote` (URL parts). Project names come from URLs.

The figures and their definitions are those of ``haulage stats``
(:mod:`haulage.stats.report`); what is written here is how they
are shown: which cards, which precision, which words.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any, Optional, Sequence
from urllib.parse import quote

from .report import TRAFFIC, Counts, Groups, Report

from .page_data import BREAKDOWNS, RANGES, ProjectPage
from .svg import Layer, stacked_columns, two_lines

__all__ = ["home_page", "project_html", "not_found_page", "error_page", "project_url", "CARD_SERIES", "CARDS"]

# the series the cards show, and their labels
CARD_SERIES: tuple[tuple[str, str], ...] = (
    ("total", "Total"), ("without_mirrors", "Without mirrors"), ("human", "Human"), ("ci", "CI"))
# the rate cards: label, Report JSON key, the factor on the daily average
CARDS: tuple[tuple[str, str], ...] = (
    ("Downloads", "downloads"), ("Avg / day", "daily_average"), ("Avg / week", "avg_week"), ("Avg / month", "avg_month"))

# stack order, bottom first: human on the axis (easiest to read), mirrors on top,
# so the top edge is Total and the edge below the mirror layer is Without mirrors
STACK: tuple[tuple[str, str, str], ...] = (
    ("human", "Human", "t-human"), ("ci", "CI", "t-ci"), ("automation", "Automation (scripts, OS tools, bots)", "t-auto"),
    ("unknown", "Unrecognised agents", "t-unknown"), ("mirror", "Mirrors", "t-mirror"))
assert {name for name, _, _ in STACK} == set(TRAFFIC)

BREAKDOWN_TITLES: dict[str, str] = {
    "installer": "Installer", "python": "Python minor version", "system": "Operating system", "cpu": "CPU",
    "country": "Country", "cloud": "Cloud (from the kernel or distro)", "version": "Release", "package-type": "Package type"}
assert set(BREAKDOWN_TITLES) == set(BREAKDOWNS)
BARS_SHOWN = 10

STYLE = """
:root{--ink:#1d2330;--muted:#5b6472;--line:#dde1e7;--bg:#f6f7f9;--human:#1f5fbf;--ci:#e3a21a;--auto:#98a2ae;
--unknown:#cdd2d9;--mirror:#c6b4e3;--up:#137333;--down:#b3261e}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#fff;border-bottom:1px solid var(--line);padding:10px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header.top a.brand{font-weight:700;color:var(--ink);text-decoration:none}
form.search{display:flex;gap:6px}form.search input{font:inherit;padding:5px 8px;border:1px solid #b9c0ca;border-radius:6px;width:16em}
form.search button{font:inherit;padding:5px 12px;border:1px solid #b9c0ca;border-radius:6px;background:#fff}
main{max-width:1100px;margin:0 auto;padding:16px 24px 40px}
h1{margin:8px 0 2px;font-size:26px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.sub{color:var(--muted)}nav.ranges{display:flex;gap:6px;margin:10px 0}
nav.ranges a{padding:4px 12px;border:1px solid #b9c0ca;border-radius:16px;text-decoration:none;color:var(--ink);background:#fff}
nav.ranges a[aria-current=page]{background:var(--ink);color:#fff;border-color:var(--ink)}
.panel{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:12px 0}
table.cards{width:100%;border-collapse:collapse}table.cards th,table.cards td{padding:8px 10px;text-align:right;border-bottom:1px solid var(--line)}
table.cards th:first-child,table.cards td:first-child{text-align:left}table.cards tr.human td{font-weight:600}
table.cards thead th{font-weight:600;color:var(--muted);font-size:13px}
.value{font-variant-numeric:tabular-nums;font-size:17px}.change{display:block;font-size:12px;color:var(--muted)}
.change.up{color:var(--up)}.change.down{color:var(--down)}.rate{font-weight:400;font-size:11px;color:var(--muted)}
.grid4{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:12px}
.card .big{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums}.card p{margin:6px 0 0;color:var(--muted);font-size:13px}
.fresh-normal{color:var(--up)}.fresh-minor-lag{color:#9a6700}.fresh-delayed{color:var(--down)}
svg.chart{display:block;margin:6px 0}svg .grid{stroke:var(--line)}svg .tick{font-size:11px;fill:var(--muted)}
.t-human{fill:var(--human)}.t-ci{fill:var(--ci)}.t-auto{fill:var(--auto)}.t-unknown{fill:var(--unknown)}.t-mirror{fill:var(--mirror)}
polyline.line-a{stroke:var(--human);stroke-width:2}polyline.line-b{stroke:var(--ci);stroke-width:2}
circle.line-a{fill:var(--human)}circle.line-b{fill:var(--ci)}
ul.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.bars{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}
table.bars-t{width:100%;border-collapse:collapse;font-size:13px}table.bars-t td{padding:2px 4px;vertical-align:middle}
table.bars-t td.key{width:38%;overflow-wrap:anywhere}table.bars-t .value{font-size:13px}table.bars-t td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{height:10px;background:var(--human);border-radius:2px;min-width:1px}.bar.other{background:var(--auto)}
table.daily{border-collapse:collapse;font-size:13px}table.daily td,table.daily th{padding:2px 10px;text-align:right;border-bottom:1px solid var(--line)}
dl.defs dt{font-weight:600;margin-top:10px}dl.defs dd{margin:2px 0 0 0;color:#333}code{font-size:13px}
.note{font-size:13px;color:var(--muted)}footer{color:var(--muted);font-size:12px;margin-top:30px}
"""


# --------------------------------------------------------------------------
# formatting: the precision each kind of figure is shown with


def e(value: Any) -> str:
    """Escaped text (for element content and quoted attributes)."""
    return html.escape(str(value), quote=True)


def project_url(project: str, range_key: Optional[str] = None) -> str:
    url = "/project/" + quote(project, safe="")
    return url if range_key is None else f"{url}?range={quote(range_key, safe='')}"


def count(value: int) -> str:
    return f"{value:,}"


def rate(value: float) -> str:
    """Averages: one decimal below 1,000, whole numbers above."""
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def change_html(change: Optional[float], points: bool = False) -> str:
    """A change as a signed percentage (a fraction in), or in percentage points; — without a base."""
    if change is None:
        return '<span class="change" data-change="">— no earlier data</span>'
    shown = (f"{change:+.1f} pp" if points else f"{100 * change:+.1f} %").replace("-", "−")
    css = "up" if change > 0 else "down" if change < 0 else ""
    return f'<span class="change {css}" data-change="{change}">{shown} vs previous period</span>'


def _page(title: str, body: str, search_value: str = "") -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        "<header class=\"top\"><a class=\"brand\" href=\"/\">haulage</a>"
        "<form class=\"search\" action=\"/search\" method=\"get\" role=\"search\">"
        f"<input type=\"search\" name=\"q\" placeholder=\"project name, e.g. requests\" aria-label=\"project name\" "
        f"value=\"{e(search_value)}\" required><button type=\"submit\">Show</button></form></header>"
        f"<main>{body}<footer>Read-only. Served by <code>haulage serve</code> from this machine alone: no script, "
        "font or style from anywhere else. Days are UTC.</footer></main></body></html>\n")


# --------------------------------------------------------------------------
# home, not found, error


def home_page(source: str, newest_day: Optional[str], freshness_days: Optional[int], freshness: Optional[str],
              projects: Sequence[tuple[str, int]] = ()) -> str:
    fresh = ""
    if newest_day is not None:
        fresh = (f'<p>Newest day with data: <b>{e(newest_day)}</b>, '
                 f'<span class="fresh-{e((freshness or "").replace(" ", "-"))}">{e(freshness_days)} day(s) old '
                 f"({e(freshness)})</span>. Days are UTC.</p>")
    listing = ""
    if projects:
        items = "".join(f'<li><a href="{e(project_url(name))}">{e(name)}</a> <span class="sub">{count(n)}</span></li>'
                        for name, n in projects)
        listing = f"<h2>Most downloaded on the newest day</h2><ol>{items}</ol>"
    body = (f"<h1>Download statistics</h1><p class=\"sub\">From <code>{e(source)}</code>.</p>{fresh}"
            "<div class=\"panel\"><p>Type a project name above. Names are matched the way pip matches them "
            "(PEP 503: case, <code>-</code>, <code>_</code> and <code>.</code> do not matter).</p></div>"
            f"{listing}")
    return _page("haulage", body)


def not_found_page(project: str, message: str, suggestions: Sequence[str] = ()) -> str:
    hint = ""
    if suggestions:
        links = ", ".join(f'<a href="{e(project_url(name))}">{e(name)}</a>' for name in suggestions)
        hint = f"<p>Did you mean {links}?</p>"
    body = (f"<h1>No project “{e(project)}”</h1><div class=\"panel\"><p>{e(message)}.</p>{hint}"
            "<p class=\"note\">Only projects with at least one download in the dataset have a page. "
            "Search again above.</p></div>")
    return _page(f"{project}: not found", body, project)


def error_page(title: str, message: str, project: str = "") -> str:
    return _page(title, f"<h1>{e(title)}</h1><div class=\"panel\"><p>{e(message)}</p></div>", project)


def ranges_nav(project: str, current: str) -> str:
    links = []
    for key in RANGES:
        label = "all" if key == "all" else key
        current_attr = ' aria-current="page"' if key == current else ""
        links.append(f'<a href="{e(project_url(project, key))}" data-range="{e(key)}"{current_attr}>{e(label)}</a>')
    return f'<nav class="ranges" aria-label="range">{"".join(links)}</nav>'


def empty_range_page(project: str, range_key: str, message: str) -> str:
    body = (f"<h1>{e(project)}</h1>{ranges_nav(project, range_key)}"
            f"<div class=\"panel\"><p>{e(message)}.</p><p>Pick a longer range above.</p></div>")
    return _page(project, body, project)


# --------------------------------------------------------------------------
# the project page


def _cards(report: Report) -> str:
    data = report.to_json()
    change = data["change"]
    head = "".join(f"<th scope=\"col\">{e(label)}{'' if key == 'downloads' else ' <span class=rate>rate</span>'}</th>"
                   for label, key in CARDS)
    rows = []
    for series, label in CARD_SERIES:
        cells = []
        for _, key in CARDS:
            value = data[series] if key == "downloads" else data[key][series]
            shown = count(value) if key == "downloads" else rate(value)
            cells.append(f'<td data-card="{e(key)}" data-series="{e(series)}"><span class="value">{shown}</span>'
                         f"{change_html(change[key][series])}</td>")
        rows.append(f'<tr class="{e(series.replace("_", "-"))}"><th scope="row">{e(label)}</th>{"".join(cells)}</tr>')
    return (f'<table class="cards" id="cards"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">Avg / day divides by the days in the range that have data in the dataset; '
            "Avg / week is that × 7 and Avg / month × 30 — rates, not calendar sums. Changes compare with "
            f"the previous {(report.end - report.start).days + 1} days ({e(data['previous']['from'])} to "
            f"{e(data['previous']['to'])}, {data['previous']['days']} day(s) with data).</p>")


def _side_cards(report: Report) -> str:
    data = report.to_json()
    change = data["change"]
    # bot share
    bots = (f'<div class="panel card" id="card-bots"><h3>Bot %</h3><div class="big"><span class="value">'
            f'{data["bot_pct"]:.1f} %</span></div>{change_html(change["bot_pct"], points=True)}'
            "<p>1 − Human / Total: every download that is not a person at an installer or a browser — mirrors, "
            "CI, scripts, OS tools, bots and unrecognised agents. Known bots and requests without an agent alone: "
            f'<span id="known-bots">{count(data["bots"])}</span> ({percent(data["bot_share"])}).</p></div>')
    # environments
    if report.environments is None:
        env_value = '<span class="value">unknown</span>'
        env_note = ("Every day in this range was written before haulage recorded agent fingerprints "
                    "(the <code>agent_fingerprint</code> column), so there is nothing to count.")
    else:
        env_value = f'<span class="value">{count(report.environments)}</span>'
        env_note = ""
        if report.environments_unknown_days:
            env_note = (f"Not counting {report.environments_unknown_days} day(s) written before the "
                        "<code>agent_fingerprint</code> column existed: for those days environments are unknown.")
    environments = (
        '<div class="panel card" id="card-environments"><h3>Distinct client environments</h3>'
        f'<div class="big">{env_value}</div>{change_html(change["environments"])}'
        "<p><b>Environments, not people.</b> One environment is one distinct combination of user-agent string "
        "(installer, Python, OS, libc, CPU, CI flag… as the client sent it), country and TLS protocol and cipher. "
        "Many people share an environment (the same pip on the same Python in the same country looks identical), "
        "and one person can have several (a laptop, a CI runner, a new pip). No IP address exists in the logs "
        f"or is used. {env_note}</p>"
        f"<p class=\"note\">{'Exact count' if report.source.startswith('parquet:') else 'HyperLogLog++ estimate'} "
        "(see definitions).</p></div>")
    # index look-ups
    if report.simple_daily is None:
        lookups = ('<div class="panel card" id="card-lookups"><h3>Downloads per index look-up</h3>'
                   '<div class="big"><span class="value">unknown</span></div><p>No simple_requests table.</p></div>')
    else:
        ratio = "—" if data["downloads_per_lookup"] is None else f"{data['downloads_per_lookup']:,.2f}"
        lookups = ('<div class="panel card" id="card-lookups"><h3>Downloads per index look-up</h3>'
                   f'<div class="big"><span class="value">{ratio}</span></div>'
                   f'<p>{count(data["total"])} downloads against <span id="simple-total">{count(data["simple_requests"])}'
                   "</span> requests for the project's <code>/simple/</code> index page. Installers read the index "
                   "before they download, mirrors and caches often do not, so far more downloads than look-ups point "
                   "to mirrors, caches and scripted fetches of known URLs.</p></div>")
    # freshness
    fresh_css = (data["freshness"] or "").replace(" ", "-")
    freshness = ('<div class="panel card" id="card-freshness"><h3>Freshness</h3>'
                 f'<div class="big"><span class="value fresh-{e(fresh_css)}">{e(data["freshness_days"])} day(s)</span></div>'
                 f'<p>Newest day with data: <b>{e(data["newest_day"])}</b> — <span class="fresh-{e(fresh_css)}">'
                 f'{e(data["freshness"])}</span>. 0–1 days old is normal, 2–3 a minor lag, 4 or more delayed. '
                 "Days are UTC: a day is complete only after midnight UTC.</p></div>")
    return f'<div class="grid4">{bots}{environments}{lookups}{freshness}</div>'


def _chart(report: Report) -> str:
    days = [day for day, _ in report.daily]
    layers = [Layer(label, css, [counts.traffic(name) for _, counts in report.daily]) for name, label, css in STACK]
    svg = stacked_columns(days, layers, f"Downloads of {report.project} per day by traffic class")
    legend = "".join(f'<li><span class="swatch {e(css)}" style="background:var(--{e(css[2:])})"></span>{e(label)}</li>'
                     for _, label, css in STACK)
    return (f'<div class="panel" id="chart"><h2 style="margin-top:0">Downloads per day by traffic class</h2>{svg}'
            f'<ul class="legend">{legend}</ul><p class="note">Read the blue layer on the axis for <b>Human</b>; '
            "the top edge of each column is <b>Total</b>; the edge below the mirror layer is <b>Without mirrors</b>. "
            "The CI layer is CI traffic that is not a mirror; the CI card also counts the rare mirror that says it "
            "runs in CI. Hover a block for its number; the table below has them all."
            f"{_gaps_note(report)}</p></div>")


def _gaps_note(report: Report) -> str:
    """Columns stand for days with data: say so when the axis skips days."""
    if not report.daily or not report.has_gaps:
        return ""
    first, last = report.days[0], report.days[-1]
    calendar = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
    return (f" <b>The axis skips {calendar - len(report.days)} day(s) without data</b> between {e(first)} "
            f"and {e(last)}: columns are the {len(report.days)} days that have data.")


def _daily_table(report: Report) -> str:
    simple = report.simple_daily
    head = "<th>day</th><th>total</th><th>without mirrors</th><th>human</th><th>ci</th>" + (
        "<th>index look-ups</th>" if simple is not None else "")
    rows = []
    for i, (day, c) in enumerate(report.daily):
        extra = f"<td>{count(simple[i])}</td>" if simple is not None else ""
        rows.append(f"<tr><th>{e(day)}</th><td>{count(c.total)}</td><td>{count(c.without_mirrors)}</td>"
                    f"<td>{count(c.human)}</td><td>{count(c.ci)}</td>{extra}</tr>")
    return (f'<details class="panel" id="daily"><summary>Every day as numbers ({len(report.daily)} days)</summary>'
            f'<table class="daily"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></details>')


def _lookups_chart(report: Report) -> str:
    if report.simple_daily is None or not report.daily:
        return ""
    days = [day for day, _ in report.daily]
    svg = two_lines(days, [c.total for _, c in report.daily], list(report.simple_daily),
                    ("downloads", "index look-ups"), f"Downloads and index look-ups of {report.project} per day")
    return (f'<div class="panel" id="lookups"><h2 style="margin-top:0">Downloads against index look-ups</h2>{svg}'
            '<ul class="legend"><li><span class="swatch" style="background:var(--human)"></span>downloads</li>'
            '<li><span class="swatch" style="background:var(--ci)"></span><code>/simple/</code> look-ups</li></ul></div>')


def _label(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bars(name: str, groups: Groups, total: int) -> str:
    shown = groups[:BARS_SHOWN]
    rest = groups[BARS_SHOWN:]
    top = max((c.total for _, c in shown), default=0) or 1
    rows = []
    for keys, c in shown:
        share = c.total / total if total else 0
        rows.append(f'<tr data-key="{e(_label(keys[0]))}"><td class="key">{e(_label(keys[0]))}</td>'
                    f'<td style="width:45%"><div class="bar" style="width:{100 * c.total / top:.2f}%"></div></td>'
                    f'<td class="n"><span class="value">{count(c.total)}</span></td><td class="n">{percent(share)}</td></tr>')
    if rest:
        other = sum((c for _, c in rest), Counts())
        rows.append(f'<tr class="other" data-key=""><td class="key">{len(rest)} more</td>'
                    f'<td><div class="bar other" style="width:{100 * other.total / top:.2f}%"></div></td>'
                    f'<td class="n"><span class="value">{count(other.total)}</span></td>'
                    f'<td class="n">{percent(other.total / total if total else 0)}</td></tr>')
    return (f'<div class="panel" data-breakdown="{e(name)}"><h3>{e(BREAKDOWN_TITLES[name])}</h3>'
            f'<table class="bars-t"><tbody>{"".join(rows)}</tbody></table></div>')


def _definitions(report: Report) -> str:
    estimate = ("Counted exactly (DuckDB <code>count(DISTINCT …)</code> over the Parquet files)"
                if report.source.startswith("parquet:") else
                "Estimated by BigQuery's <code>APPROX_COUNT_DISTINCT</code> (HyperLogLog++; exact for small "
                "counts, within about a percent for large ones)")
    return f"""<section class="panel" id="definitions"><h2 style="margin-top:0">Definitions</h2><dl class="defs">
<dt>Total</dt><dd>Every download of a file of the project: nothing removed. Includes mirrors, CI, scripts and bots.</dd>
<dt>Without mirrors</dt><dd>Removes downloads by mirroring clients — <code>classification.traffic = 'mirror'</code>:
bandersnatch, devpi, z3c.pypimirror, Artifactory, Nexus and pep381client, also when they send a standard
<code>name/version</code> agent. Keeps everything else, including bots and agents nobody recognises.</dd>
<dt>Human</dt><dd>Keeps only installers (pip, uv, poetry, pdm, conda, …) and browsers that are neither mirrors nor
in CI (<code>traffic = 'human'</code>). Removes mirrors, CI, automation (HTTP libraries, curl/wget, OS package tools,
known bots and requests without an agent) and unrecognised agents.</dd>
<dt>CI</dt><dd>Only downloads whose agent says it runs in CI (<code>details.ci = true</code>; pip and uv set it
from the CI environment variables), whatever else they are.</dd>
<dt>Bot %</dt><dd>1 − Human / Total: the share of downloads that are not a person at an installer or browser.
Known bots and requests without an agent alone are named beside it.</dd>
<dt>How “without mirrors” differs from pypistats.org</dt><dd>pypistats.org counts <em>without mirrors</em> as
downloads whose <code>details.installer.name</code> is <code>NOT IN ('bandersnatch', 'z3c.pypimirror',
'Artifactory', 'devpi')</code> — four names, matched exactly (source: <code>pypistats/tasks/pypi.py</code> in
github.com/crflynn/pypistats.org, <code>MIRRORS</code> and <code>get_query</code>). Three differences follow:
Nexus and pep381client (and mirrors sending standard agents) count as downloads there and as mirrors here; and
because SQL's <code>NOT IN</code> is never true for a NULL installer, pypistats also drops every download with
no installer name — bots, unrecognised agents, requests without an agent — which “without mirrors” here keeps.
pypistats also leaves out downloads whose Python version is not of the form <code>N.N…</code> from all its
series.</dd>
<dt>Distinct client environments</dt><dd>Distinct (<code>agent_fingerprint</code>, <code>country_code</code>,
<code>tls_protocol</code>, <code>tls_cipher</code>) among the range's downloads that have an agent. The fingerprint
is a 64-bit BLAKE2b hash of the raw user-agent string, stored at ingest; nothing about IP addresses is ever
stored. {estimate}. Days written before the fingerprint existed cannot be counted and are named on the card.</dd>
<dt>Downloads per index look-up</dt><dd>Downloads of the project divided by requests for its
<code>/simple/&lt;project&gt;/</code> page over the same days.</dd>
<dt>Days</dt><dd>UTC days. A day “has data” when the dataset holds any download of any project on it;
averages divide by those days, so a missing latest day does not drag an average down.</dd>
</dl></section>"""


def project_html(page: ProjectPage) -> str:
    report = page.report
    calendar = (report.end - report.start).days + 1
    days = f"{len(report.days)} day(s) with data" + ("" if len(report.days) == calendar else f" of {calendar}")
    bars = "".join(_bars(name, page.breakdowns[name], report.totals.total) for name in BREAKDOWNS)
    body = (f'<h1 id="project">{e(report.project)}</h1>'
            f'<p class="sub" id="range"><span id="range-from">{e(report.start)}</span> to '
            f'<span id="range-to">{e(report.end)}</span> ({e(days)}), from <code>{e(report.source)}</code></p>'
            f"{ranges_nav(report.project, page.range_key)}"
            f'<div class="panel">{_cards(report)}</div>{_side_cards(report)}{_chart(report)}{_daily_table(report)}'
            f"{_lookups_chart(report)}<h2>Breakdowns</h2><p class=\"note\">All downloads in the range, biggest "
            f"groups first; “(none)” is downloads whose agent does not say.</p><div class=\"bars\">{bars}</div>"
            f"{_definitions(report)}")
    return _page(f"{report.project} · downloads", body, report.project)
