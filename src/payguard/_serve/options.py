"""What ``payguard serve`` was started with, and the guard each worker builds from it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .._errors import PayguardError
from .._guard import Guard
from .._rules.loader import load_rule_set
from .._stores.memory import MemoryStore
from .._stores.url import open_store

__all__ = ["LOG_LEVELS", "ServeOptions", "build_guard", "check_options", "worker_audit_path"]

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServeOptions:
    """The command line of ``payguard serve``; ``worker`` is this process's number (1-based) when the
    server runs several workers, else 0."""

    rules: str
    store: str = "memory:"
    audit: str | None = None
    audit_key: str | None = None
    audit_signing_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8181
    workers: int = 1
    log_level: str = "info"
    worker: int = 0
    audit_checkpoints: str | None = None

    def for_worker(self, number: int) -> ServeOptions:
        return replace(self, worker=number)


def worker_audit_path(path: str, worker: int) -> str:
    """The audit file of worker ``worker``: ``audit.jsonl`` -> ``audit.2.jsonl`` (0: the path itself). Each
    worker keeps its own hash chain: two processes cannot append to one chain without a shared head."""
    if worker == 0:
        return path
    given = Path(path)
    return str(given.with_name(f"{given.stem}.{worker}{given.suffix}"))


def check_options(options: ServeOptions) -> None:
    """``PayguardError`` for a combination that cannot run, before any worker starts."""
    if options.workers < 1:
        raise PayguardError(f"--workers must be 1 or more, not {options.workers}")
    if options.workers > 1 and options.store.strip().lower() in ("memory", "memory:", "memory://"):
        raise PayguardError(
            f"--workers {options.workers} needs a shared store (--store sqlite:///FILE or redis://...): "
            "each worker would keep its own in-memory histories and decide a customer's payments without "
            "seeing the ones the other workers decided"
        )
    if options.audit_signing_key is not None and options.audit is None:
        raise PayguardError("--audit-signing-key needs --audit: the checkpoints it signs go into the audit")
    if options.audit_checkpoints is not None and options.audit_signing_key is None:
        raise PayguardError(
            "--audit-checkpoints needs --audit-signing-key: the witness keeps signed checkpoints"
        )


def build_guard(options: ServeOptions) -> Guard:
    """The live guard of one worker: its store, its own audit file, events dated at most 5 minutes ahead."""
    ruleset = load_rule_set(options.rules)
    store = open_store(options.store)
    if options.workers > 1 and isinstance(store, MemoryStore):  # check_options ran in the parent
        store.close()
        raise PayguardError(f"--workers {options.workers} needs a shared store, not {options.store!r}")
    audit = None if options.audit is None else worker_audit_path(options.audit, options.worker)
    witness = options.audit_checkpoints
    checkpoints = None if witness is None else worker_audit_path(witness, options.worker)
    try:
        return Guard(
            ruleset,
            store=store,
            audit=audit,
            audit_key=options.audit_key,
            audit_signing_key=options.audit_signing_key,
            audit_checkpoints=checkpoints,
        )
    except BaseException:
        store.close()
        raise
