"""Checking an audit file's hash chain, record by record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .processors import GENESIS, record_hash

__all__ = ["VerifyReport", "verify_file"]


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_file`` found: ``ok``, the records checked, the first bad line and notes."""

    ok: bool
    records: int
    first_bad_line: int | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()


def verify_file(path: str | Path) -> VerifyReport:
    """Check the hash chain of an audit file.

    Fails at the first record that was edited (its hash does not match), removed or reordered (its
    ``prev_hash`` is not the previous record's hash), or at a last line cut short. A partial line in the
    middle, bridged by a record that links to the record before it, is what a crash mid-write leaves
    before a restart: it is noted, not failed.
    """
    previous = GENESIS
    records = 0
    notes: list[str] = []
    pending_partial: int | None = None
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return VerifyReport(
                    False, records, number, "incomplete last record: the file was cut", tuple(notes)
                )
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if not isinstance(record, dict) or "hash" not in record or "prev_hash" not in record:
                if (pending_partial is None and records > 0) or number == 1:
                    pending_partial = number
                    continue
                return VerifyReport(False, records, number, "not an audit record", tuple(notes))
            if record_hash(record) != record["hash"]:
                return VerifyReport(
                    False, records, number, "record was edited: its hash does not match", tuple(notes)
                )
            if record["prev_hash"] != previous:
                return VerifyReport(
                    False,
                    records,
                    number,
                    "chain broken: a record before this one was removed, inserted or reordered",
                    tuple(notes),
                )
            if pending_partial is not None:
                notes.append(
                    f"line {pending_partial}: incomplete record left by an interrupted write; chain continues"
                )
                pending_partial = None
            previous = record["hash"]
            records += 1
    if pending_partial is not None:
        return VerifyReport(
            False, records, pending_partial, "incomplete last record: the file was cut", tuple(notes)
        )
    return VerifyReport(True, records, notes=tuple(notes))
