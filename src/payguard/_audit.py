"""The audit trail: one tamper-evident, privacy-masked record for every evaluated event.

Records are built and written by a chain of structlog processors, plain callables
``(logger, method_name, event_dict) -> event_dict``, on payguard's own wrapped logger: payguard never calls
``structlog.configure()`` and never touches the host application's logging.

    build record -> unpack_record -> mask_private_data -> chain_hashes -> render_canonical_json -> sink

Each record carries ``prev_hash`` (the previous record's ``hash``) and ``hash``, the SHA-256 of its own
canonical JSON (sorted keys, no spaces) without the ``hash`` field. ``verify_file`` checks a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

import orjson
import structlog

from ._auditlog import WHOLE, AuditLogger
from ._cache import remember
from ._errors import AuditError

__all__ = [
    "GENESIS",
    "AuditTrail",
    "FileSink",
    "VerifyReport",
    "chain_hashes",
    "mask_private_data",
    "render_canonical_json",
    "unpack_record",
    "verify_file",
]

GENESIS: Final = "0" * 64
EventDict = MutableMapping[str, Any]

# Record keys that hold account-like identifiers: shown as last four characters plus a keyed hash.
MASKED_KEYS: Final = ("payer", "payee", "payer_customer", "payee_customer", "device_id", "ip")
# Evidence entries that are masked or erased the same way.
MASKED_FIELDS: Final = frozenset(
    {
        "payer.account",
        "payee.account",
        "payer.customer_id",
        "payee.customer_id",
        "session.device_id",
        "session.ip",
    }
)
ERASED_FIELDS: Final = frozenset({"payer.name", "payee.name", "memo", "purpose"})


class _Writer(Protocol):
    def msg(self, line: bytes) -> None: ...


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON of ``record`` as UTF-8: sorted keys, no whitespace, non-ASCII kept as is.

    orjson writes it (ten times faster than the standard library); an integer beyond 64 bits, which orjson
    refuses, falls back to the standard library's encoder. Both writing and ``verify_file`` go through
    this one function, so a record always hashes the same way.
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return text.encode()


def record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


class Masker:
    """Masks identifiers with a keyed hash so records about one account can be joined, never read."""

    def __init__(self, key: bytes | str | None) -> None:
        if key is None:
            key = os.urandom(32)  # records still mask; they just cannot be joined across processes
        self._key = key.encode() if isinstance(key, str) else key
        self._cache: dict[str, str] = {}

    def mask(self, value: str) -> str:
        found = self._cache.get(value)
        if found is None:
            digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:16]
            shown = f"…{value[-4:]}#{digest}" if len(value) > 8 else f"#{digest}"
            found = remember(self._cache, value, shown)
        return found


def unpack_record(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: the record ``AuditTrail.write`` hands over whole becomes the event dict of the chain.

    The record travels through structlog's bound logger as one value: its twenty fields passed as keyword
    arguments would be unpacked and packed again on the way (13,000 instructions a record, more than
    hashing it).
    """
    record = event_dict.get(WHOLE)
    if not isinstance(record, dict):
        return event_dict
    record["record"] = event_dict["record"]
    return record


def mask_private_data(masker: Masker) -> Callable[[Any, str, EventDict], EventDict]:
    """Processor: mask identifiers and drop names and free text, listing what it did on the record."""

    def processor(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        record = _as_dict(event_dict)
        masked: list[str] = []
        erased: list[str] = []
        for key in MASKED_KEYS:
            value = record.get(key)
            if isinstance(value, str):
                record[key] = masker.mask(value)
                masked.append(key)
        for key in ("payer_name", "payee_name", "memo", "purpose"):
            if record.pop(key, None) is not None:
                erased.append(key)
        evidence = record.get("evidence")
        if isinstance(evidence, dict) and evidence:
            for name in sorted(evidence):
                if name in MASKED_FIELDS and isinstance(evidence[name], str):
                    evidence[name] = masker.mask(evidence[name])
                    masked.append(f"evidence.{name}")
                elif name in ERASED_FIELDS:
                    value = evidence[name]
                    evidence[name] = (
                        {"erased": True, "length": len(value)} if isinstance(value, str) else None
                    )
                    erased.append(f"evidence.{name}")
        record["masked"] = masked
        record["erased"] = erased
        return record

    return processor


def _as_dict(event_dict: EventDict) -> dict[str, Any]:
    """The event dict as a plain dict (structlog passes one), which compiled code reads fastest."""
    return event_dict if isinstance(event_dict, dict) else dict(event_dict)


class chain_hashes:  # noqa: N801 (a processor, named like structlog's)
    """Processor: link the record to the previous one and seal it with its own hash.

    The canonical JSON it hashed is kept on ``body`` so that ``render_canonical_json`` does not serialise
    the record a second time.
    """

    def __init__(self, previous: str = GENESIS) -> None:
        self.previous = previous
        self.body: bytes | None = None

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        record = _as_dict(event_dict)
        record["prev_hash"] = self.previous
        record.pop("hash", None)
        self.body = body = canonical(record)
        record["hash"] = digest = hashlib.sha256(body).hexdigest()
        self.previous = digest
        return record


def render_canonical_json(chain: chain_hashes | None = None) -> Callable[[Any, str, EventDict], bytes]:
    """Processor: the record as one line of UTF-8 JSON (its canonical body, then its hash)."""

    def render(_logger: Any, _method: str, event_dict: EventDict) -> bytes:
        if chain is None or chain.body is None:
            return canonical(event_dict)
        body, chain.body = chain.body, None
        return b'%s,"hash":"%s"}' % (body[:-1], event_dict["hash"].encode())

    return render


class FileSink:
    """Appends JSON Lines to a file.

    Every record is written and flushed to the operating system before ``evaluate`` returns, so a crashed
    process loses nothing already decided. ``fsync`` adds durability against power loss: ``"never"``
    (default), ``"always"`` (each record), or an integer N (every N records).
    """

    def __init__(self, path: str | Path, fsync: str | int = "never") -> None:
        if not (fsync in ("never", "always") or (isinstance(fsync, int) and fsync > 0)):
            raise AuditError(f"fsync must be 'never', 'always' or a positive integer, not {fsync!r}")
        self.path = Path(path)
        self._every = 1 if fsync == "always" else (0 if fsync == "never" else int(fsync))
        self._count = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.previous_hash = last_hash(self.path)
            # Unbuffered: each write is one system call that hands the line to the operating system.
            self._file = self.path.open("ab", buffering=0)
            if self.path.stat().st_size and not _ends_with_newline(self.path):
                # A crash left a partial last line: start on a fresh line, the chain continues after it.
                self._write(b"\n")
        except OSError as exc:
            raise AuditError(f"cannot open audit file {str(self.path)!r}: {exc}") from exc

    def msg(self, line: bytes) -> None:
        self._write(line + b"\n")
        self._count += 1
        if self._every and self._count % self._every == 0:
            os.fsync(self._file.fileno())

    def _write(self, data: bytes) -> None:
        while data:  # a short write leaves the rest to write; an error raises OSError
            written = self._file.write(data)
            if not written:
                raise OSError(f"no progress writing {str(self.path)!r}")
            data = data[written:]

    def close(self) -> None:
        self._file.close()


class _CallableSink:
    def __init__(self, function: Callable[[dict[str, Any]], Any]) -> None:
        self._function = function

    def msg(self, line: bytes) -> None:
        self._function(json.loads(line))


class _StructlogSink:
    """Hands each record to a structlog-compatible logger the bank supplies."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def msg(self, line: bytes) -> None:
        logger = self._logger
        if hasattr(type(logger), "bind"):  # a bound logger, with the host's own processors
            record = json.loads(line)
            logger.info(record.pop("record"), **record)
        elif hasattr(logger, "msg"):  # a raw structlog logger (PrintLogger, WriteLogger...)
            logger.msg(line.decode())
        else:  # a standard library logger
            logger.info(line.decode())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def last_hash(path: Path, block: int = 1 << 16) -> str:
    """The hash of the last complete record of an existing audit file (``GENESIS`` for none).

    Read from the end, block by block, so that reopening a file of many gigabytes costs a few reads: a
    partial last line (a crash mid-write) and lines that are not records are skipped.
    """
    if not path.exists() or path.stat().st_size == 0:
        return GENESIS
    with path.open("rb") as handle:
        for raw in _complete_lines_backwards(handle, block):
            found = _record_hash_field(raw)
            if found is not None:
                return found
    return GENESIS


def _complete_lines_backwards(handle: BinaryIO, block: int) -> Iterator[bytes]:
    """The newline-terminated lines of a file, last first (without their newlines)."""
    position = handle.seek(0, os.SEEK_END)
    rest = b""  # bytes between the read position and the earliest newline seen so far
    unterminated = True  # whether ``rest`` still ends with the file's unterminated last line
    while position > 0:
        start = max(0, position - block)
        handle.seek(start)
        rest = handle.read(position - start) + rest
        position = start
        parts = rest.split(b"\n")
        rest, lines = parts[0], parts[1:]
        if unterminated and lines:
            lines.pop()  # what follows the file's last newline: empty, or a partial record
            unterminated = False
        yield from reversed(lines)
    if not unterminated:
        yield rest  # the file's first line


def _record_hash_field(raw: bytes) -> str | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("hash"), str):
        return str(record["hash"])
    return None


class AuditTrail:
    """Writes audit records through payguard's processor chain to one sink, in one hash chain.

    ``sink`` is a path (JSON Lines file), a callable taking the record dict, or a structlog-compatible
    logger. A failure anywhere raises ``AuditError``.
    """

    def __init__(self, sink: Any, *, key: bytes | str | None = None, fsync: str | int = "never") -> None:
        previous = GENESIS
        writer: _Writer
        if isinstance(sink, str | Path):
            file_sink = FileSink(sink, fsync=fsync)
            previous = file_sink.previous_hash
            writer = file_sink
        elif hasattr(sink, "msg") or hasattr(sink, "info"):
            writer = _StructlogSink(sink)
        elif callable(sink):
            writer = _CallableSink(sink)
        else:
            raise AuditError(
                f"audit sink must be a path, a callable or a structlog logger, not {type(sink).__name__}"
            )
        self.sink = writer
        self._chain = chain_hashes(previous)
        # bind() once: the lazy proxy wrap_logger returns would build a new bound logger on every call.
        self._logger = structlog.wrap_logger(
            writer,
            processors=[
                unpack_record,
                mask_private_data(Masker(key)),
                self._chain,
                render_canonical_json(self._chain),
            ],
            wrapper_class=AuditLogger,
        ).bind()
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> str:
        """Write one record; returns its hash. Raises ``AuditError`` if it could not be handed over."""
        with self._lock:
            previous = self._chain.previous
            kind = record.pop("record")
            try:
                self._logger.record(kind, record)
            except Exception as exc:
                self._chain.previous = previous  # the record was not written: the chain must not skip it
                raise AuditError(
                    f"audit record for event {record.get('event_id')!r} was not written: {exc}"
                ) from exc
            return self._chain.previous

    def close(self) -> None:
        closer = getattr(self.sink, "close", None)
        if closer is not None:
            closer()


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
