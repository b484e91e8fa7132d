"""What every reader shares: the ``Record`` a reader yields, format guessing, opening (gzip too)."""

from __future__ import annotations

import gzip
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._errors import PayguardError

__all__ = ["FORMATS", "ReaderError", "Record", "guess_format", "set_path"]

FORMATS = ("jsonl", "csv", "iso20022")
MAX_TEXT_NODE = 10_000
CHUNK = 1 << 16


class ReaderError(PayguardError, ValueError):
    """A reader option is wrong (an unknown format or mapping); bad *data* becomes rejected records."""


@dataclass(frozen=True)
class Record:
    """One input record: the event dict it maps to, or the reason it could not be read.

    ``possible_duplicate``: its sender said it may have been sent before (ISO 20022 ``PssblDplct``).
    """

    source: str
    line: int
    event: dict[str, Any] | None
    error: str | None = None
    possible_duplicate: bool = False

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def guess_format(name: str) -> str:
    """The reader for a file name: .jsonl, .csv or .xml, each maybe .gz; stdin is JSON Lines."""
    base = name.lower().removesuffix(".gz")
    if base.endswith(".csv"):
        return "csv"
    if base.endswith(".xml"):
        return "iso20022"
    return "jsonl"


def _open_binary(name: str) -> IO[bytes]:
    """A binary stream of ``name`` (``-`` is stdin), decompressed when it starts with the gzip magic."""
    if name == "-":
        stdin = (
            io.BufferedReader(sys.stdin.buffer.raw) if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
        )
        if isinstance(stdin, io.BufferedReader) and stdin.peek(2)[:2] == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=stdin)  # type: ignore[return-value]
        return stdin
    with Path(name).open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    return gzip.open(name, "rb") if compressed else Path(name).open("rb")  # type: ignore[return-value]


def _open_text(name: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(name), encoding="utf-8-sig", newline="")


def set_path(event: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``payer.account``-style dotted paths in an event dict, creating the objects on the way."""
    target = event
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
