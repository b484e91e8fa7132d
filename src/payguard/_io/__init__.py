"""Readers: transaction files into canonical event dicts, one ``Record`` per input record.

Every reader streams, and never raises for bad input: a record that cannot be read (bad JSON, a missing
column, a file that is not a payment message, a truncated gzip stream) becomes a ``Record`` with an
``error`` and its position, so that nothing is dropped without a trace.

- ``jsonl``: the canonical form, one JSON object per line.
- ``csv``: with a column mapping, a YAML file or one of the built-in ones (``paysim``, ``handbook``,
  ``amlsim``) for the public data sets.
- ``iso20022``: pain.001 customer credit transfers (any version, country variants) and pacs.008
  interbank transfers, namespace-agnostic, parsed with DTDs and entities refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import FORMATS, Limits, ReaderError, Record, guess_format
from .iso20022 import read_iso20022
from .jsonl import read_jsonl
from .tabular import load_mapping, read_csv

__all__ = ["Limits", "read_records"]


def read_records(
    name: str, fmt: str | None = None, mapping: str | None = None, limits: Limits | None = None
) -> Iterator[Record]:
    """The records of one file (``-`` is stdin), in file order. Raises ``ReaderError`` only for options.

    ``limits`` bounds a JSON Lines or CSV record's line and a CSV field; a record over them is rejected
    alone, as is one that is not UTF-8, and the records after it are still read."""
    chosen = fmt or guess_format(name)
    if chosen not in FORMATS:
        raise ReaderError(f"unknown format {chosen!r}: use {', '.join(FORMATS)}")
    if name != "-" and not Path(name).is_file():
        return iter([Record(name, 0, None, "no such file")])
    if chosen == "csv":
        return read_csv(name, load_mapping(mapping, name), limits)  # a bad mapping fails here, before reading
    if chosen == "iso20022":
        return read_iso20022(name)
    return read_jsonl(name, limits)
