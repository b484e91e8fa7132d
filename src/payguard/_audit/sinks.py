"""Where audit records go: a JSON Lines file (reopened where its chain ends), a callable, a logger."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .._errors import AuditError
from .processors import GENESIS

__all__ = ["FileSink"]


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
