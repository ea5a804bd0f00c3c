"""The ``details`` record, built the way PyPI's linehaul parser builds it.

PyPI structures an agent's JSON into attrs classes with cattrs: unknown keys
are ignored, missing keys become None, scalars are passed through ``str()``
(and ``bool()`` for ``ci``). We build plain dicts with every key present so a
row always has the same shape, and we never raise: a nested value of the
wrong type becomes None instead of failing the whole line.
"""

from __future__ import annotations

import shlex
from typing import Any, Optional

USER_DATA_MAX = 512

Details = dict[str, Any]


def text(value: Any) -> Optional[str]:
    """A scalar as cattrs' ``str`` hook would give it; None stays None."""
    if value is None:
        return None
    if type(value) is str:
        if value.isascii():  # the usual case: nothing to check
            return value
        result = value
    elif isinstance(value, str):
        result = value
    elif isinstance(value, (dict, list)):
        return None  # cattrs would stringify a repr; a container is not a field value
    else:
        result = str(value)
    try:
        result.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape
        result = result.encode("utf-8", "backslashreplace").decode("utf-8")
    return result


def record(value: Any, *keys: str) -> Optional[dict[str, Optional[str]]]:
    """A flat nested record (installer, implementation, system, libc)."""
    if not isinstance(value, dict):
        return None
    return {key: text(value.get(key)) for key in keys}


def subcommand(value: Any) -> Optional[str]:
    """uv's subcommand list, joined as it would be typed: ``["pip", "install"]`` → ``pip install``.

    PyPI joins the list with ``shlex.join``, so an empty list is ``""`` (not
    null). Extensions, where PyPI's structuring would garble the value: a
    non-list is kept as its text (PyPI splits a string into characters), and
    in a list a null is ``''`` and nested containers are dropped (PyPI
    writes their Python repr).
    """
    if value is None:
        return None
    if isinstance(value, list):
        return shlex.join([text(part) or "" for part in value if not isinstance(part, (dict, list))])
    return text(value)


def user_data(value: Any) -> Optional[str]:
    """pip's PIP_USER_AGENT_USER_DATA: free text from the user, so bounded."""
    if value is None:
        return None
    if not isinstance(value, str):
        import json

        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text(value)[:USER_DATA_MAX]


def make_details(
    *,
    installer: Optional[dict] = None,
    python: Optional[str] = None,
    implementation: Optional[dict] = None,
    distro: Optional[dict] = None,
    system: Optional[dict] = None,
    cpu: Optional[str] = None,
    openssl_version: Optional[str] = None,
    setuptools_version: Optional[str] = None,
    rustc_version: Optional[str] = None,
    ci: Optional[bool] = None,
    user_data: Optional[str] = None,
) -> Details:
    return {
        "installer": installer,
        "python": python,
        "implementation": implementation,
        "distro": distro,
        "system": system,
        "cpu": cpu,
        "openssl_version": openssl_version,
        "setuptools_version": setuptools_version,
        "rustc_version": rustc_version,
        "ci": ci,
        "user_data": user_data,
    }


def installer(name: Optional[str], version: Optional[str] = None, sub: Optional[str] = None) -> dict:
    return {"name": name, "version": version, "subcommand": sub}


def pair(name_key: str, name: Optional[str], version_key: str, version: Optional[str]) -> dict:
    return {name_key: name, version_key: version}


def ci_flag(value: Any) -> Optional[bool]:
    """``ci`` is TRUE or NULL: clients send ``true`` or ``null``; anything falsy is NULL."""
    return True if value is not None and bool(value) else None


def from_linehaul_json(data: Any) -> Optional[Details]:
    """pip / uv / Hatch JSON → details; None when the JSON is not an object."""
    if not isinstance(data, dict):
        return None
    inst = data.get("installer")
    if isinstance(inst, dict):
        inst_record = {
            "name": text(inst.get("name")),
            "version": text(inst.get("version")),
            "subcommand": subcommand(inst.get("subcommand")),
        }
    else:
        inst_record = None
    distro = data.get("distro")
    if isinstance(distro, dict):
        distro_record = {
            "name": text(distro.get("name")),
            "version": text(distro.get("version")),
            "id": text(distro.get("id")),
            "libc": record(distro.get("libc"), "lib", "version"),
        }
    else:
        distro_record = None
    return make_details(
        installer=inst_record,
        python=text(data.get("python")),
        implementation=record(data.get("implementation"), "name", "version"),
        distro=distro_record,
        system=record(data.get("system"), "name", "release"),
        cpu=text(data.get("cpu")),
        openssl_version=text(data.get("openssl_version")),
        setuptools_version=text(data.get("setuptools_version")),
        rustc_version=text(data.get("rustc_version")),
        ci=ci_flag(data.get("ci")),
        user_data=user_data(data.get("user_data")),
    )
