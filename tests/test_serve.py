"""``haulage serve`` in a real browser: the page shows exactly ``haulage stats --json``'s numbers.

A labelled synthetic log of twelve days goes through the real pipeline into
Parquet; ``haulage serve`` runs as its own process on a free port; Debian's
headless Chromium (with JavaScript switched off, so nothing on the page can
depend on it) loads the pages. Every number read from the page is compared
with ``haulage stats --json`` on the same tables — cards, changes, bot %,
environments, index look-ups, freshness, the daily table, the chart's human
layer and the breakdown bars — for several projects and ranges.
Environments are also checked against a count made from the log lines alone.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

from support import browser as chromium
from support import pipeline_check as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402

LINES, SEED, START, DAYS = 6000, 20261014, "2026-10-01", 12
RANGES = {"all": [], "7d": ["--days", "7"], "30d": ["--days", "30"], "90d": ["--days", "90"]}
BREAKDOWNS = ("installer", "python", "system", "cpu", "country", "cloud", "version", "package-type")


def need_chromium() -> None:
    """Chromium must run in CI; elsewhere a missing browser skips these tests, loudly."""
    if chromium.installed():
        return
    message = ("Debian's chromium is not installed, so the browser tests of haulage serve cannot run: "
               "apt-get install -y chromium (make test does it when run as root)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip("SKIPPED LOUDLY: " + message)


# --------------------------------------------------------------------------
# fixtures: the dataset, the server, the browser


@pytest.fixture(scope="module")
def items():
    return corpus.generate_labelled(LINES, seed=SEED, start_date=START, days=DAYS)


@pytest.fixture(scope="module")
def dataset(items, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve-logs")
    for i in range(3):
        part = items[i * LINES // 3:(i + 1) * LINES // 3]
        (folder / f"downloads-{i}.log.gz").write_bytes(gzip.compress(pc.joined(pc.lines_of(part)), mtime=0))
    out = tmp_path_factory.mktemp("serve-parquet") / "out"
    result = pc.run_cli(["run", "--input", str(folder / "*.log.gz"), "--output-dir", str(out), "--quiet"])
    assert result.code == 0, result.stderr
    return out


class Served:
    """``haulage serve`` as a subprocess on a free port."""

    def __init__(self, output_dir: Path) -> None:
        command = [str(Path(sys.executable).with_name("haulage")), "serve", "--output-dir", str(output_dir),
                   "--port", "0", "--quiet"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"http://[^ ]+/", line)
        if match is None:
            self.process.kill()
            raise AssertionError(f"haulage serve did not start: {line!r} {self.process.stderr.read()}")
        self.url = match.group(0)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(dataset):
    served = Served(dataset)
    yield served
    served.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    need_chromium()
    with chromium.Chromium(tmp_path_factory.mktemp("chromium")) as b:
        b.disable_javascript()
        yield b


def stats_json(output_dir: Path, project: str, *argv: str) -> dict[str, Any]:
    result = pc.run_cli(["stats", project, "--output-dir", str(output_dir), "--json", *argv])
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def top_projects(items, n: int) -> list[str]:
    return [p for p, _ in collections.Counter(e.project for _, e in items if e.table == "file_downloads").most_common(n)]


# --------------------------------------------------------------------------
# reading numbers off the page (visible text, as a person reads it)


def number(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-").replace("%", "").replace("pp", "").strip())


def change_of(text: str) -> Optional[float]:
    """'+12.3 % vs previous period' → 12.3; '— no earlier data' → None."""
    text = text.strip()
    if text.startswith("—"):
        return None
    return number(text.split("vs")[0])


def close_to(shown: float, exact: float, decimals: int) -> bool:
    """A figure shown with ``decimals`` places equals one rounded to 2 places in the JSON."""
    return abs(shown - exact) <= 0.5 * 10 ** -decimals + 0.0051


CARDS_JS = """JSON.stringify(Array.from(document.querySelectorAll('#cards td[data-card]')).map(td =>
  [td.dataset.card, td.dataset.series, td.querySelector('.value').textContent, td.querySelector('.change').textContent]))"""


def read_page(b: chromium.Chromium) -> dict[str, Any]:
    q = lambda selector: b.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")  # noqa: E731
    page = {
        "project": q("#project"),
        "from": q("#range-from"),
        "to": q("#range-to"),
        "cards": json.loads(b.evaluate(CARDS_JS)),
        "bot_pct": q("#card-bots .value"), "bot_change": q("#card-bots .change"),
        "known_bots": q("#known-bots"),
        "environments": q("#card-environments .value"), "environments_change": q("#card-environments .change"),
        "environments_text": q("#card-environments"),
        "lookups": q("#card-lookups .value"), "simple_total": q("#simple-total"),
        "freshness": q("#card-freshness .value"), "freshness_text": q("#card-freshness"),
        "daily": json.loads(b.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('#daily tbody tr')).map(
            tr => Array.from(tr.children).map(c => c.textContent)))""")),
        "human_layer": json.loads(b.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('#chart g.day')).map(
            g => [g.dataset.day, Array.from(g.querySelectorAll('rect.t-human title')).map(t => t.textContent)]))""")),
        "bars": json.loads(b.evaluate("""JSON.stringify(Object.fromEntries(Array.from(
            document.querySelectorAll('[data-breakdown]')).map(div => [div.dataset.breakdown,
            Array.from(div.querySelectorAll('tr')).map(tr => [tr.className, tr.querySelector('td.key').textContent,
            tr.querySelector('.value').textContent])])))""")),
        "current_range": b.evaluate("document.querySelector('nav.ranges a[aria-current=page]').dataset.range"),
    }
    return page


def check_page_equals_json(page: dict[str, Any], want: dict[str, Any]) -> None:
    assert page["project"] == want["project"]
    assert (page["from"], page["to"]) == (want["from"], want["to"])
    series = {"total", "without_mirrors", "human", "ci"}
    seen = set()
    for card, name, value, change in page["cards"]:
        seen.add((card, name))
        if card == "downloads":
            assert int(number(value)) == want[name], (card, name, value)
        else:
            exact = want[card][name]
            assert close_to(number(value), exact, 1 if exact < 1000 else 0), (card, name, value, exact)
        exact_change = want["change"][card][name]
        shown = change_of(change)
        assert (shown is None) == (exact_change is None), (card, name, change, exact_change)
        if shown is not None:
            assert close_to(shown, 100 * exact_change, 1), (card, name, change, exact_change)
    assert seen == {(c, s) for c in ("downloads", "daily_average", "avg_week", "avg_month") for s in series}

    assert close_to(number(page["bot_pct"]), want["bot_pct"], 1)
    assert want["bot_pct"] == round(100 * (1 - want["human"] / want["total"]), 2)  # the card's definition
    bot_change = change_of(page["bot_change"])
    assert (bot_change is None) == (want["change"]["bot_pct"] is None)
    if bot_change is not None:
        assert close_to(bot_change, want["change"]["bot_pct"], 1)
    assert int(number(page["known_bots"])) == want["bots"]

    if want["environments"] is None:
        assert page["environments"] == "unknown"
    else:
        assert int(number(page["environments"])) == want["environments"]
    assert "Environments, not people." in page["environments_text"]
    env_change = change_of(page["environments_change"])
    assert (env_change is None) == (want["change"]["environments"] is None)
    if env_change is not None:
        assert close_to(env_change, 100 * want["change"]["environments"], 1)

    if want["downloads_per_lookup"] is None:
        assert page["lookups"] in ("—", "unknown")
    else:
        assert number(page["lookups"]) == want["downloads_per_lookup"]
        assert int(number(page["simple_total"])) == want["simple_requests"]

    assert page["freshness"] == f"{want['freshness_days']} day(s)"
    assert want["newest_day"] in page["freshness_text"] and want["freshness"] in page["freshness_text"]
    assert "Days are UTC" in page["freshness_text"]

    daily = [[day, *(int(number(v)) for v in values)] for day, *values in page["daily"]]
    assert daily == [[d["day"], d["total"], d["without_mirrors"], d["human"], d["ci"], d["simple_requests"]]
                     for d in want["daily"]]
    human = {day: sum(int(number(t.rsplit(":", 1)[1])) for t in titles) for day, titles in page["human_layer"]}
    assert human == {d["day"]: d["human"] for d in want["daily"]}


def check_bars_equal_by(page: dict[str, Any], output_dir: Path, project: str, argv: list[str]) -> None:
    for field in BREAKDOWNS:
        answer = stats_json(output_dir, project, "--by", field, *argv)
        groups = [("(none)" if g[field] is None else str(g[field]), g["total"]) for g in answer["breakdown"]]
        rows = page["bars"][field]
        shown = [(key, int(number(value))) for css, key, value in rows if css != "other"]
        assert shown == groups[:len(shown)] and len(shown) == min(10, len(groups)), (field, shown, groups)
        others = [int(number(value)) for css, _, value in rows if css == "other"]
        assert others == ([sum(n for _, n in groups[10:])] if len(groups) > 10 else []), field
        assert sum(n for _, n in shown) + sum(others) == answer["total"]


# --------------------------------------------------------------------------
# the tests


def fingerprint_of(agent: str) -> Optional[int]:
    if agent in ("", "(null)"):
        return None
    return int.from_bytes(hashlib.blake2b(agent.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def environments_from_lines(items, project: str, first: str, last: str) -> int:
    """Distinct (fingerprint, country, TLS protocol, TLS cipher) counted from the raw lines alone."""
    seen = set()
    for line, e in items:
        if e.table != "file_downloads" or e.project != project or not first <= e.date <= last:
            continue
        _, _, country, _, protocol, cipher, *_, agent = line.decode().split("|", 9)
        if fingerprint_of(agent) is not None:
            seen.add((fingerprint_of(agent), *(None if v in ("", "(null)") else v for v in (country, protocol, cipher))))
    return len(seen)


def test_page_numbers_equal_stats_json(items, dataset, server, browser, tmp_path):
    projects = top_projects(items, 3)
    null_details = collections.Counter(e.project for _, e in items
                                       if e.table == "file_downloads" and e.kind in ("bot", "unknown"))
    projects.append(next(p for p, _ in null_details.most_common() if p not in projects))
    checked = 0
    for project in projects:
        for range_key in (["all", "7d", "30d", "90d"] if project == projects[0] else ["all", "7d"]):
            status = browser.goto(f"{server.url}project/{project}?range={range_key}")
            assert status == 200
            page = read_page(browser)
            assert page["current_range"] == range_key
            want = stats_json(dataset, project, *RANGES[range_key])
            check_page_equals_json(page, want)
            assert want["environments"] == environments_from_lines(items, project, want["from"], want["to"])
            # nothing but this server was asked for anything
            assert all(url.startswith(server.url) for url in browser.requested_urls()), browser.requested_urls()
            if range_key in ("all", "7d") and project in projects[:2]:
                check_bars_equal_by(page, dataset, project, RANGES[range_key])
            checked += 1
    assert checked == 10
    # the 7-day range of the busiest project has a previous period with data: real changes shown
    browser.goto(f"{server.url}project/{projects[0]}?range=7d")
    assert any(change_of(change) is not None for *_, change in read_page(browser)["cards"])

    browser.goto(f"{server.url}project/{projects[0]}")
    shot = browser.screenshot(tmp_path / "project-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_search_range_buttons_and_canonical_names(items, server, browser):
    project = top_projects(items, 1)[0]
    # the search form, submitted as a person would (the page itself has no script)
    assert browser.goto(server.url) == 200
    typed = project.upper().replace("-", "_")
    browser.evaluate(f"document.querySelector('form.search input').value = {json.dumps(typed)}")
    browser.evaluate("document.querySelector('form.search button').click()")
    browser._wait_event("Page.loadEventFired")
    assert browser.url() == f"{server.url}project/{project}"
    # a range button
    browser.evaluate("document.querySelector('nav.ranges a[data-range=\"7d\"]').click()")
    browser._wait_event("Page.loadEventFired")
    assert browser.url() == f"{server.url}project/{project}?range=7d"
    assert read_page(browser)["current_range"] == "7d"
    # other spellings of the name go to the canonical page, keeping the range
    spelled = project.replace("-", "_").title() if "-" in project else project.upper()
    assert browser.goto(f"{server.url}project/{spelled}?range=30d") == 200
    assert browser.url() == f"{server.url}project/{project}?range=30d"


def test_unknown_projects_are_404_with_suggestions_and_names_are_escaped(items, server, browser):
    project = top_projects(items, 1)[0]
    near = project[:-1] + ("x" if project[-1] != "x" else "y")
    assert browser.goto(f"{server.url}project/{near}") == 404
    links = json.loads(browser.evaluate("JSON.stringify(Array.from(document.querySelectorAll('main a')).map(a => a.textContent))"))
    assert project in links
    assert "not found" in browser.evaluate("document.body.textContent")

    evil = '<img src=x onerror=alert(1)><script>alert(2)</script>'
    assert browser.goto(f"{server.url}project/{urllib.request.quote(evil, safe='')}") == 404
    assert browser.evaluate("document.querySelectorAll('main img, main script').length") == 0
    assert evil.lower() in browser.evaluate("document.querySelector('h1').textContent")
    assert all(url.startswith(server.url) for url in browser.requested_urls())

    assert browser.goto(f"{server.url}project/{project}?range=1y") == 400
    assert browser.goto(f"{server.url}no/such/page") == 404


def test_headers_forbid_scripts_and_outside_hosts(items, server):
    project = top_projects(items, 1)[0]
    with urllib.request.urlopen(f"{server.url}project/{project}") as answer:
        policy = answer.headers["Content-Security-Policy"]
        body = answer.read().decode()
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in body
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", body), "nothing may load from another host"
    with pytest.raises(urllib.error.HTTPError) as found:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}project/{project}", method="POST"))
    assert found.value.code == 501


# --------------------------------------------------------------------------
# data written before the agent_fingerprint column


def _strip_fingerprints(folder: Path) -> None:
    import pyarrow.parquet as pq

    for path in folder.glob("*.parquet"):
        table = pq.read_table(path)
        if "agent_fingerprint" in table.column_names:
            pq.write_table(table.drop_columns(["agent_fingerprint"]), path)


def _page_text(url: str) -> str:
    with urllib.request.urlopen(url) as answer:
        return " ".join(re.sub(r"<[^>]+>", " ", answer.read().decode()).split())


def test_days_without_fingerprints_are_named_not_guessed(items, dataset, tmp_path):
    project = top_projects(items, 1)[0]
    older = tmp_path / "older"
    shutil.copytree(dataset, older)
    first_day = sorted(p.name for p in (older / "file_downloads").iterdir())[0]
    _strip_fingerprints(older / "file_downloads" / first_day)

    answer = stats_json(older, project)
    assert answer["environments_unknown_days"] == 1
    day = first_day.removeprefix("date=")
    after = sorted({e.date for _, e in items if e.table == "file_downloads" and e.date > day})
    assert answer["environments"] == environments_from_lines(items, project, after[0], after[-1])
    # a range of that day alone: its files have no such column at all
    alone = stats_json(older, project, "--from", day, "--to", day)
    assert alone["environments"] is None and alone["environments_unknown_days"] == 1
    served = Served(older)
    try:
        text = _page_text(f"{served.url}project/{project}")
        assert "Not counting 1 day(s) written before the agent_fingerprint column" in text
    finally:
        served.close()

    for folder in (older / "file_downloads").iterdir():
        _strip_fingerprints(folder)
    answer = stats_json(older, project)
    assert answer["environments"] is None and answer["environments_unknown_days"] == answer["days"]
    assert answer["change"]["environments"] is None
    served = Served(older)
    try:
        text = _page_text(f"{served.url}project/{project}")
        assert re.search(r"Distinct client environments\s+unknown", text)
        assert "written before haulage recorded agent fingerprints" in text
    finally:
        served.close()
