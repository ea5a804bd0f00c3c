#!/usr/bin/env python3
"""Realistic synthetic PyPI CDN (Fastly) access-log lines, with an oracle.

Pure standard library. Importable module and command-line tool::

    python benchmarks/corpus.py --lines 100000 --files 4 --out /tmp/corpus \
        [--seed 0] [--days 1] [--start 2026-10-01] [--bad-fraction 0.01] \
        [--legacy-fraction 0.0] [--simple-fraction 0.04] [--fresh-agents 0.05] [--labels]

What it produces (see ``docs`` in /work/shared/docs for the formats):

* current-format ``download|…`` and ``simple|…`` lines (and, on request,
  legacy syslog-wrapped v1/v2/v3 lines);
* user agents drawn from a pool of a few thousand distinct strings with
  Zipf-like popularity (≈60 % pip >= 6 JSON, ≈20 % uv JSON, the rest mirrors,
  other installers, scripts, browsers, OS tools, bots, unknown agents), plus
  a share of agents seen only once (``fresh_agents``, default 5 %: pip and uv
  agents that differ in their kernel build, as in PyPI's traffic);
* ~200 real project names with Zipf popularity, plausible versions, files,
  ``/packages/xx/yy/<60 hex>/<filename>`` URLs, countries, TLS fields and
  RFC 1123 timestamps, roughly in time order;
* a configurable fraction of bad lines, each of a known kind.

Every line comes with an :class:`Expect` that says what a correct parser must
produce for it. The oracle is derived from how the line was *built*; it never
calls haulage's parser.

Deterministic: the same arguments (and seed) give byte-identical output on any
machine (only ``random.Random`` and ``hashlib`` are used; no ``hash()``).
"""
from __future__ import annotations

import argparse
import bisect
import datetime as _dt
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from typing import Iterator

__all__ = [
    "Expect",
    "Corpus",
    "generate_lines",
    "generate_labelled",
    "iter_labelled",
    "normalize",
    "rfc1123",
    "BAD_KINDS",
    "CURRENT_BAD_KINDS",
    "LEGACY_BAD_KINDS",
    "FAMILIES",
    "MIRROR_FAMILIES",
]

# --------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------

FILE_DOWNLOADS = "file_downloads"
SIMPLE_REQUESTS = "simple_requests"
UNPROCESSED = "unprocessed"


@dataclass(frozen=True, slots=True)
class Expect:
    """What a correct parser must output for one generated line.

    Rows (``table`` is ``file_downloads`` or ``simple_requests``):
      ``date`` (UTC ``YYYY-MM-DD`` of the event), ``timestamp`` (ISO 8601,
      ``2026-10-01T00:00:00Z``), ``project`` (downloads: the PROJECT field as
      written; simple: the PEP 503 normalized path segment, ``None`` for the
      index root ``/simple/``), ``version`` / ``package_type`` (downloads),
      ``tls`` (False for legacy v1 lines, which have no TLS fields),
      ``kind`` / ``traffic`` / ``ci`` (``classification`` per schema.md).
    Dead letters (``table == "unprocessed"``):
      ``reason`` is the parsers-api.md reason code; ``also_ok`` lists other
      codes a defensible parser might give where the docs leave room (see the
      module's ``BAD_KINDS`` notes); ``bad`` is the generator's bad-line kind.
    ``family`` is the generator's agent family (``pip-json``, ``uv-json``,
    ``bandersnatch`` …) for rows, ``fmt`` the line format (``download``,
    ``simple``, ``v1``, ``v2``, ``v3-download``, ``v3-simple``, ``garbage``).
    """

    table: str
    fmt: str
    date: str | None = None
    timestamp: str | None = None
    project: str | None = None
    version: str | None = None
    package_type: str | None = None
    tls: bool = True
    kind: str | None = None
    traffic: str | None = None
    ci: bool | None = None
    family: str | None = None
    reason: str | None = None
    bad: str | None = None
    also_ok: tuple[str, ...] = ()

    @property
    def is_row(self) -> bool:
        return self.table != UNPROCESSED

    @property
    def mirror(self) -> bool | None:
        return None if self.traffic is None else self.traffic == "mirror"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["also_ok"] = list(self.also_ok)
        return d


def _traffic(kind: str, ci: bool) -> str:
    """schema.md precedence: mirror > ci > automation > human > unknown."""
    if kind == "mirror":
        return "mirror"
    if ci:
        return "ci"
    if kind in ("script", "os", "bot"):
        return "automation"
    if kind in ("installer", "browser"):
        return "human"
    return "unknown"


_NORMALIZE_RE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return _NORMALIZE_RE.sub("-", name).lower()


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_day_cache: dict[int, tuple[str, str]] = {}


def _day(epoch_day: int) -> tuple[str, str]:
    got = _day_cache.get(epoch_day)
    if got is None:
        d = _dt.date.fromordinal(_EPOCH_ORDINAL + epoch_day)
        got = (f"{_WEEKDAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d}",
               d.isoformat())
        _day_cache[epoch_day] = got
    return got


def _times(epoch: int) -> tuple[str, str, str, str]:
    """(rfc1123, iso8601 Z, YYYY-MM-DD, syslog iso) for an epoch second."""
    day, sod = divmod(epoch, 86400)
    rfc_day, iso_day = _day(day)
    h, rem = divmod(sod, 3600)
    m, s = divmod(rem, 60)
    hms = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{rfc_day} {hms} GMT", f"{iso_day}T{hms}Z", iso_day, hms


def rfc1123(epoch: int) -> str:
    """``Thu, 07 Jan 2021 20:54:54 GMT`` for an epoch second (UTC)."""
    return _times(epoch)[0]


def _parse_start(start) -> int:
    if isinstance(start, (int, float)):
        return int(start)
    if isinstance(start, _dt.datetime):
        dt = start if start.tzinfo else start.replace(tzinfo=_dt.timezone.utc)
        return int(dt.timestamp())
    if isinstance(start, _dt.date):
        return (start.toordinal() - _EPOCH_ORDINAL) * 86400
    s = str(start).strip()
    if s.endswith("Z"):
        s = s[:-1]
    if "T" in s or " " in s:
        dt = _dt.datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=_dt.timezone.utc)
        return int(dt.timestamp())
    return (_dt.date.fromisoformat(s).toordinal() - _EPOCH_ORDINAL) * 86400


# --------------------------------------------------------------------------
# Weighted / Zipf choice helpers
# --------------------------------------------------------------------------

def _cum(weights) -> list[float]:
    out, t = [], 0.0
    for w in weights:
        t += w
        out.append(t)
    return out


class _Choice:
    """Weighted choice with a precomputed cumulative table (fast, deterministic)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items, weights):
        self.items = list(items)
        self.cum = _cum(weights)
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def _pick(rng: random.Random, pairs):
    """One-off weighted choice from [(item, weight), …]."""
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for item, w in pairs:
        x -= w
        if x < 0:
            return item
    return pairs[-1][0]


def _zipf(items, s: float = 1.0) -> _Choice:
    return _Choice(items, [1.0 / (r + 1) ** s for r in range(len(items))])


# --------------------------------------------------------------------------
# Environments (what pip/uv describe in their JSON)
# --------------------------------------------------------------------------

PY_FULL = {
    "3.14": ["3.14.0"],
    "3.13": ["3.13.7", "3.13.5", "3.13.3", "3.13.0"],
    "3.12": ["3.12.11", "3.12.3", "3.12.10", "3.12.7"],
    "3.11": ["3.11.13", "3.11.9", "3.11.2", "3.11.4"],
    "3.10": ["3.10.12", "3.10.18", "3.10.14"],
    "3.9": ["3.9.23", "3.9.6", "3.9.2", "3.9.18"],
    "3.8": ["3.8.10", "3.8.20", "3.8.18"],
    "3.7": ["3.7.17", "3.7.3", "3.7.9"],
    "3.6": ["3.6.15", "3.6.8"],
    "3.5": ["3.5.10", "3.5.2"],
    "3.4": ["3.4.10"],
    "2.7": ["2.7.18", "2.7.5", "2.7.12", "2.7.17"],
}
PY_WEIGHT = {"3.14": 3, "3.13": 9, "3.12": 20, "3.11": 22, "3.10": 16, "3.9": 11,
             "3.8": 7, "3.7": 4, "3.6": 2, "3.5": 0.5, "3.4": 0.2, "2.7": 1.5}

# pip version, weight, python minors it supports (roughly)
PIP_VERSIONS = [
    ("25.3", 10, "3.9-3.14"), ("25.2", 14, "3.9-3.14"), ("25.1.1", 8, "3.9-3.13"),
    ("25.0.1", 6, "3.8-3.13"), ("24.3.1", 8, "3.8-3.13"), ("24.2", 4, "3.8-3.12"),
    ("24.0", 9, "3.7-3.12"), ("23.3.2", 3, "3.7-3.12"), ("23.2.1", 3, "3.7-3.12"),
    ("23.0.1", 6, "3.7-3.11"), ("22.3.1", 3, "3.7-3.11"), ("22.0.2", 4, "3.10-3.10"),
    ("21.3.1", 3, "3.6-3.10"), ("21.2.4", 1, "3.6-3.10"), ("20.3.4", 1.5, "2.7-3.9"),
    ("20.0.2", 2, "3.8-3.8"), ("19.3.1", 1, "2.7-3.8"), ("19.2.3", 0.5, "2.7-3.7"),
    ("18.1", 0.8, "2.7-3.7"), ("10.0.1", 0.5, "2.7-3.6"), ("9.0.3", 0.4, "2.7-3.6"),
    ("9.0.1", 1, "2.7-3.6"), ("8.1.2", 0.3, "2.7-3.5"), ("8.1.1", 0.3, "2.7-3.5"),
    ("7.1.2", 0.15, "2.7-3.5"), ("6.1.1", 0.1, "2.7-3.4"), ("6.0.8", 0.1, "2.7-3.4"),
]
_MINORS = ["2.7", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]


def _minor_range(spec: str) -> list[str]:
    lo, hi = spec.split("-")
    return _MINORS[_MINORS.index(lo): _MINORS.index(hi) + 1]


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


SETUPTOOLS = {
    "3.14": ["80.9.0", "80.3.1"], "3.13": ["80.9.0", "75.8.0", "78.1.0"],
    "3.12": ["80.9.0", "75.8.0", "70.0.0", "69.5.1", "68.1.2"],
    "3.11": ["65.5.0", "68.2.2", "80.9.0", "75.1.0", "66.1.1"],
    "3.10": ["58.1.0", "59.6.0", "65.5.0", "75.3.0"],
    "3.9": ["58.1.0", "52.0.0", "68.0.0", "75.3.0"],
    "3.8": ["56.0.0", "45.2.0", "75.3.0", "57.4.0"],
    "3.7": ["47.1.0", "57.5.0", "68.0.0", "40.8.0"],
    "3.6": ["40.6.2", "59.6.0", "39.2.0"], "3.5": ["28.8.0", "50.3.2"],
    "3.4": ["28.8.0"], "2.7": ["44.1.1", "39.0.1", "0.9.8", "20.10.1"],
}

# name, version, codename (id), glibc (None: musl, pip reports no libc), weight, openssl
LINUX_DISTROS = [
    ("Ubuntu", "22.04", "jammy", "2.35", 20, "OpenSSL 3.0.2 15 Mar 2022"),
    ("Ubuntu", "24.04", "noble", "2.39", 16, "OpenSSL 3.0.13 30 Jan 2024"),
    ("Ubuntu", "20.04", "focal", "2.31", 7, "OpenSSL 1.1.1f  31 Mar 2020"),
    ("Debian GNU/Linux", "12", "bookworm", "2.36", 20, "OpenSSL 3.0.15 3 Sep 2024"),
    ("Debian GNU/Linux", "13", "trixie", "2.41", 7, "OpenSSL 3.5.1 1 Jul 2025"),
    ("Debian GNU/Linux", "11", "bullseye", "2.31", 6, "OpenSSL 1.1.1w  11 Sep 2023"),
    ("Amazon Linux", "2", "", "2.26", 4, "OpenSSL 1.0.2k-fips  26 Jan 2017"),
    ("Amazon Linux", "2023", "", "2.34", 5, "OpenSSL 3.0.8 7 Feb 2023"),
    ("CentOS Linux", "7", "Core", "2.17", 1.5, "OpenSSL 1.0.2k-fips  26 Jan 2017"),
    ("Rocky Linux", "9.4", "Blue Onyx", "2.34", 1.5, "OpenSSL 3.0.7 1 Nov 2022"),
    ("Red Hat Enterprise Linux", "8.10", "Ootpa", "2.28", 2, "OpenSSL 1.1.1k  FIPS 25 Mar 2021"),
    ("Alpine Linux", "3.20.3", "", None, 3, "OpenSSL 3.3.2 3 Sep 2024"),
    ("Arch Linux", "", "", "2.40", 0.7, "OpenSSL 3.3.2 3 Sep 2024"),
    ("Fedora Linux", "40", "", "2.39", 0.8, "OpenSSL 3.2.2 4 Jun 2024"),
]
_DISTRO_CHOICE = _Choice(LINUX_DISTROS, [d[4] for d in LINUX_DISTROS])

KERNELS = {
    "generic": [("5.15.0-1073-azure", 6), ("6.5.0-1025-azure", 5), ("6.8.0-1021-azure", 8),
                ("6.8.0-1017-aws", 5), ("6.8.0-1015-gcp", 2), ("6.1.0-26-cloud-amd64", 3),
                ("6.1.112-122.189.amzn2023.x86_64", 4), ("5.10.226-214.880.amzn2.x86_64", 3),
                ("6.1.100+", 2), ("5.15.0-122-generic", 3), ("6.8.0-45-generic", 4),
                ("6.10.11-linuxkit", 3), ("5.15.153.1-microsoft-standard-WSL2", 3),
                ("6.6.32-gke.1200", 1), ("5.4.0-200-generic", 1)],
    "Amazon Linux": [("6.1.112-122.189.amzn2023.x86_64", 3), ("5.10.226-214.880.amzn2.x86_64", 3),
                     ("4.14.352-268.569.amzn2.x86_64", 1)],
    "CentOS Linux": [("3.10.0-1160.119.1.el7.x86_64", 1)],
    "Rocky Linux": [("5.14.0-427.37.1.el9_4.x86_64", 1)],
    "Red Hat Enterprise Linux": [("4.18.0-553.22.1.el8_10.x86_64", 1)],
    "Arch Linux": [("6.11.2-arch1-1", 1)],
    "Fedora Linux": [("6.10.12-200.fc40.x86_64", 1)],
}
_KERNEL_CHOICE = {k: _Choice([a for a, _ in v], [w for _, w in v]) for k, v in KERNELS.items()}

MACOS = [("15.6.1", "24.6.0", 8), ("15.7.1", "24.6.0", 6), ("14.7.4", "23.6.0", 5),
         ("26.0.1", "25.0.0", 6), ("13.7.8", "22.6.0", 2), ("14.6.1", "23.6.0", 2)]
MACOS_OPENSSL = [("OpenSSL 3.0.15 3 Sep 2024", 5), ("OpenSSL 3.5.2 5 Aug 2025", 3),
                 ("LibreSSL 2.8.3", 1), ("OpenSSL 1.1.1w  11 Sep 2023", 1)]
WINDOWS = [("10", 10), ("11", 3), ("2022Server", 1), ("2019Server", 0.5)]
WINDOWS_OPENSSL = [("OpenSSL 3.0.15 3 Sep 2024", 5), ("OpenSSL 1.1.1w  11 Sep 2023", 2),
                   ("OpenSSL 3.0.13 30 Jan 2024", 2)]
RUSTC = ["1.90.0", "1.89.0", "1.86.0", "1.83.0", "1.79.0", "1.75.0", "1.70.0"]
PYPY = [("7.3.17", "3.10.14"), ("7.3.19", "3.11.11"), ("7.3.11", "3.9.16"), ("7.3.20", "3.11.13")]
USER_DATA = ["corp-build", "team=data", "team=ml|job=nightly", "jenkins:pipeline-42",
             "airflow", "{\"org\":\"acme\"}", "dev-laptop", "gitlab-runner-17", "bazel",
             "mlflow-serving", "argo|wf=train", "kaggle"]


def _python_for(rng: random.Random, minors: list[str]) -> tuple[str, str]:
    minor = _pick(rng, [(m, PY_WEIGHT[m]) for m in minors])
    return minor, rng.choice(PY_FULL[minor])


def _env(rng: random.Random, minor: str, *, uv: bool = False) -> dict:
    """platform parts shared by pip-style and uv JSON: distro, system, cpu, openssl."""
    os_kind = _pick(rng, [("linux", 72), ("macos", 15), ("windows", 13)])
    env: dict = {}
    if os_kind == "linux":
        name, ver, codename, glibc, _, openssl = _DISTRO_CHOICE(rng)
        kernels = _KERNEL_CHOICE.get(name, _KERNEL_CHOICE["generic"])
        release = kernels(rng)
        cpu = "aarch64" if rng.random() < 0.15 else "x86_64"
        if cpu == "aarch64":
            release = release.replace(".x86_64", ".aarch64")
        if uv:
            libc = ({"lib": "glibc", "version": glibc} if glibc else {"lib": "musl", "version": "1.2"})
            env["distro"] = {"name": name, "version": ver or None, "id": codename or None, "libc": libc}
        else:
            d = {k: v for k, v in (("name", name), ("version", ver), ("id", codename)) if v}
            if glibc:
                d["libc"] = {"lib": "glibc", "version": glibc}
            env["distro"] = d
        env["system"] = {"name": "Linux", "release": release}
        env["cpu"] = cpu
        env["openssl_version"] = openssl
    elif os_kind == "macos":
        ver, darwin, _ = _pick(rng, [(m, m[2]) for m in MACOS])
        if uv:
            env["distro"] = {"name": "macOS", "version": ver, "id": None, "libc": None}
        else:
            env["distro"] = {"name": "macOS", "version": ver}
        env["system"] = {"name": "Darwin", "release": darwin}
        env["cpu"] = "arm64" if rng.random() < 0.8 else "x86_64"
        if uv and env["cpu"] == "arm64":
            env["cpu"] = "aarch64"
        env["openssl_version"] = _pick(rng, MACOS_OPENSSL)
    else:
        rel = _pick(rng, WINDOWS)
        if uv:
            env["distro"] = None
            rel = _pick(rng, [("10.0.19045", 5), ("10.0.22631", 4), ("10.0.26100", 3), ("10.0.20348", 1)])
            env["cpu"] = "x86_64" if rng.random() < 0.95 else "aarch64"
        else:
            env["cpu"] = "AMD64" if rng.random() < 0.95 else "ARM64"
        env["system"] = {"name": "Windows", "release": rel}
        env["openssl_version"] = _pick(rng, WINDOWS_OPENSSL)
    return env


def _pip_data(rng: random.Random, installer: str, version: str, minors: list[str], *,
              with_ci: bool, allow_user_data: bool, ci_rate: float = 0.38) -> tuple[dict, bool]:
    """The dict pip's user_agent() builds (before json.dumps(sort_keys=True))."""
    minor, py = _python_for(rng, minors)
    data: dict = {"installer": {"name": installer, "version": version}}
    if rng.random() < 0.012 and minor.startswith("3.") and minor not in ("3.4", "3.5", "3.6"):
        pypy, lang = rng.choice(PYPY)
        data["python"] = lang
        data["implementation"] = {"name": "PyPy", "version": pypy}
        minor = lang.rsplit(".", 1)[0]
    else:
        data["python"] = py
        data["implementation"] = {"name": "CPython", "version": py}
    env = _env(rng, minor)
    data.update(env)
    st_list = SETUPTOOLS.get(minor, ["65.5.0"])
    if not (minor in ("3.12", "3.13", "3.14") and rng.random() < 0.5):
        data["setuptools_version"] = rng.choice(st_list)
    if rng.random() < 0.09:
        data["rustc_version"] = rng.choice(RUSTC)
    ci = False
    if with_ci:
        ci = rng.random() < ci_rate
        data["ci"] = True if ci else None
    if allow_user_data and rng.random() < 0.015:
        data["user_data"] = rng.choice(USER_DATA)
    return data, ci


def _pip_json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------
# Agent families
# --------------------------------------------------------------------------
# Each generator returns (agent: str, ci: bool). kind is per family.

def _ag_pip_json(rng):
    v = _pick(rng, [(p[0], p[1]) for p in PIP_VERSIONS])
    spec = next(p[2] for p in PIP_VERSIONS if p[0] == v)
    vt = _vtuple(v)
    data, ci = _pip_data(rng, "pip", v, _minor_range(spec),
                         with_ci=vt >= (19,), allow_user_data=vt >= (20, 1))
    return f"pip/{v} {_pip_json(data)}", ci


def _ag_pip_json_uv(rng):
    """A wrapper that sends a pip/ prefix but uv's installer inside the JSON."""
    pv = rng.choice(["24.0", "24.2", "25.0"])
    uvv = rng.choice(["0.4.0", "0.4.18", "0.5.2", "0.6.14"])
    data, ci = _pip_data(rng, "uv", uvv, _minor_range("3.9-3.13"), with_ci=True, allow_user_data=False)
    return f"pip/{pv} {_pip_json(data)}", ci


UV_VERSIONS = (
    [(f"0.1.{p}", 0.05) for p in (22, 24, 29, 35, 45)]
    + [(f"0.2.{p}", 0.1) for p in (5, 15, 27, 37)]
    + [(f"0.3.{p}", 0.1) for p in (0, 3, 5)]
    + [(f"0.4.{p}", 0.25) for p in (10, 18, 20, 25, 29, 30)]
    + [(f"0.5.{p}", 0.25) for p in (2, 11, 18, 24, 31)]
    + [(f"0.6.{p}", 0.3) for p in (3, 6, 10, 14)]
    + [(f"0.7.{p}", 0.35) for p in (2, 8, 13, 20)]
    + [(f"0.8.{p}", 0.5) for p in (4, 9, 13, 17, 22)]
    + [(f"0.9.{p}", 1.0) for p in (2, 5, 7, 11, 18, 26)]
    + [(f"0.10.{p}", 1.2) for p in (0, 3, 6, 9, 12)]
    + [(f"0.11.{p}", 1.4) for p in (0, 1, 2, 4, 7)]
)
UV_SUBCOMMANDS = [(["pip", "install"], 30), (["sync"], 30), (["run"], 8), (["tool", "run"], 8),
                  (["pip", "compile"], 6), (["lock"], 6), (["add"], 5), (["tool", "install"], 3),
                  (["pip", "sync"], 3), (["build"], 1), (["export"], 0.5), (["venv"], 0.5)]


def _ag_uv_json(rng):
    v = _pick(rng, UV_VERSIONS)
    minor, py = _python_for(rng, _minor_range("3.8-3.14"))
    installer: dict = {"name": "uv", "version": v}
    if _vtuple(v) >= (0, 9):
        installer["subcommand"] = _pick(rng, UV_SUBCOMMANDS)
    if rng.random() < 0.01:  # PyPy: uv reports the language version as implementation version
        py = rng.choice(PYPY)[1]
        impl = {"name": "PyPy", "version": py}
    else:
        impl = {"name": "CPython", "version": py}
    if rng.random() < 0.02:  # interpreter unknown at request time
        py, impl = None, None
    env = _env(rng, minor, uv=True)
    ci = rng.random() < 0.45
    data = {
        "installer": installer,
        "python": py,
        "implementation": impl,
        "distro": env["distro"],
        "system": env["system"],
        "cpu": env["cpu"],
        "openssl_version": None,
        "setuptools_version": None,
        "rustc_version": None,
        "ci": True if ci else None,
    }
    # serde serializes struct fields in declaration order, compact
    return f"uv/{v} {json.dumps(data, separators=(',', ':'))}", ci


def _ag_hatch(rng):
    v = rng.choice(["1.12.0", "1.13.0", "1.14.1", "1.14.2", "1.15.0", "1.9.4"])
    data, ci = _pip_data(rng, "hatch", v, _minor_range("3.8-3.13"), with_ci=True,
                         allow_user_data=False, ci_rate=0.6)
    return f"Hatch/{v} {_pip_json(data)} HTTPX2/{rng.choice(['0.27.0', '0.27.2', '0.28.1'])}", ci


STANDARD_UA_PEP = 999  # the draft has no number yet; a parser should accept any "(PEP <digits>)"


def _ag_pep_standard(rng):
    client, v = _pick(rng, [(("pip", "26.1"), 4), (("pip", "26.0.1"), 3), (("uv", "0.11.4"), 3),
                            (("pdm", "2.26.0"), 1), (("poetry", "2.2.1"), 1)])
    minor, py = _python_for(rng, _minor_range("3.9-3.14"))
    os_kind = _pick(rng, [("linux", 7), ("darwin", 2), ("win32", 1)])
    machine = {"linux": "x86_64", "darwin": "arm64", "win32": "AMD64"}[os_kind]
    env = {
        "implementation_name": "cpython",
        "implementation_version": py,
        "os_name": "nt" if os_kind == "win32" else "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": {"linux": "6.8.0-1021-azure", "darwin": "24.6.0", "win32": "10"}[os_kind],
        "platform_system": {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[os_kind],
        "platform_version": {"linux": "#25-Ubuntu SMP Wed Jan 15 20:45:09 UTC 2025",
                             "darwin": "Darwin Kernel Version 24.6.0",
                             "win32": "10.0.22631"}[os_kind],
        "python_full_version": py,
        "python_version": minor,
        "sys_platform": os_kind,
    }
    ci = rng.random() < 0.4
    versions = {
        "libc": {"name": "glibc", "version": "2.39"} if os_kind == "linux" else None,
        "tls": {"name": "OpenSSL", "version": rng.choice(["3.0.13", "3.0.15", "3.5.2"])},
        "setuptools": {"version": rng.choice(["80.9.0", "75.8.0"])} if rng.random() < 0.5 else None,
        "rustc": {"version": rng.choice(RUSTC)} if rng.random() < 0.1 else None,
    }
    doc = {"python_environment": env, "versions": versions, "ci": ci,
           "user_data": "team=data" if rng.random() < 0.05 else None}
    return f"{client}/{v} (PEP {STANDARD_UA_PEP}) {json.dumps(doc, separators=(',', ':'))}", ci


def _ag_pip_old(rng):
    v = rng.choice(["1.4", "1.4.1", "1.5", "1.5.4", "1.5.6", "5.0.1", "5.0.3"])
    impl = _pick(rng, [(("CPython", rng.choice(["2.7.6", "2.7.5", "2.7.9", "3.4.0", "3.3.5"])), 8),
                       (("PyPy", rng.choice(["2.2.1", "2.4.0"])), 1),
                       (("unknown", "unknown"), 0.5)])
    system = _pick(rng, [(("Linux", rng.choice(["3.13.0-24-generic", "3.2.0-4-amd64", "2.6.32-431.el6.x86_64"])), 6),
                         (("Darwin", rng.choice(["13.0.0", "13.4.0", "14.5.0"])), 2),
                         (("Windows", rng.choice(["7", "8", "2008ServerR2"])), 2),
                         (("Linux", "unknown"), 0.5), (("unknown", "unknown"), 0.5)])
    return f"pip/{v} {impl[0]}/{impl[1]} {system[0]}/{system[1]}", False


def _plain_impl(rng, lo="3.8", hi="3.13"):
    return "CPython/" + _python_for(rng, _minor_range(f"{lo}-{hi}"))[1]


def _plain_system(rng):
    k = _pick(rng, [("Linux", 6), ("Darwin", 3), ("Windows", 2)])
    if k == "Linux":
        return "Linux/" + _KERNEL_CHOICE["generic"](rng)
    if k == "Darwin":
        return "Darwin/" + _pick(rng, [(m[1], m[2]) for m in MACOS])
    return "Windows/" + rng.choice(["10", "11"])


def _ag_poetry(rng):
    v = rng.choice(["1.8.3", "1.8.4", "1.8.5", "1.7.1", "1.6.1", "2.0.1", "2.1.1", "2.1.3", "2.2.1"])
    return f"poetry/{v} {_plain_impl(rng)} {_plain_system(rng)}", False


def _ag_pdm_old(rng):
    v = rng.choice(["2.7.4", "2.8.2", "2.10.4", "2.12.4", "1.15.5"])
    return f"pdm/{v} {_plain_impl(rng)}", False


def _ag_pdm(rng):
    v = rng.choice(["2.19.3", "2.20.1", "2.22.4", "2.24.2", "2.25.4", "2.26.0"])
    return f"pdm/{v} {_plain_impl(rng, '3.9', '3.14')} {_plain_system(rng)}", False


def _ag_twine(rng):
    v = rng.choice(["5.1.1", "6.0.1", "6.1.0", "4.0.2"])
    libs = ("importlib_metadata/8.5.0 packaging/24.2 requests/2.32.3 requests-toolbelt/1.0.0 "
            "urllib3/2.2.3 tqdm/4.67.1")
    return f"twine/{v} {libs} {_plain_impl(rng)}", False


def _ag_conda(rng):
    v = rng.choice(["24.5.0", "24.7.1", "24.9.2", "24.11.3", "25.1.1", "25.5.1", "23.7.4"])
    req = rng.choice(["2.32.3", "2.31.0", "2.32.2"])
    py = _plain_impl(rng, "3.9", "3.13")
    sysn = _pick(rng, [(f"Linux/{_KERNEL_CHOICE['generic'](rng)} ubuntu/22.04.4 glibc/2.35", 4),
                       (f"Linux/{_KERNEL_CHOICE['generic'](rng)} debian/12 glibc/2.36", 2),
                       ("Darwin/24.6.0 OSX/15.6.1", 2), ("Windows/10 Windows/10.0.22631", 2)])
    return (f"conda/{v} requests/{req} {py} {sysn} solver/libmamba "
            f"conda-libmamba-solver/24.9.0 libmambapy/1.5.8"), False


def _ag_bazel(rng):
    v = rng.choice(["7.4.1", "7.3.1", "8.0.1", "8.2.1", "6.5.0", "7.6.1"])
    return (f"Bazel/release {v}" if rng.random() < 0.7 else f"Bazel/{v}"), False


def _ag_homebrew(rng):
    v = rng.choice(["4.3.24", "4.4.0", "4.4.20", "4.5.8", "4.6.3"])
    word = "Mac OS X" if rng.random() < 0.7 else "macOS"
    osv = rng.choice(["14.7", "15.6.1", "13.6.9", "26.0"])
    return f"Homebrew/{v} (Macintosh; Intel {word} {osv}) curl/{rng.choice(['8.7.1', '8.6.0', '8.14.1'])}", False


def _ag_pex(rng):
    return f"pex/{rng.choice(['1.6.12', '1.6.1', '1.4.9', '1.2.16'])}", False


def _ag_maturin(rng):
    return f"maturin/{rng.choice(['1.7.4', '1.8.1', '1.9.4', '1.5.1', '0.14.17'])}", False


def _ag_setuptools(rng):
    form = _pick(rng, [("st-first-27", 3), ("urllib-first-27", 3), ("urllib-first-3x", 4)])
    if form == "st-first-27":
        return f"setuptools/{rng.choice(['0.6c11', '0.9.8', '3.3'])} Python-urllib/2.7", False
    if form == "urllib-first-27":
        return f"Python-urllib/2.7 setuptools/{rng.choice(['44.1.1', '39.0.1', '20.10.1'])}", False
    py = rng.choice(["3.11", "3.12", "3.10", "3.9", "3.13"])
    return f"Python-urllib/{py} setuptools/{rng.choice(SETUPTOOLS[py])}", False


def _ag_distribute(rng):
    return f"Python-urllib/{rng.choice(['2.7', '2.6'])} distribute/{rng.choice(['0.6.49', '0.6.10', '0.6.28'])}", False


def _ag_python_urllib(rng):
    return f"Python-urllib/{rng.choice(['2.7', '3.11', '3.12', '3.8', '3.10', '3.9', '3.13'])}", False


def _ag_uv_bare(rng):
    return _pick(rng, [("uv", 3), ("uv/0.1.10", 2), ("uv/0.1.5", 1), ("uv/0.1.16", 1),
                       ("uv/0.1.21", 1), ("uv/0.5.1", 0.5), ("uv/0.6.3", 0.5)]), False


def _ag_requests(rng):
    return f"python-requests/{rng.choice(['2.32.3', '2.32.5', '2.31.0', '2.28.2', '2.25.1', '2.27.1', '2.32.4'])}", False


def _ag_httpx(rng):
    return f"python-httpx/{rng.choice(['0.27.0', '0.27.2', '0.28.1', '0.25.2'])}", False


def _ag_urllib3(rng):
    return f"python-urllib3/{rng.choice(['2.2.3', '2.5.0', '1.26.20', '2.3.0', '2.4.0'])}", False


def _ag_aiohttp(rng):
    return f"Python/{rng.choice(['3.11', '3.12', '3.10', '3.13'])} aiohttp/{rng.choice(['3.9.5', '3.10.10', '3.11.18', '3.12.15'])}", False


def _ag_curl(rng):
    return f"curl/{rng.choice(['8.5.0', '7.81.0', '8.7.1', '7.88.1', '8.14.1', '7.68.0', '7.29.0', '8.12.1'])}", False


def _ag_wget(rng):
    v = rng.choice(["1.21.2", "1.21.4", "1.20.3", "1.21.3", "1.14"])
    return (f"Wget/{v}" if rng.random() < 0.7 else f"Wget/{v} (linux-gnu)"), False


def _ag_httpie(rng):
    return f"HTTPie/{rng.choice(['3.2.2', '3.2.4', '2.6.0'])}", False


def _ag_downloaders(rng):
    return _pick(rng, [(f"aria2/{rng.choice(['1.36.0', '1.37.0'])}", 2),
                       (f"okhttp/{rng.choice(['4.12.0', '3.14.9'])}", 1),
                       (f"Apache-HttpClient/{rng.choice(['4.5.14', '5.3.1'])} (Java/{rng.choice(['17.0.12', '21.0.4'])})", 2)]), False


def _ag_browser(rng):
    form = _pick(rng, [("chrome-win", 5), ("chrome-mac", 3), ("firefox-linux", 2),
                       ("firefox-win", 2), ("safari", 2), ("edge", 1.5), ("chrome-linux", 1)])
    cv = rng.choice(["128.0.0.0", "129.0.0.0", "130.0.0.0", "139.0.0.0", "140.0.0.0", "141.0.0.0"])
    fv = rng.choice(["128.0", "131.0", "140.0", "143.0"])
    if form == "chrome-win":
        return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cv} Safari/537.36", False
    if form == "chrome-mac":
        return f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cv} Safari/537.36", False
    if form == "chrome-linux":
        return f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cv} Safari/537.36", False
    if form == "firefox-linux":
        return f"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{fv}) Gecko/20100101 Firefox/{fv}", False
    if form == "firefox-win":
        return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{fv}) Gecko/20100101 Firefox/{fv}", False
    if form == "safari":
        sv = rng.choice(["17.6", "18.1", "18.6", "26.0"])
        return f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{sv} Safari/605.1.15", False
    return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{cv} Safari/537.36 Edg/{cv}", False


def _ag_os(rng):
    return rng.choice([
        "fetch libfetch/2.0", "libfetch/2.0", "OpenBSD ftp",
        f"MacPorts/{rng.choice(['2.9.3', '2.10.1', '2.10.5'])}",
        f"NetBSD-ftp/{rng.choice(['20230930', '20200608'])}", "slapt-get/0.11.6",
        "pypi-install/0.7.1", "slackrepo", "PTXdist 2024.09.0", "GARstow/1.0",
        f"xbps/{rng.choice(['0.59.2', '0.60.1'])}"]), False


BOT_AGENTS = [
    "Datadog Agent/7.57.2", "Datadog Agent/7.52.0", "WordPress/6.6.2; https://example.org",
    "Chef Client/18.5.0 (ruby-3.1.6-p260; ohai-18.1.11; x86_64-linux; +https://chef.io)",
    "Chef Knife/17.10.0 (ruby-3.0.6-p216; ohai-17.9.0; arm64-darwin21; +https://chef.io)",
    "Ruby", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "TextualInlineMedia/1.0",
    "WeeChat/4.4.2", "Download Master", "Java/17.0.12", "Java/1.8.0_422", "Go 1.1 package http",
    "Go-http-client/1.1", "Go-http-client/2.0", "GNU Guile", "github-olee", "YisouSpider",
    "Apache Ant/1.10.14", "Salt/3007.1", "ansible-httpget", "ltx71 - (http://ltx71.com/)",
    "Scrapy/2.11.2 (+https://scrapy.org)", "spectool/4.0",
    "NutchCVS/0.8-dev (Nutch; http://lucene.apache.org/nutch/bot.html; nutch-agent@lucene.apache.org)",
    "AWSBrewLinkChecker/1.0", "Y!J-ASR/0.1 crawler (http://www.yahoo-help.jp/)",
    "NSIS_Inetc (Mozilla)", "Debian uscan 2.23.7", "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "MauiBot (crawler.feedback+dc@gmail.com)", "inspector.pypi.io",
]


def _ag_bot(rng):
    return rng.choice(BOT_AGENTS), False


def _ag_null(rng):
    return "(null)", False


def _ag_bandersnatch(rng):
    v = rng.choice(["6.6.0", "6.5.0", "6.3.0", "6.1.0", "4.4.0", "5.3.0"])
    py = rng.choice(["3.11.7", "3.12.4", "3.10.12", "3.9.18", "3.8.10"])
    arch = rng.choice(["Linux x86_64", "Linux x86_64", "Linux aarch64", "Darwin arm64"])
    s = f"bandersnatch/{v} (cpython {py}-final0, {arch})"
    if rng.random() < 0.6:
        s += f" (aiohttp {rng.choice(['3.9.1', '3.10.10', '3.11.18', '3.8.6'])})"
    return s, False


def _ag_bandersnatch_xmlrpc(rng):
    v = rng.choice(["6.6.0", "6.5.0", "6.3.0"])
    py = rng.choice(["3.11.7", "3.12.4", "3.10.12"])
    return f"bandersnatch {v} aiohttp XML-RPC client (Python: {py}.final.0, version: {rng.choice(['1.5.0', '1.6.0'])})", False


def _ag_devpi(rng):
    py = rng.choice(["3.11.7", "3.12.4", "3.10.12", "3.9.18"])
    return f"devpi-server/{rng.choice(['6.12.1', '6.14.0', '6.10.0', '5.5.1'])} (py{py}; {rng.choice(['linux', 'linux', 'darwin'])})", False


def _ag_artifactory(rng):
    return f"Artifactory/{rng.choice(['7.84.17', '7.90.10', '7.77.8', '7.104.15', '7.111.4', '6.23.42'])}", False


def _ag_nexus(rng):
    v = rng.choice(["3.68.1-02", "3.70.1-02", "3.75.1-01", "3.61.0-02", "3.82.0-08"])
    ed = rng.choice(["OSS", "OSS", "PRO"])
    kern = rng.choice(["5.15.0-105-generic", "4.4.0-62-generic", "6.8.0-1017-aws", "5.14.0-427.el9.x86_64"])
    java = rng.choice(["1.8.0_402", "17.0.12", "11.0.24"])
    return f"Nexus/{v} ({ed}; Linux; {kern}; amd64; {java})", False


def _ag_z3c(rng):
    return f"z3c.pypimirror/{rng.choice(['1.0.16', '1.0.15'])}", False


def _ag_pep381(rng):
    return f"{rng.choice(['pep381client', 'pep381client-proxy'])}/{rng.choice(['1.5', '1.2'])}", False


UNKNOWN_AGENTS = [
    "acme-artifacts/2.4.1", "corp-build-agent/7.1 (internal)", "ml-platform-fetcher/1.9.3 (linux; x64)",
    "PackageSnapshotter/2.0", "zeta-sync/1.0", "unittest-agent/0.1", "lambda-layer-builder/3.2",
    "deps-audit/5.0.2 (+https://example.invalid/info)", "corp-proxy/2.1 | upstream=pypi",
    "weird|agent/1.0", "my-downloader", "X", "gradle-pypi-resolver/0.4 (linux)",
    "SBOM-collector/0.9.1", "repo-cacher/4.3", "wheelhouse-builder/1.2.0 (linux)", "nightly-sync",
]


def _ag_unknown(rng):
    base = rng.choice(UNKNOWN_AGENTS)
    if "/" in base and rng.random() < 0.5:
        name, _, rest = base.partition("/")
        ver = rest.split(" ", 1)
        ver[0] = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        base = name + "/" + " ".join(ver)
    return base, False


# name: (share of all good lines in %, kind, generator, base pool size for pool_size=3000)
FAMILIES: dict[str, tuple[float, str, object, int]] = {
    "pip-json": (60.0, "installer", _ag_pip_json, 1850),
    "uv-json": (20.0, "installer", _ag_uv_json, 620),
    # the other 20 %
    "pip-json-uv": (0.10, "installer", _ag_pip_json_uv, 8),
    "pep-standard": (0.30, "installer", _ag_pep_standard, 24),
    "hatch": (0.15, "installer", _ag_hatch, 14),
    "pip-old": (0.50, "installer", _ag_pip_old, 40),
    "poetry": (1.60, "installer", _ag_poetry, 60),
    "pdm-old": (0.20, "installer", _ag_pdm_old, 10),
    "pdm": (0.55, "installer", _ag_pdm, 25),
    "twine": (0.10, "installer", _ag_twine, 8),
    "conda": (0.40, "installer", _ag_conda, 30),
    "bazel": (0.40, "installer", _ag_bazel, 10),
    "homebrew": (0.25, "installer", _ag_homebrew, 15),
    "pex": (0.10, "installer", _ag_pex, 4),
    "maturin": (0.10, "installer", _ag_maturin, 5),
    "setuptools": (0.30, "installer", _ag_setuptools, 15),
    "distribute": (0.05, "installer", _ag_distribute, 4),
    "uv-bare": (0.30, "installer", _ag_uv_bare, 7),
    "bandersnatch": (2.20, "mirror", _ag_bandersnatch, 30),
    "bandersnatch-xmlrpc": (0.20, "mirror", _ag_bandersnatch_xmlrpc, 6),
    "devpi": (0.60, "mirror", _ag_devpi, 15),
    "artifactory": (0.90, "mirror", _ag_artifactory, 6),
    "nexus": (0.60, "mirror", _ag_nexus, 25),
    "z3c.pypimirror": (0.05, "mirror", _ag_z3c, 2),
    "pep381client": (0.05, "mirror", _ag_pep381, 4),
    "python-urllib": (0.30, "script", _ag_python_urllib, 7),
    "requests": (1.90, "script", _ag_requests, 7),
    "httpx": (0.40, "script", _ag_httpx, 4),
    "urllib3": (0.40, "script", _ag_urllib3, 5),
    "aiohttp": (0.30, "script", _ag_aiohttp, 12),
    "curl": (1.00, "script", _ag_curl, 8),
    "wget": (0.50, "script", _ag_wget, 8),
    "httpie": (0.10, "script", _ag_httpie, 3),
    "downloaders": (0.15, "script", _ag_downloaders, 8),
    "browser": (1.00, "browser", _ag_browser, 60),
    "os": (0.30, "os", _ag_os, 13),
    "bot": (0.60, "bot", _ag_bot, 32),
    "null": (0.50, "bot", _ag_null, 1),
    "unknown": (1.10, "unknown", _ag_unknown, 40),
}
_OTHER_TOTAL = sum(v[0] for k, v in FAMILIES.items() if k not in ("pip-json", "uv-json"))
MIRROR_FAMILIES = tuple(k for k, v in FAMILIES.items() if v[1] == "mirror")


def family_shares() -> dict[str, float]:
    """Expected share (0..1) of each agent family among good lines."""
    out = {}
    for k, v in FAMILIES.items():
        out[k] = v[0] / 100 if k in ("pip-json", "uv-json") else v[0] / _OTHER_TOTAL * 0.20
    return out


@dataclass(frozen=True, slots=True)
class Agent:
    raw: bytes
    family: str
    kind: str
    ci: bool

    @property
    def traffic(self) -> str:
        return _traffic(self.kind, self.ci)


# --------------------------------------------------------------------------
# Projects, versions, files
# --------------------------------------------------------------------------

# Display names (as on PyPI) in rough popularity order. "*" marks projects that
# ship platform wheels; "!" marks sdist-only projects.
_PROJECTS = """
boto3 botocore urllib3 requests setuptools certifi typing_extensions idna *charset-normalizer
python-dateutil s3transfer packaging aiobotocore six *numpy *grpcio-status *PyYAML s3fs fsspec pip
*cryptography *pydantic-core pydantic *cffi attrs google-api-core pycparser *pandas importlib-metadata
jmespath *protobuf zipp rsa click *MarkupSafe pyasn1 platformdirs wheel pytz Jinja2 colorama awscli
filelock tomli cachetools PyJWT virtualenv googleapis-common-protos pyasn1-modules *grpcio google-auth
jsonschema pluggy *wrapt *SQLAlchemy pytest annotated-types *aiohttp *multidict *yarl tzdata *psutil
pyparsing docutils exceptiongroup iniconfig *frozenlist aiosignal requests-oauthlib oauthlib *greenlet
*pyarrow soupsieve beautifulsoup4 *scipy Werkzeug isodate *pillow tomlkit decorator anyio sniffio h11
httpx httpcore *grpcio-tools distlib *lxml more-itertools openpyxl et-xmlfile Pygments tqdm azure-core
Flask *msgpack *coverage proto-plus async-timeout requests-toolbelt rich markdown-it-py mdurl
websocket-client *psycopg2-binary google-cloud-storage itsdangerous *regex chardet pyOpenSSL Deprecated
mypy-extensions sortedcontainers *scikit-learn joblib threadpoolctl tenacity GitPython gitdb smmap dill
shellingham pathspec poetry-core google-cloud-core google-resumable-media *google-crc32c
opentelemetry-api opentelemetry-sdk *matplotlib *kiwisolver cycler *fonttools *contourpy networkx sympy
mpmath *torch *nvidia-cudnn-cu12 *triton transformers huggingface-hub *tokenizers *safetensors keras
*tensorflow absl-py termcolor typing-inspect marshmallow redis celery kombu billiard vine amqp Django
djangorestframework asgiref sqlparse uvicorn fastapi starlette gunicorn *black isort flake8 pycodestyle
pyflakes mccabe *mypy pylint astroid *ruff pre-commit identify cfgv nodeenv tox nox hatchling
setuptools-scm build pyproject_hooks twine readme-renderer *nh3 keyring jaraco.classes *zope.interface
zope.event pbr docker paramiko *bcrypt *PyNaCl invoke fabric ansible-core ansible jsonpointer jsonpatch
python-dotenv *pyzmq *tornado traitlets jupyter_core jupyter_client ipython ipykernel prompt_toolkit wcwidth
parso jedi pexpect ptyprocess nest-asyncio *debugpy matplotlib-inline asttokens executing pure-eval
stack-data ruamel.yaml *ruamel.yaml.clib xmltodict *simplejson *ujson *orjson *uv *polars *duckdb
*apache-beam google-cloud-bigquery *snowflake-connector-python databricks-sdk PyMySQL *mysqlclient
*Cython *numba *llvmlite *opencv-python *scikit-image imageio tifffile *h5py XlsxWriter Markdown mkdocs
mkdocs-material Sphinx alabaster Babel snowballstemmer cfn-flip !pyspark !docopt !future !jieba !thrift
"""

# Real-looking version lists for the very top (newest first); others are synthesized.
_KNOWN_VERSIONS = {
    "boto3": ["1.40.45", "1.40.44", "1.40.40", "1.39.17", "1.35.99", "1.34.162", "1.26.165"],
    "botocore": ["1.40.45", "1.40.44", "1.40.40", "1.39.17", "1.35.99", "1.34.162", "1.29.165"],
    "urllib3": ["2.5.0", "2.4.0", "2.3.0", "2.2.3", "1.26.20", "1.26.18"],
    "requests": ["2.32.5", "2.32.4", "2.32.3", "2.31.0", "2.28.2", "2.25.1"],
    "setuptools": ["80.9.0", "80.3.1", "78.1.1", "75.8.0", "70.0.0", "69.5.1", "65.5.0", "44.1.1"],
    "certifi": ["2025.8.3", "2025.7.14", "2025.4.26", "2024.8.30", "2023.7.22"],
    "typing-extensions": ["4.15.0", "4.14.1", "4.13.2", "4.12.2", "4.7.1"],
    "idna": ["3.10", "3.8", "3.7", "3.4", "2.10"],
    "numpy": ["2.3.4", "2.3.3", "2.2.6", "2.0.2", "1.26.4", "1.24.4", "1.21.6"],
    "packaging": ["25.0", "24.2", "24.1", "23.2", "21.3"],
    "six": ["1.17.0", "1.16.0", "1.15.0"],
    "pip": ["25.2", "25.1.1", "24.3.1", "24.0", "23.3.2", "21.3.1", "20.3.4"],
    "pandas": ["2.3.3", "2.3.2", "2.2.3", "2.1.4", "2.0.3", "1.5.3", "1.3.5"],
    "cryptography": ["46.0.2", "45.0.7", "44.0.3", "43.0.3", "42.0.8", "41.0.7", "3.4.8"],
    "pydantic": ["2.11.9", "2.11.7", "2.10.6", "2.9.2", "1.10.22"],
    "python-dateutil": ["2.9.0.post0", "2.8.2"],
    "pyyaml": ["6.0.3", "6.0.2", "6.0.1", "5.4.1"],
    "protobuf": ["6.32.1", "6.31.1", "5.29.5", "4.25.8", "3.20.3"],
    "s3transfer": ["0.14.0", "0.13.1", "0.11.5", "0.10.4"],
    "charset-normalizer": ["3.4.3", "3.4.2", "3.4.1", "3.3.2", "2.0.12"],
}

WHEEL_TAGS = [
    ("cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", 14),
    ("cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", 14),
    ("cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64", 9),
    ("cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64", 7),
    ("cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64", 5),
    ("cp312-cp312-manylinux_2_28_aarch64", 3),
    ("cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64", 3),
    ("cp312-cp312-musllinux_1_2_x86_64", 2),
    ("cp312-cp312-macosx_11_0_arm64", 5),
    ("cp311-cp311-macosx_10_9_x86_64", 1.5),
    ("cp312-cp312-win_amd64", 4),
    ("cp311-cp311-win_amd64", 3),
    ("cp313-cp313t-manylinux_2_17_x86_64.manylinux2014_x86_64", 0.3),
    ("cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64", 2),
    ("cp37-cp37m-manylinux_2_17_x86_64.manylinux2014_x86_64", 0.7),
    ("pp310-pypy310_pp73-manylinux_2_17_x86_64.manylinux2014_x86_64", 0.2),
]
_WHEEL_TAG_CHOICE = _Choice([t for t, _ in WHEEL_TAGS], [w for _, w in WHEEL_TAGS])

PACKAGE_TYPES = ("sdist", "bdist_wheel", "bdist_egg", "bdist_wininst", "bdist_msi",
                 "bdist_rpm", "bdist_dmg", "bdist_dumb")
_RARE_TYPES = [("bdist_egg", 6), ("bdist_wininst", 2), ("bdist_msi", 1), ("bdist_rpm", 1),
               ("bdist_dumb", 1), ("bdist_dmg", 0.5)]


@dataclass(slots=True)
class _Project:
    display: str
    name: str  # PEP 503 normalized: what the PROJECT field carries
    compiled: bool
    sdist_only: bool
    versions: list[str]
    version_choice: _Choice
    underscore_sdist: bool


def _synth_versions(rng: random.Random, n: int) -> list[str]:
    style = _pick(rng, [("semver", 6), ("calver", 1), ("two", 2)])
    out = []
    if style == "calver":
        y, m = 2025, rng.randint(1, 9)
        for _ in range(n):
            out.append(f"{y}.{m}.{rng.randint(1, 28)}")
            m -= rng.randint(1, 3)
            if m < 1:
                y, m = y - 1, m + 12
    else:
        major, minor, patch = rng.randint(0, 5), rng.randint(0, 30), rng.randint(0, 12)
        for _ in range(n):
            out.append(f"{major}.{minor}" if style == "two" else f"{major}.{minor}.{patch}")
            step = rng.random()
            if step < 0.5 and patch > 0:
                patch -= 1
            elif minor > 0:
                minor -= 1
                patch = rng.randint(0, 8)
            elif major > 0:
                major -= 1
                minor = rng.randint(3, 20)
            else:
                patch += 1  # degenerate: keep unique
    # dedupe, keep order
    seen: dict[str, None] = {}
    for v in out:
        seen.setdefault(v, None)
    return list(seen)


def _build_projects(rng: random.Random) -> list[_Project]:
    projects: list[_Project] = []
    seen: set[str] = set()
    for tok in _PROJECTS.split():
        compiled = tok.startswith("*")
        sdist_only = tok.startswith("!")
        display = tok.lstrip("*!")
        name = normalize(display)
        if name in seen:
            continue
        seen.add(name)
        versions = _KNOWN_VERSIONS.get(name) or _synth_versions(rng, rng.randint(3, 8))
        projects.append(_Project(display, name, compiled, sdist_only, versions,
                                 _zipf(versions, 1.3), rng.random() < 0.7))
    return projects


def _file_for(proj: _Project, version: str, ptype: str, tag: str | None) -> str:
    dist = re.sub(r"[-.]+", "_", proj.display if not proj.underscore_sdist else proj.name)
    if ptype == "bdist_wheel":
        wdist = re.sub(r"[-.]+", "_", proj.name)
        if tag is None:
            tag = "py2.py3-none-any" if proj.name in ("six", "python-dateutil", "future") else "py3-none-any"
        return f"{wdist}-{version}-{tag}.whl"
    if ptype == "sdist":
        base = dist if proj.underscore_sdist else proj.display
        return f"{base}-{version}.tar.gz" if not proj.name == "pyspark" else f"pyspark-{version}.tar.gz"
    if ptype == "bdist_egg":
        return f"{dist}-{version}-py2.7.egg"
    if ptype == "bdist_wininst":
        return f"{proj.display}-{version}.win32.exe"
    if ptype == "bdist_msi":
        return f"{proj.display}-{version}.win-amd64.msi"
    if ptype == "bdist_rpm":
        return f"{proj.display}-{version}-1.noarch.rpm"
    if ptype == "bdist_dmg":
        return f"{proj.display}-{version}-macosx10.6.dmg"
    if ptype == "bdist_dumb":
        return f"{proj.display}-{version}.linux-x86_64.tar.gz"
    return f"{dist}-{version}.tar.gz"


def _url_for(filename: str, salt: str) -> str:
    h = hashlib.blake2b((salt + "/" + filename).encode(), digest_size=32).hexdigest()
    return f"/packages/{h[:2]}/{h[2:4]}/{h[4:]}/{filename}"


# --------------------------------------------------------------------------
# Line-level constants
# --------------------------------------------------------------------------

COUNTRIES = [("US", 34), ("CN", 9), ("DE", 6), ("IE", 4), ("GB", 4), ("IN", 4.5), ("FR", 3),
             ("JP", 3), ("NL", 3), ("SG", 3), ("CA", 2.5), ("KR", 2), ("BR", 2), ("AU", 1.8),
             ("SE", 1), ("FI", 0.8), ("CH", 0.8), ("PL", 0.8), ("RU", 0.8), ("IL", 0.6),
             ("HK", 0.8), ("TW", 0.7), ("ES", 0.7), ("IT", 0.7), ("VN", 0.5), ("ID", 0.5),
             ("ZA", 0.3), ("MX", 0.4), ("AR", 0.2), ("NG", 0.1), ("", 1.4), ("(null)", 0.2)]
_COUNTRY_CHOICE = _Choice([c for c, _ in COUNTRIES], [w for _, w in COUNTRIES])
TLS = [(("TLSv1.3", "TLS_AES_128_GCM_SHA256"), 58), (("TLSv1.3", "TLS_AES_256_GCM_SHA384"), 16),
       (("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), 3),
       (("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), 16), (("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"), 4),
       (("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305"), 1), (("(null)", "(null)"), 1)]
_TLS_CHOICE = _Choice([t for t, _ in TLS], [w for _, w in TLS])
LEGACY_TLS = [("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
              ("TLSv1.2", "ECDHE-RSA-AES128-SHA"), ("TLSv1.1", "ECDHE-RSA-AES128-SHA"),
              ("TLSv1", "ECDHE-RSA-AES128-SHA")]
SYSLOG_HOSTS = ["cache-itm18828", "cache-iad2130", "cache-iad2151", "cache-sjc3145", "cache-fra19126",
                "cache-lhr7325", "cache-nrt6134", "cache-syd10124", "cache-ams21021", "cache-gru17128",
                "cache-sea4436", "cache-hhn1546", "cache-bom18231", "cache-dfw18630"]

# ---- bad lines -----------------------------------------------------------
# kind -> (reason code per parsers-api.md, also-acceptable codes)
# Decisions where the docs leave room (documented in fixtures/README.md):
#  * a message with no known prefix (``download|``, ``simple|``, ``<PRI>``, ``N@``)
#    is treated as a bare v1 message only when it starts with an RFC 1123
#    timestamp (``Ddd, ``); otherwise it is ``unknown-format``.  A parser that
#    tries v1 on everything would say ``too-few-fields`` / ``bad-timestamp``:
#    those are listed in ``also_ok``.
#  * invalid UTF-8 in the agent makes the line a ``bad-utf8`` dead letter.
BAD_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "garbage": ("unknown-format", ("too-few-fields",)),
    "truncated": ("too-few-fields", ()),
    "bad-timestamp": ("bad-timestamp", ()),
    "null-timestamp": ("null-timestamp", ()),
    "null-url": ("null-url", ()),
    "null-project": ("null-project", ()),
    "null-version": ("null-version", ()),
    "null-package-type": ("null-package-type", ()),
    "unknown-package-type": ("bad-package-type", ()),
    "unknown-prefix": ("unknown-format", ()),  # also_ok set per variant
    "bad-utf8": ("bad-utf8", ()),
    "empty": ("empty-line", ()),
    "too-few-fields": ("too-few-fields", ()),
    "bad-simple-url": ("bad-simple-url", ()),
    "bad-syslog-header": ("bad-syslog-header", ()),
    "huge": ("line-too-long", ()),
}
CURRENT_BAD_KINDS = ("garbage", "truncated", "bad-timestamp", "null-timestamp", "null-url",
                     "null-project", "null-version", "null-package-type", "unknown-package-type",
                     "unknown-prefix", "bad-utf8", "empty", "too-few-fields", "bad-simple-url")
LEGACY_BAD_KINDS = CURRENT_BAD_KINDS + ("bad-syslog-header",)
MAX_LINE = 65536

GARBAGE = [
    "Connection reset by peer", "lorem ipsum dolor sit amet", "GET /simple/numpy/ HTTP/1.1",
    "{\"level\":\"info\",\"msg\":\"flush\"}", "########", "null", "0", "EOF",
    "download", "simple", "HTTP/1.1 503 Service Unavailable", "ok ok ok ok",
    "x" * 120, "3f9a2c1e8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f", "??? ??? ???",
]
# Invalid under any reading (strptime, email.utils.parsedate, dateutil): no lenient
# parser may turn one of these into a time.
BAD_TIMESTAMPS = ["Thu, 41 Oct 2026 12:00:00 GMT", "Thu, 01 Okt 2026 12:00:00 GMT",
                  "Thu, 01 Oct 2026 25:61:00 GMT", "Wed, 31 Sep 2026 12:00:00 GMT",
                  "Thu, 00 Oct 2026 12:00:00 GMT", "yesterday", "-", "1759320000x"]
BAD_PACKAGE_TYPES = ["bdist_conda", "wheel", "egg", "bdist_pex", "bdist_snap", "source"]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\x80abc", b"caf\xe9"]


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

FRESH_AGENTS = 0.05
"""Default share of lines whose agent was never seen before; with the pool, ≥ 5 % of lines carry a distinct agent, as in PyPI's traffic (≈ 5.7 % per 200k lines)."""
_KERNEL_BUILD = re.compile(rb'("release":"\d+\.\d+(?:\.\d+)?-)(\d+)')


class Corpus:
    """A deterministic line factory: agent pool + projects + an RNG.

    Reuse one Corpus across files so that agents and files repeat across
    them, as in real traffic.
    """

    def __init__(self, seed: int = 0, pool_size: int = 3000, fresh_agents: float = FRESH_AGENTS):
        if not 0 <= fresh_agents <= 0.5:
            raise ValueError("fresh_agents must be between 0 and 0.5")
        self.seed = seed
        self.rng = random.Random(f"haulage-corpus/{seed}")
        # Fresh agents are decided by their own RNG so that the rest of the
        # stream (times, files, bad lines, which pool agent) does not depend
        # on the knob: fresh_agents=0 gives the corpus as it always was.
        self.fresh_agents = fresh_agents
        self._fresh_rng = random.Random(f"haulage-corpus/{seed}/fresh")
        self._fresh_owed = 0.0
        self._fresh_serial = 0
        pool_rng = random.Random(f"haulage-corpus/{seed}/agents")
        self.projects = _build_projects(random.Random(f"haulage-corpus/{seed}/projects"))
        self._project_choice = _zipf(self.projects, 1.05)
        self._file_cache: dict[tuple, tuple[str, str]] = {}
        self.pools: dict[str, list[Agent]] = {}
        self._pool_choice: dict[str, _Choice] = {}
        scale = pool_size / 3000.0
        shares = family_shares()
        for fam, (_, kind, gen, base) in FAMILIES.items():
            target = 1 if fam == "null" else max(1, round(base * scale))
            seen: dict[str, Agent] = {}
            tries = 0
            while len(seen) < target and tries < target * 20 + 50:
                tries += 1
                ua, ci = gen(pool_rng)
                if ua not in seen:
                    seen[ua] = Agent(ua.encode(), fam, kind, ci)
            agents = list(seen.values())
            pool_rng.shuffle(agents)  # popularity rank independent of generation order
            self.pools[fam] = agents
            self._pool_choice[fam] = _zipf(agents, 1.0)
        fams = list(FAMILIES)
        self._family_choice = _Choice(fams, [shares[f] for f in fams])

    # ---- pieces ----------------------------------------------------------

    def agent(self, family: str | None = None) -> Agent:
        fam = family or self._family_choice(self.rng)
        a = self._pool_choice[fam](self.rng)
        if self.fresh_agents:
            if self._fresh_rng.random() < self.fresh_agents:
                self._fresh_owed += 1
            if self._fresh_owed >= 1 and (fresh := self._fresh_variant(a)) is not None:
                self._fresh_owed -= 1
                return fresh
        return a

    def _fresh_variant(self, a: Agent) -> Agent | None:
        """``a`` with a kernel build number never used before, or None if it names no Linux kernel.

        Real pip and uv agents differ in the kernel release, the Python patch
        level and the OpenSSL build, so a day of PyPI traffic holds several
        distinct agents per hundred lines. Only the build number changes
        (``5.15.0-105-generic`` → ``5.15.0-40117-generic``): family, kind, CI
        flag and cloud marker stay those of ``a``, so the oracle is unchanged.
        """
        match = _KERNEL_BUILD.search(a.raw)
        if match is None:
            return None
        self._fresh_serial += 1
        build = b"%d" % (1000 + self._fresh_serial * 7 + self._fresh_rng.randrange(7))
        raw = a.raw[: match.start(2)] + build + a.raw[match.end(2) :]
        return Agent(raw, a.family, a.kind, a.ci)

    def plain_agent(self) -> Agent:
        """An agent with no ``|`` and no ``": "`` (for lines whose fields get removed)."""
        while True:
            a = self.agent()
            if b"|" not in a.raw and b": " not in a.raw:
                return a

    def _download_fields(self):
        rng = self.rng
        proj: _Project = self._project_choice(rng)
        version = proj.version_choice(rng)
        if proj.sdist_only:
            ptype = "sdist"
        else:
            x = rng.random()
            if x < 0.004:
                ptype = _pick(rng, _RARE_TYPES)
            elif x < (0.08 if proj.compiled else 0.14):
                ptype = "sdist"
            else:
                ptype = "bdist_wheel"
        tag = _WHEEL_TAG_CHOICE(rng) if (ptype == "bdist_wheel" and proj.compiled) else None
        key = (proj.name, version, ptype, tag)
        got = self._file_cache.get(key)
        if got is None:
            fn = _file_for(proj, version, ptype, tag)
            got = (fn, _url_for(fn, proj.name))
            self._file_cache[key] = got
        return proj.name, version, ptype, got[1]

    def _simple_path(self) -> tuple[str, str | None]:
        rng = self.rng
        if rng.random() < 0.003:
            return "/simple/", None
        proj: _Project = self._project_choice(rng)
        x = rng.random()
        if x < 0.10 and proj.display != proj.name:
            seg = proj.display                        # /simple/Django/, /simple/zope.interface/
        elif x < 0.13:
            seg = proj.name.replace("-", "_") if "-" in proj.name else proj.name.upper() if rng.random() < 0.3 else proj.name
        else:
            seg = proj.name
        return f"/simple/{seg}/", normalize(seg)

    # ---- good lines --------------------------------------------------------

    def good(self, epoch: int, fmt: str = "download", agent: Agent | None = None) -> tuple[bytes, Expect]:
        """One valid line. fmt: download, simple, v1, v1-bare, v2, v3-download, v3-simple."""
        rng = self.rng
        a = agent or self.agent()
        ts, iso, date, _ = _times(epoch)
        cc = _COUNTRY_CHOICE(rng)
        if fmt in ("simple", "v3-simple"):
            url, project = self._simple_path()
            tlsp, tlsc = _TLS_CHOICE(rng) if fmt == "simple" else rng.choice(LEGACY_TLS)
            msg = f"simple|{ts}|{cc}|{url}|{tlsp}|{tlsc}||||".encode() + a.raw
            exp = Expect(SIMPLE_REQUESTS, fmt, date, iso, project, None, None, True,
                         a.kind, a.traffic, a.ci, a.family)
        else:
            name, version, ptype, url = self._download_fields()
            if fmt == "download":
                tlsp, tlsc = _TLS_CHOICE(rng)
            else:
                tlsp, tlsc = rng.choice(LEGACY_TLS)
            if fmt in ("download", "v3-download"):
                msg = f"download|{ts}|{cc}|{url}|{tlsp}|{tlsc}|{name}|{version}|{ptype}|".encode() + a.raw
            elif fmt == "v2":
                msg = f"2@{ts}|{cc}|{url}|{tlsp}|{tlsc}|{name}|{version}|{ptype}|".encode() + a.raw
            elif fmt in ("v1", "v1-bare"):
                pre = "1@" if (fmt == "v1" and rng.random() < 0.5) else ""
                msg = f"{pre}{ts}|{cc}|{url}|{name}|{version}|{ptype}|".encode() + a.raw
            else:
                raise ValueError(fmt)
            exp = Expect(FILE_DOWNLOADS, fmt, date, iso, name, version, ptype,
                         not fmt.startswith("v1"), a.kind, a.traffic, a.ci, a.family)
        if fmt.startswith("v3"):
            msg = b"3@" + msg
        if fmt.startswith("v") and fmt != "v1-bare":
            msg = self._syslog(epoch) + msg
        return msg, exp

    def _syslog(self, epoch: int, pri: int | None = None) -> bytes:
        rng = self.rng
        _, iso, _, _ = _times(epoch + rng.choice((0, 1, 1, 1, 2)))
        host = rng.choice(SYSLOG_HOSTS)
        pid = 400000 + (int(hashlib.blake2b(host.encode(), digest_size=4).hexdigest(), 16) % 99999)
        return f"<{pri or 134}>{iso} {host} linehaul[{pid}]: ".encode()

    def legacy_fmt(self, simple_fraction: float) -> str:
        rng = self.rng
        x = rng.random()
        if x < 0.28:
            return "v1"
        if x < 0.30:
            return "v1-bare"
        if x < 0.72:
            return "v2"
        return "v3-simple" if rng.random() < simple_fraction else "v3-download"

    # ---- bad lines ---------------------------------------------------------

    def bad(self, kind: str, epoch: int, legacy: bool = False) -> tuple[bytes, Expect]:
        """One bad line of a known kind (see BAD_KINDS)."""
        rng = self.rng
        reason, also = BAD_KINDS[kind]
        ts = _times(epoch)[0]

        def done(raw: bytes, fmt: str, also_ok=also) -> tuple[bytes, Expect]:
            return raw, Expect(UNPROCESSED, fmt, reason=reason, bad=kind, also_ok=tuple(also_ok))

        if kind == "empty":
            return done(b"", "empty")
        if kind == "garbage":
            return done(rng.choice(GARBAGE).encode(), "garbage")
        if kind == "huge":
            return self._huge(epoch, legacy, done)

        if kind == "bad-syslog-header":
            if not legacy:
                raise ValueError("bad-syslog-header needs legacy=True")
            line, _ = self.good(epoch, rng.choice(["v2", "v3-download"]), agent=self.plain_agent())
            head, _, msg = line.partition(b": ")
            form = rng.randrange(4)
            if form == 0:    # PRI never closed
                head = head.replace(b">", b" ", 1)
                raw = head + b": " + msg
            elif form == 1:  # no ": " between header and message
                raw = head + b" " + msg
            elif form == 2:  # header cut after the hostname
                raw = b" ".join(head.split(b" ")[:2])
            else:            # empty PRI
                raw = b"<>" + head.split(b">", 1)[1] + b": " + msg
            return done(raw, "syslog")

        # carrier format
        needs_download = kind in ("null-url", "null-project", "null-version", "null-package-type",
                                  "unknown-package-type")
        if legacy:
            if kind == "bad-simple-url":
                fmt = "v3-simple"
            elif needs_download:
                fmt = rng.choice(["v1", "v2", "v2", "v3-download"])
            else:
                fmt = rng.choice(["v1", "v2", "v3-download", "v3-simple"])
        else:
            if kind == "bad-simple-url":
                fmt = "simple"
            elif needs_download:
                fmt = "download"
            else:
                fmt = "simple" if rng.random() < 0.15 else "download"

        agent = self.plain_agent()
        fields, header = self._fields(epoch, fmt, agent)
        # field indexes in `fields` (prefix handled separately)
        if fmt in ("download", "v3-download", "simple", "v3-simple"):
            i_ts, i_url, i_proj, i_ver, i_type, nfields = 1, 3, 6, 7, 8, 10
        elif fmt == "v2":
            i_ts, i_url, i_proj, i_ver, i_type, nfields = 0, 2, 5, 6, 7, 9
        else:  # v1 (always with the 1@ prefix here, so the format is never in doubt)
            i_ts, i_url, i_proj, i_ver, i_type, nfields = 0, 2, 3, 4, 5, 7
        prefix = {"v1": b"1@", "v2": b"2@", "v3-download": b"3@", "v3-simple": b"3@"}.get(fmt, b"")
        agent_raw = agent.raw
        also_ok = also

        if kind == "null-timestamp":
            fields[i_ts] = "(null)"
        elif kind == "bad-timestamp":
            fields[i_ts] = rng.choice(BAD_TIMESTAMPS)
        elif kind == "null-url":
            fields[i_url] = "(null)"
        elif kind == "null-project":
            fields[i_proj] = "(null)"
        elif kind == "null-version":
            fields[i_ver] = "(null)"
        elif kind == "null-package-type":
            fields[i_type] = "(null)"
        elif kind == "unknown-package-type":
            fields[i_type] = rng.choice(BAD_PACKAGE_TYPES)
        elif kind == "bad-simple-url":
            p = self._project_choice(rng).name
            fields[i_url] = rng.choice([f"/pypi/{p}/json", "/robots.txt", f"/project/{p}/",
                                        self._download_fields()[3]])
        elif kind == "bad-utf8":
            junk = rng.choice(INVALID_UTF8)
            cut = rng.randrange(len(agent_raw) + 1)
            agent_raw = agent_raw[:cut] + junk + agent_raw[cut:]
        elif kind == "too-few-fields":
            # drop one field between the timestamp and the agent
            drop = rng.randrange(i_ts + 1, nfields - 1)
            del fields[drop]
        elif kind == "truncated":
            msg = prefix + "|".join(fields).encode() + b"|"
            pipes = [i for i, c in enumerate(msg) if c == 0x7C]
            # keep the timestamp whole, never reach the separator before the agent
            lo = pipes[i_ts + 1] + 1
            hi = pipes[nfields - 3]
            cut = rng.randint(lo, hi)
            return done(header + msg[:cut], fmt)
        elif kind == "unknown-prefix":
            line = prefix + "|".join(fields).encode() + b"|" + agent_raw
            variant = rng.randrange(3)
            if variant == 0:  # an unknown message version
                line = rng.choice([b"4@", b"7@", b"0@"]) + line[len(prefix):] if prefix else rng.choice([b"4@", b"9@"]) + line
                return done(header + line, fmt, ())
            if variant == 1:  # authentication token before the message
                token = hashlib.blake2b(line, digest_size=16).hexdigest().encode()
                return done(header + token + b" " + line, fmt, ("bad-timestamp", "too-few-fields"))
            # an unknown record type
            if fmt in ("download", "simple"):
                rtype = rng.choice([b"upload", b"json", b"files"])
                line = rtype + line[line.index(b"|"):]
                return done(header + line, fmt, ("bad-timestamp",))
            line = b"5@" + line[len(prefix):]
            return done(header + line, fmt, ())
        else:
            raise ValueError(kind)
        return done(header + prefix + "|".join(fields).encode() + b"|" + agent_raw, fmt, also_ok)

    def _fields(self, epoch: int, fmt: str, agent: Agent) -> tuple[list[str], bytes]:
        """Split a freshly built good line into (fields without agent and prefix, syslog header)."""
        raw, _ = self.good(epoch, fmt, agent=agent)
        header = b""
        if fmt.startswith("v"):
            head, _, raw = raw.partition(b": ")
            header = head + b": "
            if raw[:2] in (b"1@", b"2@", b"3@"):
                raw = raw[2:]
        body = raw[: len(raw) - len(agent.raw)]
        assert body.endswith(b"|")
        return body[:-1].decode().split("|"), header

    def _huge(self, epoch: int, legacy: bool, done):
        rng = self.rng
        data, ci = _pip_data(rng, "pip", "25.2", _minor_range("3.11-3.13"), with_ci=True,
                             allow_user_data=False)
        words = ["build", "stage", "job", "matrix", "linux", "x86_64", "py312", "cache", "warm"]
        data["user_data"] = "|".join(f"{rng.choice(words)}={rng.randrange(10**6)}" for _ in range(6500))
        agent = Agent(f"pip/25.2 {_pip_json(data)}".encode(), "pip-json", "installer", ci)
        fmt = "v2" if legacy else "download"
        raw, _ = self.good(epoch, fmt, agent=agent)
        assert len(raw) > 70_000
        return done(raw, fmt)

    # ---- streams -----------------------------------------------------------

    def labelled(self, n: int, start="2026-10-01", days: float = 1, bad_fraction: float = 0.01,
                 legacy_fraction: float = 0.0, *, simple_fraction: float = 0.04,
                 bad_kinds=None, duplicate_fraction: float = 0.01, jitter: int = 2
                 ) -> Iterator[tuple[bytes, Expect]]:
        """n labelled lines spread over [start, start + days), roughly in time order."""
        rng = self.rng
        t0 = _parse_start(start)
        span = max(1, int(round(days * 86400)))
        t_last = t0 + span - 1
        cur_kinds = tuple(k for k in (bad_kinds or CURRENT_BAD_KINDS) if k != "bad-syslog-header")
        leg_kinds = tuple(bad_kinds or LEGACY_BAD_KINDS)
        pending = None
        for i in range(n):
            if pending is not None:  # a 206 range request / retry: same line again
                yield pending
                pending = None
                continue
            t = t0 + int((i + rng.random()) * span / n) + rng.randint(-jitter, jitter)
            t = t0 if t < t0 else t_last if t > t_last else t
            legacy = legacy_fraction > 0 and rng.random() < legacy_fraction
            if bad_fraction > 0 and rng.random() < bad_fraction:
                kinds = leg_kinds if legacy else cur_kinds
                yield self.bad(kinds[rng.randrange(len(kinds))], t, legacy=legacy)
                continue
            if legacy:
                fmt = self.legacy_fmt(simple_fraction)
            else:
                fmt = "simple" if rng.random() < simple_fraction else "download"
            item = self.good(t, fmt)
            if fmt == "download" and rng.random() < duplicate_fraction:
                pending = item
            yield item


def iter_labelled(n: int, seed: int = 0, start_date="2026-10-01", days: float = 1,
                  bad_fraction: float = 0.01, legacy_fraction: float = 0.0, **kw
                  ) -> Iterator[tuple[bytes, Expect]]:
    pool_size = kw.pop("pool_size", 3000)
    fresh_agents = kw.pop("fresh_agents", FRESH_AGENTS)
    return Corpus(seed, pool_size, fresh_agents).labelled(n, start_date, days, bad_fraction, legacy_fraction, **kw)


def generate_labelled(n: int, seed: int = 0, start_date="2026-10-01", days: float = 1,
                      bad_fraction: float = 0.01, legacy_fraction: float = 0.0, **kw
                      ) -> list[tuple[bytes, Expect]]:
    """n (line, Expect) pairs; lines are bytes without a trailing newline.

    Keyword options: simple_fraction (0.04), bad_kinds (CURRENT/LEGACY_BAD_KINDS),
    duplicate_fraction (0.01), jitter (2 s), pool_size (3000), fresh_agents
    (FRESH_AGENTS: share of lines with an agent never seen before).
    """
    return list(iter_labelled(n, seed, start_date, days, bad_fraction, legacy_fraction, **kw))


def generate_lines(n: int, seed: int = 0, start_date="2026-10-01", days: float = 1,
                   bad_fraction: float = 0.01, legacy_fraction: float = 0.0, **kw) -> list[bytes]:
    """n lines (bytes, no trailing newline)."""
    return [line for line, _ in iter_labelled(n, seed, start_date, days, bad_fraction,
                                              legacy_fraction, **kw)]


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, required=True, help="total lines over all files")
    ap.add_argument("--files", type=int, default=1, help="number of gzip files (default 1)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--start", default="2026-10-01", help="UTC start date or datetime")
    ap.add_argument("--bad-fraction", type=float, default=0.01)
    ap.add_argument("--legacy-fraction", type=float, default=0.0)
    ap.add_argument("--simple-fraction", type=float, default=0.04)
    ap.add_argument("--pool-size", type=int, default=3000)
    ap.add_argument("--fresh-agents", type=float, default=FRESH_AGENTS,
                    help=f"share of lines whose agent is new (default {FRESH_AGENTS}; 0 = agents only from the pool)")
    ap.add_argument("--level", type=int, default=6, help="gzip level (default 6)")
    ap.add_argument("--labels", action="store_true",
                    help="also write downloads-<n>.labels.jsonl.gz with one Expect per line")
    a = ap.parse_args(argv)
    if a.files < 1 or a.lines < 0:
        ap.error("--files must be >= 1 and --lines >= 0")
    os.makedirs(a.out, exist_ok=True)
    width = len(str(a.files - 1))
    stream = iter_labelled(a.lines, a.seed, a.start, a.days, a.bad_fraction, a.legacy_fraction,
                           simple_fraction=a.simple_fraction, pool_size=a.pool_size,
                           fresh_agents=a.fresh_agents)
    began = time.perf_counter()
    total_bytes = 0
    for f in range(a.files):
        count = a.lines // a.files + (1 if f < a.lines % a.files else 0)
        path = os.path.join(a.out, f"downloads-{f:0{width}d}.log.gz")
        lab = None
        if a.labels:
            lab = gzip.GzipFile(os.path.join(a.out, f"downloads-{f:0{width}d}.labels.jsonl.gz"), "wb",
                                compresslevel=a.level, mtime=0)
        with open(path, "wb") as raw_out, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, compresslevel=a.level, mtime=0) as out:
            buf = []
            for _ in range(count):
                line, exp = next(stream)
                buf.append(line)
                if lab is not None:
                    lab.write(json.dumps(exp.to_dict(), separators=(",", ":")).encode() + b"\n")
                if len(buf) >= 4096:
                    out.write(b"\n".join(buf) + b"\n")
                    buf.clear()
            if buf:
                out.write(b"\n".join(buf) + b"\n")
        if lab is not None:
            lab.close()
        size = os.path.getsize(path)
        total_bytes += size
        print(f"wrote {path}: {count} lines, {size} bytes")
    took = time.perf_counter() - began
    rate = a.lines / took if took > 0 else float("inf")
    print(f"total: {a.lines} lines in {a.files} file(s), {total_bytes} bytes, "
          f"{took:.2f} s ({rate:,.0f} lines/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
