"""Checking an audit file line by line: record hashes, the chain's links, checkpoints and their signatures.

``verify_file`` checks a whole file (with the witness's checkpoints when given); ``check_tail`` checks what
a restarting guard continues from: the lines after the file's last checkpoint. Both walk the lines with
one ``Walker``, so a file a guard would continue is a file ``verify`` accepts.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .._errors import AuditError
from .checkpoints import CHECKPOINT, checkpoint_problem, read_witness
from .keys import AuditKeys, PublicKeySource, load_public_key, signer_id
from .processors import GENESIS, record_hash
from .sinks import lines_backwards

__all__ = ["RESUMED", "Tail", "VerifyReport", "check_tail", "verify_file"]

RESUMED: Final = "resumed"
NOT_A_RECORD: Final = (
    "not an audit record: a complete line without a valid hash is tampering "
    "(only an incomplete last line is an interrupted write)"
)
EDITED: Final = "record was edited: its hash does not match"
BROKEN: Final = "chain broken: a record before this one was removed, inserted or reordered"
CUT: Final = "incomplete last record: an interrupted write, or the file was cut"


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_file`` found: ``ok``, the records checked, the first bad line and notes.

    ``hashes_checked`` is False when some records are keyed and no key for them was given (their form and
    links were checked, an edit to them would not be noticed); ``signatures_checked`` is False when
    checkpoints were found and no public key was given; ``checkpoints`` counts the checkpoints, of the file
    and of the witness, that agree with the chain.
    """

    ok: bool
    records: int
    first_bad_line: int | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()
    hashes_checked: bool = True
    signatures_checked: bool = True
    checkpoints: int = 0


class _Problem(Exception):  # noqa: N818 (internal: carries the line and reason out of the walk)
    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass
class Walker:
    """The state of a walk over an audit file's lines; ``line`` raises ``_Problem`` at the first bad one.

    ``keys``: chain keys by key id (a keyed record whose key is missing fails when any key is given, else is
    counted in ``unchecked``); ``publics``: public keys by signer id (none: signatures are not checked);
    ``expected``: the heads the witness's checkpoints sealed, by record count. ``previous`` ``None`` takes
    the first record's ``prev_hash`` as given (a walk that starts at a file's last record).
    """

    keys: Mapping[str, bytes]
    publics: Mapping[str, Ed25519PublicKey]
    expected: Mapping[int, Sequence[tuple[str, str]]] = field(default_factory=dict)
    previous: str | None = GENESIS
    records: int = 0
    keyed: bool = False
    counted: bool = True  # whether ``records`` counts from the file's start (a walk from mid-file: not yet)
    pending: tuple[int, bytes] | None = None  # a complete line that is not JSON: a crash's remnant, if named
    unkeyed: int = 0
    unchecked: Counter[str] = field(default_factory=Counter)
    unchecked_upto: int = 0  # the count at the last record whose hash could not be checked
    strict: bool = True  # a record under a key not given fails (else it is counted in ``unchecked``)
    checkpoints: int = 0
    sealed: int = 0  # the record count of the last checkpoint met
    unsigned: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self, number: int, raw: bytes) -> None:
        if not raw.endswith(b"\n"):
            raise _Problem(number, CUT)
        try:
            record = json.loads(raw)
        except ValueError:
            if self.pending is not None:
                raise _Problem(self.pending[0], NOT_A_RECORD) from None
            self.pending = (number, raw[:-1])
            return
        if not isinstance(record, dict):
            raise _Problem(number, NOT_A_RECORD)
        if record.get("record") == CHECKPOINT and "hash" not in record:
            self._checkpoint(number, record)
        else:
            self._record(number, record)

    def _record(self, number: int, record: dict[str, Any]) -> None:
        digest, previous = record.get("hash"), record.get("prev_hash")
        if not (isinstance(digest, str) and isinstance(previous, str)):
            raise _Problem(number, NOT_A_RECORD)
        self._remnant(number, record)
        key_id = record.get("key_id")
        if key_id is None:
            if self.keyed:
                raise _Problem(number, "record without a key_id after keyed records: it was rewritten")
            self.unkeyed += 1
            if record_hash(record) != digest:
                raise _Problem(number, EDITED)
        elif not isinstance(key_id, str):
            raise _Problem(number, NOT_A_RECORD)
        else:
            self.keyed = True
            key = self.keys.get(key_id)
            if key is not None:
                if record_hash(record, key) != digest:
                    raise _Problem(number, EDITED)
            elif self.keys and self.strict:
                given = ", ".join(sorted(self.keys))
                raise _Problem(
                    number, f"record written with key_id {key_id}, not with the key given ({given})"
                )
            else:
                self.unchecked[key_id] += 1
                self.unchecked_upto = self.records + 1
        if self.previous is None:
            self.previous = previous
        if previous != self.previous:
            raise _Problem(number, BROKEN)
        self.previous = digest
        self.records += 1
        self._witnessed(number)

    def _witnessed(self, number: int) -> None:
        """The chain so far must end in the head each witness checkpoint of this length sealed."""
        for head, where in self.expected.get(self.records, ()):
            if head != self.previous:
                raise _Problem(
                    number,
                    f"the chain differs from the checkpoint at {where} (record {self.records:,}): records "
                    "up to this one were removed, inserted, reordered or rewritten",
                )
            self.checkpoints += 1

    def _remnant(self, number: int, record: dict[str, Any]) -> None:
        """A remnant line must be named, length and SHA-256, by the ``resumed`` record right after it."""
        named = record.get("interrupted") if record.get("record") == RESUMED else None
        if self.pending is None:
            if named is not None:
                raise _Problem(number, "names an interrupted write that is not there: a line was removed")
            return
        line, raw = self.pending
        if named != {"length": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}:
            raise _Problem(line, NOT_A_RECORD)
        self.notes.append(f"line {line}: incomplete record left by an interrupted write; chain continues")
        self.pending = None

    def _checkpoint(self, number: int, checkpoint: dict[str, Any]) -> None:
        if self.pending is not None:
            raise _Problem(self.pending[0], NOT_A_RECORD)
        problem = checkpoint_problem(checkpoint, self.publics)
        if problem is not None:
            raise _Problem(number, problem)
        if not self.counted:  # a walk that began mid-file learns the count from its first checkpoint
            self.previous = checkpoint["head"] if self.previous is None else self.previous
            self.records, self.counted = checkpoint["records"], True
            self._witnessed(number)
        if (checkpoint["records"], checkpoint["head"]) != (self.records, self.previous):
            raise _Problem(
                number,
                f"checkpoint of {checkpoint['records']:,} records does not match the {self.records:,} "
                "records before it: records were removed, inserted or rewritten",
            )
        self.keyed = self.keyed or checkpoint["key_id"] is not None
        self.sealed = self.records
        self.checkpoints += 1
        self.unsigned += not self.publics

    def end(self, last_line: int) -> None:
        if self.pending is not None:
            raise _Problem(self.pending[0], NOT_A_RECORD)
        if self.strict and self.keys and self.records and not self.keyed:  # a file rewritten as unkeyed
            raise _Problem(
                1, "no record carries a key_id: the hashes are plain SHA-256, anyone could rewrite them"
            )
        beyond = [(count, where) for count, heads in self.expected.items() for _, where in heads]
        beyond = [(count, where) for count, where in beyond if count > self.records]
        if beyond:
            count, where = max(beyond)
            raise _Problem(
                last_line + 1,
                f"the file ends after {self.records:,} records but the checkpoint at {where} sealed "
                f"{count:,}: records were removed from the end, or the file was cut or emptied",
            )

    def report_notes(self, keys_given: bool) -> list[str]:
        notes = list(self.notes)
        if self.unchecked:
            ids = ", ".join(sorted(self.unchecked))
            notes.append(
                f"record hashes were NOT checked: {sum(self.unchecked.values()):,} records are keyed "
                f"(key_id {ids}) and no --key was given; the file's form, its links and its checkpoints "
                "were checked, but an edit to a record would not be noticed"
            )
        if self.unkeyed and (self.keyed or keys_given):
            notes.append(
                f"{self.unkeyed:,} records at the start carry no key_id: their hashes are plain SHA-256, "
                "which anyone can recompute"
            )
        elif self.unkeyed:
            notes.append(
                "no record is keyed (written without audit_key): their hashes are plain SHA-256, which "
                "anyone who edits the file can recompute"
            )
        if self.unsigned:
            notes.append(
                f"{self.unsigned:,} checkpoint signatures were NOT checked: no --public-key was given"
            )
        return notes


def _chain_keys(key: bytes | str | Sequence[bytes | str] | None) -> dict[str, bytes]:
    given = [] if key is None else [key] if isinstance(key, str | bytes) else list(key)
    found = {}
    for secret in given:
        derived = AuditKeys.derive(secret)
        assert derived.key_id is not None
        assert derived.chain is not None
        found[derived.key_id] = derived.chain
    return found


def _publics(public_key: PublicKeySource | Sequence[PublicKeySource] | None) -> dict[str, Ed25519PublicKey]:
    if public_key is None:
        given: list[PublicKeySource] = []
    elif isinstance(public_key, str | Path | Ed25519PublicKey):
        given = [public_key]
    else:
        given = list(public_key)
    loaded = [load_public_key(source) for source in given]
    return {signer_id(public): public for public in loaded}


def _witnessed(
    path: str | Path, publics: Mapping[str, Ed25519PublicKey]
) -> tuple[dict[int, list[tuple[str, str]]], int]:
    """The heads a witness file's checkpoints sealed, by record count, and how many went unsigned-checked;
    raises ``_Problem`` for a line of it that is not a valid checkpoint."""
    expected: dict[int, list[tuple[str, str]]] = {}
    unsigned = 0
    for number, checkpoint in read_witness(path):
        where = f"{path}:{number}"
        problem = NOT_A_RECORD if checkpoint is None else checkpoint_problem(checkpoint, publics)
        if checkpoint is None or problem is not None:
            raise _Problem(None, f"{where}: {problem}")
        expected.setdefault(checkpoint["records"], []).append((checkpoint["head"], where))
        unsigned += not publics
    return expected, unsigned


def verify_file(
    path: str | Path,
    *,
    key: bytes | str | Sequence[bytes | str] | None = None,
    public_key: PublicKeySource | Sequence[PublicKeySource] | None = None,
    checkpoints: str | Path | None = None,
) -> VerifyReport:
    """Check an audit file.

    With ``key`` (the ``audit_key``, or several for a file written across a key rotation) every record's
    HMAC is recomputed: any edit is found. Without it, keyed records' hashes cannot be checked and the
    report says so (``hashes_checked`` False). The chain's links are checked either way: a record removed
    or reordered breaks them. ``public_key`` checks the checkpoints' signatures; ``checkpoints`` (the
    witness's file) adds the checkpoints kept elsewhere, which detect deletion, reordering, truncation
    below the last of them and an empty file even by someone who holds ``key``. A complete line that is
    not a record is tampering; only an incomplete last line is an interrupted write (reported as cut), and
    a remnant the next start named in its ``resumed`` record is noted. Raises ``OSError`` when a file
    cannot be read and ``AuditError`` when a key cannot be loaded.
    """
    keys = _chain_keys(key)
    publics = _publics(public_key)
    walker = Walker(keys, publics)
    number = 0
    try:
        if checkpoints is not None:
            walker.expected, witness_unsigned = _witnessed(checkpoints, publics)
            walker.unsigned += witness_unsigned
        with Path(path).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                walker.line(number, raw)
        walker.end(number)
    except _Problem as problem:
        return VerifyReport(
            False,
            walker.records,
            problem.line,
            problem.reason,
            tuple(walker.notes),
            hashes_checked=not walker.unchecked,
            signatures_checked=not walker.unsigned,
            checkpoints=walker.checkpoints,
        )
    return VerifyReport(
        True,
        walker.records,
        notes=tuple(walker.report_notes(bool(keys))),
        hashes_checked=not walker.unchecked,
        signatures_checked=not walker.unsigned,
        checkpoints=walker.checkpoints,
    )


@dataclass(frozen=True)
class Tail:
    """Where a reopened audit file's chain ends: the last hash, the record count and the count its last
    checkpoint sealed (both exact when the walk started at a checkpoint or the file's start), and a
    crash's remnant line to name, if any."""

    previous: str
    records: int
    sealed: int
    remnant: bytes | None


def check_tail(
    path: Path, keys: AuditKeys, public: Ed25519PublicKey | None, witnessed: dict[str, Any] | None = None
) -> Tail:
    """Check what a restarting guard would continue from, or raise ``AuditError``.

    With a signing key (``public``), the lines from the file's last checkpoint on, whose signature must be
    this guard's; without one, the lines from its last record on. Every record among them must carry a
    valid hash under this guard's key, and ``witnessed`` (the witness's last checkpoint) must not seal more
    records than the file holds.
    """
    if path.stat().st_size == 0:
        if witnessed is not None and public is not None:
            raise AuditError(
                f"audit file {str(path)!r} cannot be continued: it is empty, but the witness's last "
                f"checkpoint sealed {witnessed['records']:,} records; it was emptied or replaced"
            )
        return Tail(GENESIS, 0, 0, None)
    chain = {keys.key_id: keys.chain} if keys.key_id is not None and keys.chain is not None else {}
    publics = {signer_id(public): public} if public is not None else {}
    with path.open("rb") as handle:
        start, first = _resume_point(handle, checkpoint=public is not None)
        walker = Walker(
            chain, publics, previous=GENESIS if first is None else None, counted=first is None, strict=False
        )
        if witnessed is not None and public is not None:
            walker.expected = {witnessed["records"]: [(witnessed["head"], "the witness's last checkpoint")]}
        handle.seek(start)
        remnant = None
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):  # a crash's partial line: judged as the complete line it becomes
                    raw += b"\n"  # noqa: PLW2901
                walker.line(number, raw)
            if walker.pending is not None and walker.pending[0] == number:
                remnant = walker.pending[1]
                walker.pending = None
            walker.end(number)
        except _Problem as problem:
            after = "its last checkpoint" if publics else "its last record"
            where = "" if problem.line is None else f" (line {problem.line} counting from {after})"
            raise AuditError(
                f"audit file {str(path)!r} cannot be continued: {problem.reason}{where}; "
                "check it with `payguard audit verify` and start a new audit file"
            ) from None
    # records under another key (a rotation) pass only when a checkpoint this guard signed seals them
    sealed = bool(publics) and walker.unchecked_upto <= walker.sealed
    if (walker.unchecked and not sealed) or (walker.keyed and keys.key_id is None):
        ids = ", ".join(sorted(walker.unchecked)) or "another key"
        raise AuditError(
            f"audit file {str(path)!r} cannot be continued: its last records were written with key_id {ids}, "
            f"this guard's audit_key has key_id {keys.key_id}; start a new audit file for a new key"
        )
    assert walker.previous is not None
    return Tail(walker.previous, walker.records, walker.sealed, remnant)


def _resume_point(handle: Any, *, checkpoint: bool) -> tuple[int, dict[str, Any] | None]:
    """Where a restart's check begins: the offset and line of the last checkpoint before the file's last
    record (with ``checkpoint`` False, of its last record); ``(0, None)`` for the file's start. The walk
    from there covers the last record and every checkpoint after it."""
    seen_record = False
    for offset, raw in lines_backwards(handle):
        try:
            found = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(found, dict):
            continue
        if found.get("record") == CHECKPOINT and "hash" not in found:
            if seen_record:
                return offset, found
        elif "hash" in found:
            if not checkpoint:
                return offset, found
            seen_record = True
    return 0, None
