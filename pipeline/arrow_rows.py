"""Moved to :mod:`haulage.parsers.arrow_rows` (the columnar parser needs it without Beam)."""

from haulage.parsers.arrow_rows import rows_to_arrow

__all__ = ["rows_to_arrow"]
