"""AuditTrail: writes records through the processor chain to one sink, in one hash chain, sealed by
signed checkpoints."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from .._errors import AuditError
from .checkpoints import Witness, make_checkpoint
from .keys import AuditKeys, PrivateKeySource, load_signing_key
from .logger import AuditLogger
from .processors import (
    GENESIS,
    Masker,
    canonical,
    chain_hashes,
    mask_private_data,
    render_canonical_json,
    unpack_record,
)
from .record import resumed_record
from .sinks import FileSink, _CallableSink, _StructlogSink
from .verify import check_tail

__all__ = ["AuditTrail"]


class _Writer(Protocol):
    def msg(self, line: bytes) -> None: ...


class AuditTrail:
    """Writes audit records through payguard's processor chain to one sink, in one hash chain.

    ``sink`` is a path (JSON Lines file), a callable taking the record dict, or a structlog-compatible
    logger. ``key`` (the ``audit_key``) derives the masking key and the chain key (each record's HMAC).
    With ``signing_key`` (an Ed25519 private key file, ``payguard audit keygen``) a signed checkpoint is
    written before the record that follows every ``checkpoint_every`` records and on close (interpreter
    exit included), into the sink and to ``checkpoints``, the external witness (a path or a callable). A
    file is locked while open, and reopened only after its tail checked out. A failure anywhere raises
    ``AuditError``.
    """

    def __init__(
        self,
        sink: Any,
        *,
        key: bytes | str | None = None,
        fsync: str | int = "never",
        signing_key: PrivateKeySource | None = None,
        checkpoint_every: int = 1000,
        checkpoints: str | Path | Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise AuditError(f"audit_checkpoint_every must be a positive integer, not {checkpoint_every!r}")
        keys = AuditKeys.derive(key)
        self._signer = None if signing_key is None else load_signing_key(signing_key)
        if checkpoints is not None and self._signer is None:
            raise AuditError(
                "audit_checkpoints needs audit_signing_key: the witness keeps signed checkpoints"
            )
        self._witness = None if checkpoints is None else Witness(checkpoints)
        self._every = checkpoint_every
        previous, self._records, self._sealed, remnant = GENESIS, 0, 0, None
        writer: _Writer
        if isinstance(sink, str | Path):
            file_sink = FileSink(sink, fsync=fsync)
            try:
                public = None if self._signer is None else self._signer.public_key()
                witnessed = None if self._witness is None else self._witness.last()
                tail = check_tail(file_sink.path, keys, public, witnessed)
                file_sink.end_partial_line()
            except BaseException:
                file_sink.close()
                raise
            previous, self._records, self._sealed, remnant = (
                tail.previous,
                tail.records,
                tail.sealed,
                tail.remnant,
            )
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
        self.key_id = keys.key_id
        self._chain = chain_hashes(previous, keys.chain, keys.key_id)
        self.masker = Masker(keys.mask)  # also masks what replay writes about rejected records
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
        self._closed = False
        if self._signer is not None:
            atexit.register(self.close)  # a clean shutdown seals the records since the last checkpoint
        if remnant is not None:
            self.write(resumed_record(remnant))

    def write(self, record: dict[str, Any]) -> str:
        """Write one record; returns its hash. Raises ``AuditError`` if it could not be handed over."""
        with self._lock:
            if self._signer is not None and self._records - self._sealed >= self._every:
                self._checkpoint()  # before the record: a witness that is down fails this write, cleanly
            previous = self._chain.previous
            kind = record.pop("record")
            try:
                self._logger.record(kind, record)
            except Exception as exc:
                self._chain.previous = previous  # the record was not written: the chain must not skip it
                subject = f" for event {record['event_id']!r}" if "event_id" in record else ""
                raise AuditError(f"the {kind} audit record{subject} was not written: {exc}") from exc
            self._records += 1
            return self._chain.previous

    def checkpoint(self) -> None:
        """Write a signed checkpoint of the records so far now (if any is unsealed and a key is set)."""
        with self._lock:
            if self._signer is not None and self._records > self._sealed:
                self._checkpoint()

    def _checkpoint(self) -> None:
        assert self._signer is not None
        checkpoint = make_checkpoint(self._signer, self._records, self._chain.previous, self.key_id)
        try:
            self.sink.msg(canonical(checkpoint))
            if self._witness is not None:
                self._witness.write(checkpoint)
        except Exception as exc:
            raise AuditError(
                f"the checkpoint of {self._records:,} audit records was not written: {exc}"
            ) from exc
        self._sealed = self._records

    def close(self) -> None:
        """Seal the records since the last checkpoint (with a signing key) and close the sink."""
        if self._closed:
            return
        self._closed = True
        if self._signer is not None:
            atexit.unregister(self.close)
        closer = getattr(self.sink, "close", None)
        try:
            self.checkpoint()
        finally:
            if closer is not None:
                closer()
