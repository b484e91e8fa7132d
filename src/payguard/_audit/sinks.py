"""Where audit records go: a JSON Lines file (one writer at a time: it is locked), a callable, a logger."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .._errors import AuditError

__all__ = ["FileSink", "lines_backwards"]


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
            # Unbuffered: each write is one system call that hands the line to the operating system.
            self._file = self.path.open("ab", buffering=0)
        except OSError as exc:
            raise AuditError(f"cannot open audit file {str(self.path)!r}: {exc}") from exc
        try:
            # Two writers would interleave two chains in one file: the second is refused, not merged.
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise AuditError(
                f"audit file {str(self.path)!r} is being written by another guard (it is locked): "
                "give each process its own audit file"
            ) from exc
        except OSError as exc:
            self._file.close()
            raise AuditError(f"cannot lock audit file {str(self.path)!r}: {exc}") from exc

    def end_partial_line(self) -> None:
        """End a partial last line (a crash mid-write) so that the next record starts a line of its own."""
        try:
            if self.path.stat().st_size and not _ends_with_newline(self.path):
                self._write(b"\n")
        except OSError as exc:
            raise AuditError(f"cannot write to audit file {str(self.path)!r}: {exc}") from exc

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
        self._file.close()  # closing the file releases the lock


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


def lines_backwards(handle: BinaryIO, block: int = 1 << 16) -> Iterator[tuple[int, bytes]]:
    """The newline-terminated lines of a file, last first, each with the offset where it starts (without
    its newline); an unterminated last piece (a crash mid-write) is not a line.

    Read from the end, block by block, so that reopening a file of many gigabytes costs a few reads.
    """
    position = handle.seek(0, os.SEEK_END)
    rest = b""  # bytes between the read position and the earliest newline seen so far
    unterminated = True  # whether ``rest`` still ends with the file's unterminated last piece
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
        offset = start + len(rest) + 1
        found = []
        for line in lines:
            found.append((offset, line))
            offset += len(line) + 1
        yield from reversed(found)
    if not unterminated:
        yield 0, rest  # the file's first line
