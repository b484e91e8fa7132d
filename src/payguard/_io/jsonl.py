"""JSON Lines: the canonical form, one event object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from .base import Record, _open_text
from .tabular import _STREAM_ERRORS


def read_jsonl(name: str) -> Iterator[Record]:
    line = 0
    try:
        with _open_text(name) as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield Record(name, line, None, f"invalid JSON: {exc}")
                    continue
                if isinstance(value, dict):
                    yield Record(name, line, value)
                else:
                    yield Record(name, line, None, f"expected a JSON object, got {type(value).__name__}")
    except _STREAM_ERRORS as exc:
        yield Record(name, line + 1, None, f"cannot read the file: {exc}")
