"""AuditTrail: writes records through the processor chain to one sink, in one hash chain."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import structlog

from .._errors import AuditError
from .logger import AuditLogger
from .processors import GENESIS, Masker, chain_hashes, mask_private_data, render_canonical_json, unpack_record
from .sinks import FileSink, _CallableSink, _StructlogSink

__all__ = ["AuditTrail"]


class _Writer(Protocol):
    def msg(self, line: bytes) -> None: ...


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
        self.masker = Masker(key)  # also masks what replay writes about rejected records
        self._chain = chain_hashes(previous)
        # bind() once: the lazy proxy wrap_logger returns would build a new bound logger on every call.
        self._logger = structlog.wrap_logger(
            writer,
            processors=[
                unpack_record,
                mask_private_data(self.masker),
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
                subject = f" for event {record['event_id']!r}" if "event_id" in record else ""
                raise AuditError(f"the {kind} audit record{subject} was not written: {exc}") from exc
            return self._chain.previous

    def close(self) -> None:
        closer = getattr(self.sink, "close", None)
        if closer is not None:
            closer()
