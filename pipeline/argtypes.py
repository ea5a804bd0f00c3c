"""argparse value types shared by the subcommands (no heavy imports here)."""

from __future__ import annotations

import argparse
import datetime
import re


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def iso_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value



_BYTE_SIZE = re.compile(r"^\s*([0-9]+)\s*(|k|kib|m|mib|g|gib)\s*$", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(text: str) -> int:
    """A positive number of bytes: ``33554432``, ``32M`` or ``32MiB`` (binary units: k, M, G)."""
    match = _BYTE_SIZE.match(text)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive size in bytes such as 33554432, 32M or 32MiB, got {text!r}")
    return int(match[1]) * _BYTE_UNITS[match[2][:1].lower()]
