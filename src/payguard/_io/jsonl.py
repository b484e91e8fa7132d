"""JSON Lines: the canonical form, one event object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from .base import Limits, Record, _open_binary, lines, undecodable
from .tabular import _STREAM_ERRORS


def read_jsonl(name: str, limits: Limits | None = None) -> Iterator[Record]:
    """The records of a JSON Lines file; a line that cannot be read is rejected alone (its file and line
    named) and the lines after it are still read."""
    limits = limits or Limits()
    line = 0
    try:
        with _open_binary(name) as handle:
            for line, raw in lines(handle, limits.max_line):
                if raw is None:
                    yield Record(name, line, None, f"line longer than {limits.max_line:,} bytes")
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield Record(name, line, None, undecodable(exc))
                    continue
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield Record(name, line, None, f"invalid JSON: {exc}")
                    continue
                except RecursionError:
                    yield Record(name, line, None, "invalid JSON: nested too deeply")
                    continue
                if isinstance(value, dict):
                    yield Record(name, line, value)
                else:
                    yield Record(name, line, None, f"expected a JSON object, got {type(value).__name__}")
    except _STREAM_ERRORS as exc:
        yield Record(name, line + 1, None, f"cannot read the file: {exc}")
