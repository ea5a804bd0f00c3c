"""The download series, defined once: which rows of ``file_downloads`` each one counts.

schema.md defines the series at read time: Total = every row, Without
mirrors = traffic is not 'mirror', Human = traffic is 'human', CI = the
client said it runs in CI. ``haulage stats``, the ``haulage serve`` page
(DuckDB over Parquet, or BigQuery) and the views ``haulage setup`` creates in
BigQuery all count with the conditions written here, so they cannot disagree.

The rule for NULLs: every condition is a SQL boolean that is never NULL
(``IS TRUE`` / ``IS NOT TRUE``). A NULL field counts as "not that": a row
without a classification stays in Total and Without mirrors and is never
counted as Human or CI. A bare ``=`` would be NULL there and a negated one
would silently drop the row. The same text runs on DuckDB and BigQuery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = [
    "Series",
    "TOTAL", "WITHOUT_MIRRORS", "HUMAN", "CI",
    "AUTOMATION", "MIRROR", "UNKNOWN", "TRAFFIC_CI", "BOTS", "PYPI_COMPATIBLE",
    "HEADLINE", "COUNTED",
]


@dataclass(frozen=True)
class Series:
    """One counted series: its column name, the rows it counts, and how to say it.

    ``condition`` is a never-NULL SQL boolean over a ``file_downloads`` row
    (None: every row); ``label`` is what a person reads (the page's cards);
    ``meaning`` says which rows it counts (the views' descriptions and docs).
    """

    name: str
    condition: Optional[str]
    label: str
    meaning: str


TOTAL = Series("total", None, "Total", "every download row")
WITHOUT_MIRRORS = Series("without_mirrors", "(classification.traffic = 'mirror') IS NOT TRUE", "Without mirrors",
                         "rows whose traffic is not 'mirror'")
HUMAN = Series("human", "(classification.traffic = 'human') IS TRUE", "Human",
               "rows whose traffic is 'human' (installers and browsers, not CI, not mirrors)")
CI = Series("ci", "classification.ci IS TRUE", "CI", "rows whose client said it runs in CI (details.ci TRUE)")

AUTOMATION = Series("automation", "(classification.traffic = 'automation') IS TRUE", "Automation",
                    "rows whose traffic is 'automation' (HTTP libraries, OS tools, bots)")
MIRROR = Series("mirror", "(classification.traffic = 'mirror') IS TRUE", "Mirrors", "rows whose traffic is 'mirror'")
UNKNOWN = Series("unknown", "(classification.traffic = 'unknown') IS TRUE", "Unknown",
                 "rows whose traffic is 'unknown' (unrecognised agents)")
# traffic = 'ci' (CI above is the CI flag, which a mirror may also carry)
TRAFFIC_CI = Series("traffic_ci", "(classification.traffic = 'ci') IS TRUE", "CI traffic", "rows whose traffic is 'ci'")
BOTS = Series("bots", "(classification.kind = 'bot') IS TRUE", "Bots", "rows of known bots")
# PyPI's own pipeline drops known bots; this series reproduces its numbers
PYPI_COMPATIBLE = Series("pypi_compatible", "(classification.kind = 'bot') IS NOT TRUE", "PyPI-compatible",
                         "rows that are not known bots, as PyPI's own pipeline counts")

# the four series of schema.md: the views, the page's cards
HEADLINE: tuple[Series, ...] = (TOTAL, WITHOUT_MIRRORS, HUMAN, CI)
# what haulage stats counts for every group of rows, in its column order
COUNTED: tuple[Series, ...] = (*HEADLINE, AUTOMATION, MIRROR, UNKNOWN, TRAFFIC_CI, BOTS)
