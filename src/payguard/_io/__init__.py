"""_io."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import FORMATS, ReaderError, Record, guess_format
from .iso20022 import _read_iso20022
from .jsonl import _read_jsonl
from .tabular import _read_csv, load_mapping

__all__ = ["read_records"]


def read_records(name: str, fmt: str | None = None, mapping: str | None = None) -> Iterator[Record]:
    """The records of one file (``-`` is stdin), in file order. Raises ``ReaderError`` only for options."""
    chosen = fmt or guess_format(name)
    if chosen not in FORMATS:
        raise ReaderError(f"unknown format {chosen!r}: use {', '.join(FORMATS)}")
    if name != "-" and not Path(name).is_file():
        return iter([Record(name, 0, None, "no such file")])
    if chosen == "csv":
        return _read_csv(name, load_mapping(mapping, name))  # a bad mapping fails here, before reading
    if chosen == "iso20022":
        return _read_iso20022(name)
    return _read_jsonl(name)
