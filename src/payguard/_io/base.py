"""What every reader shares: the ``Record`` a reader yields, format guessing, opening (gzip too)."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._errors import PayguardError

__all__ = ["FORMATS", "Limits", "ReaderError", "Record", "guess_format", "lines", "set_path"]

FORMATS = ("jsonl", "csv", "iso20022")
MAX_TEXT_NODE = 10_000
CHUNK = 1 << 16
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Limits:
    """How long one line (a JSON Lines record, a CSV record) and one CSV field may be; a record over
    either is rejected on its own and reading goes on. ``max_field`` cannot exceed the ``csv`` module's
    own limit (131,072 characters, ``csv.field_size_limit()``), which payguard does not change for the
    whole process."""

    max_line: int = 1 << 20  # bytes
    max_field: int = 131_072  # characters

    def __post_init__(self) -> None:
        if self.max_line < 1 or not 1 <= self.max_field <= 131_072:
            raise ReaderError("max_line must be at least 1 byte and max_field between 1 and 131,072")


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


def lines(handle: IO[bytes], max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes with their line end) of each line of ``handle``, without a leading byte-order
    mark; ``None`` for a line longer than ``max_line`` bytes, which is skipped to its end unread."""
    number = 0
    while True:
        chunk = handle.readline(max_line + 1)
        if not chunk:
            return
        number += 1
        if number == 1 and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        if len(chunk) > max_line and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = handle.readline(CHUNK)
            yield number, None
            continue
        yield number, chunk


def undecodable(exc: UnicodeDecodeError) -> str:
    """The reason of a rejected line that is not UTF-8 (its bytes are not repeated)."""
    return f"not valid UTF-8 (byte {exc.start + 1} of the record)"


def _open_text(name: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(name), encoding="utf-8-sig", newline="")


def set_path(event: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``payer.account``-style dotted paths in an event dict, creating the objects on the way."""
    target = event
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
