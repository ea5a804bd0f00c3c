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

__all__ = [
    "USER_DATA_MAX", "text", "record", "subcommand", "user_data", "make_details", "installer", "pair",
    "ci_flag", "from_linehaul_json", "from_plain_linehaul_json",
]


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
    """A ``details`` record with every field of the schema present (absent ones NULL).

    Every family parser builds its result here, so all rows carry the same keys in
    the same order whatever agent they came from.
    """
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
    """The ``details.installer`` record: name, version and subcommand (each may be NULL)."""
    return {"name": name, "version": version, "subcommand": sub}


def pair(name_key: str, name: Optional[str], version_key: str, version: Optional[str]) -> dict:
    """A two-field record such as ``{"name": ..., "version": ...}`` under the schema's own key names."""
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


class _NotPlain(Exception):
    """A value :func:`from_plain_linehaul_json` leaves to :func:`from_linehaul_json`."""


def _plain(value: Any) -> Optional[str]:
    """A leaf that needs no conversion: None or an ASCII string (raises :class:`_NotPlain` otherwise)."""
    if value is None or (type(value) is str and value.isascii()):
        return value
    raise _NotPlain


def _plain_object(value: Any) -> Optional[dict[str, Any]]:
    """A record as clients send it: absent (None) or an object (raises :class:`_NotPlain` otherwise)."""
    if value is None or type(value) is dict:
        return value
    raise _NotPlain


def _plain_record(value: Any, first: str, second: str) -> Optional[dict[str, Optional[str]]]:
    """:func:`record` of two keys, for an absent record or one of plain leaves."""
    value = _plain_object(value)
    return None if value is None else {first: _plain(value.get(first)), second: _plain(value.get(second))}


_SUBCOMMANDS: dict[tuple[str, ...], str] = {}
"""Subcommand lists already joined: uv sends a handful (``run``, ``pip install``, ``sync``…)."""
_SUBCOMMANDS_LIMIT = 1024


def _plain_subcommand(value: Any) -> Optional[str]:
    """:func:`subcommand` of an absent subcommand or a list of ASCII strings, joined once per distinct list."""
    if value is None:
        return None
    if type(value) is not list:
        raise _NotPlain
    for part in value:
        if type(part) is not str or not part.isascii():
            raise _NotPlain
    key = tuple(value)
    joined = _SUBCOMMANDS.get(key)
    if joined is None:
        joined = shlex.join(key)
        if len(_SUBCOMMANDS) >= _SUBCOMMANDS_LIMIT:
            _SUBCOMMANDS.clear()
        _SUBCOMMANDS[key] = joined
    return joined


def from_plain_linehaul_json(data: Any) -> Optional[Details]:
    """:func:`from_linehaul_json` for the objects pip, uv and Hatch actually send; None for any other.

    Why: nearly every agent a worker has not seen before is pip's or uv's
    JSON, and building its details through the general converters (one
    call per leaf, each ready for any JSON type) is a large share of
    parsing it. The rule: ``data`` is an object whose every value this
    function reads is of the type clients send — records absent or
    objects, leaves absent, null or ASCII strings, ``ci`` absent, null or a
    boolean, ``subcommand`` absent or a list of ASCII strings. Then the
    result is exactly what :func:`from_linehaul_json` gives, since on such
    values every converter is the identity (or ``shlex.join``, or
    :func:`ci_flag`); otherwise it is None and the caller uses
    :func:`from_linehaul_json`. Values it does not read (unknown keys) may
    be anything, as they are ignored either way.
    """
    if type(data) is not dict:
        return None
    get = data.get
    try:
        inst = _plain_object(get("installer"))
        inst_record = None if inst is None else {
            "name": _plain(inst.get("name")),
            "version": _plain(inst.get("version")),
            "subcommand": _plain_subcommand(inst.get("subcommand")),
        }
        distro = _plain_object(get("distro"))
        distro_record = None if distro is None else {
            "name": _plain(distro.get("name")),
            "version": _plain(distro.get("version")),
            "id": _plain(distro.get("id")),
            "libc": _plain_record(distro.get("libc"), "lib", "version"),
        }
        ci = get("ci")
        if ci is not None and type(ci) is not bool:
            return None
        user_data = _plain(get("user_data"))
        return {
            "installer": inst_record,
            "python": _plain(get("python")),
            "implementation": _plain_record(get("implementation"), "name", "version"),
            "distro": distro_record,
            "system": _plain_record(get("system"), "name", "release"),
            "cpu": _plain(get("cpu")),
            "openssl_version": _plain(get("openssl_version")),
            "setuptools_version": _plain(get("setuptools_version")),
            "rustc_version": _plain(get("rustc_version")),
            "ci": True if ci else None,
            "user_data": user_data[:USER_DATA_MAX] if user_data is not None else None,
        }
    except _NotPlain:
        return None
