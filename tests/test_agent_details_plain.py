"""The short way for the JSON clients send (``from_plain_linehaul_json``) against the general conversion.

Rule under test: for any JSON text, the short way applied to orjson's
decoding is either None (it declines) or exactly what
``from_linehaul_json`` gives on the stdlib's decoding, which is what PyPI
decodes with. And it must not decline what pip, uv and Hatch send, or
it would be a slower path that is never taken.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from haulage.parsers.agents import parse_agent
from haulage.parsers.agents.details import from_linehaul_json, from_plain_linehaul_json

PIP = ('{"ci":null,"cpu":"x86_64","distro":{"id":"jammy","libc":{"lib":"glibc","version":"2.35"},"name":"Ubuntu",'
       '"version":"22.04"},"implementation":{"name":"CPython","version":"3.12.3"},"installer":{"name":"pip",'
       '"version":"24.0"},"openssl_version":"OpenSSL 3.0.2 15 Mar 2022","python":"3.12.3","setuptools_version":"68.1.2",'
       '"system":{"name":"Linux","release":"6.8.0-1021-azure"},"user_data":"team=ml"}')
UV = ('{"installer":{"name":"uv","version":"0.5.11","subcommand":["pip","install"]},"python":"3.13.0",'
      '"implementation":{"name":"CPython","version":"3.13.0"},"distro":{"name":"Ubuntu","version":"22.04","id":"jammy",'
      '"libc":{"lib":"glibc","version":"2.35"}},"system":{"name":"Linux","release":"6.8.0"},"cpu":"x86_64",'
      '"openssl_version":null,"setuptools_version":null,"rustc_version":"1.83.0","ci":true}')
HATCH_MINIMAL = '{"installer":{"name":"hatch","version":"1.9.0"},"python":"3.12.1","ci":false}'

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8), st.sampled_from(["3.12.1", "Linux", "é", "a b", "it's", "", "\u2028"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["name", "version", "lib", "x"]), inner, max_size=3)),
                      max_leaves=6)
plain_text = st.one_of(st.none(), st.sampled_from(["3.12.1", "CPython", "glibc", "2.35", "x86_64", ""]))
text_values = st.one_of(plain_text, plain_text, plain_text, values)


def _record(*keys: str):
    return st.one_of(st.none(), values, *[st.fixed_dictionaries({}, optional={key: text_values for key in keys})] * 4)


environments = st.fixed_dictionaries({}, optional={
    "installer": st.one_of(values, *[st.fixed_dictionaries({}, optional={
        "name": text_values, "version": text_values,
        "subcommand": st.one_of(st.none(), values, st.lists(st.sampled_from(["pip", "install", "a b", "", "é"]), max_size=3)),
    })] * 4),
    "python": text_values, "implementation": _record("name", "version"),
    "distro": st.one_of(values, *[st.fixed_dictionaries({}, optional={
        "name": text_values, "version": text_values, "id": text_values, "libc": _record("lib", "version")})] * 4),
    "system": _record("name", "release"), "cpu": text_values, "openssl_version": text_values,
    "setuptools_version": text_values, "rustc_version": text_values,
    "ci": st.one_of(st.none(), st.booleans(), values), "user_data": st.one_of(st.none(), st.text(max_size=600), values),
    "unknown_key": values,
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(environments, environments, environments, values), st.booleans())
@example({"python": 100000000000000000000, "installer": {"name": "pip", "version": "24.0"}}, False)
@example({"installer": {"name": "uv", "subcommand": ["pip", 3]}}, True)
@example({"installer": {"name": "uv", "subcommand": ["pip", {"a": 1}]}}, True)
@example({"ci": 1, "cpu": "x86_64"}, True)
@example({"user_data": "x" * 600, "unknown_key": 1.5}, True)
def test_the_short_way_declines_or_agrees_with_the_general_conversion(payload, ensure_ascii):
    text = json.dumps(payload, ensure_ascii=ensure_ascii)
    plain = from_plain_linehaul_json(orjson.loads(text))
    if plain is not None:
        general = from_linehaul_json(json.loads(text))
        assert plain == general
        assert list(plain) == list(general)  # same keys in the same order: rows keep one shape


@pytest.mark.parametrize("payload", [PIP, UV, HATCH_MINIMAL])
def test_what_clients_send_takes_the_short_way(payload):
    plain = from_plain_linehaul_json(orjson.loads(payload))
    assert plain is not None
    assert plain == from_linehaul_json(json.loads(payload))


def test_the_short_way_joins_subcommands_and_cuts_user_data_as_the_general_one():
    details = parse_agent("uv/0.5.11 " + UV).details
    assert details["installer"] == {"name": "uv", "version": "0.5.11", "subcommand": "pip install"}
    assert details["ci"] is True and details["rustc_version"] == "1.83.0"
    long_user_data = PIP.replace('"team=ml"', json.dumps("u" * 700))
    assert parse_agent("pip/24.0 " + long_user_data).details["user_data"] == "u" * 512
