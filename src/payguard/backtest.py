"""Backtests that outgrow one process: the serial replay, partitioned by account on a cluster engine, with
exactly the serial result.

Why it is exact: an account's history changes only with its own events and with the credits of payments
to it, and an event reads only its subject's history and (for a transfer to another account) the payee's
payee-side features. So each account can be replayed alone in replay order, given two inputs from other
accounts: which payments to it went through (their payers' decisions), and the payee-side features of its
own payments (computed where each payee's history lives). Starting from "every payment went through",
the partitions replay their accounts and send each other what changed; an account whose inputs did not
change is not replayed again. At the fixed point (no partition sends a change) every input agrees with
the output that produces it, and by induction on the replay order (each event depends only on events
before it) that is the serial replay's result. Each iteration moves the first possibly wrong position
forward, so it ends; ordinary traffic needs one to three iterations.

``partitioned(files, rules, partitions=N)`` runs on Dask (``client``: a ``distributed.Client``; without
one, Dask's synchronous scheduler in this process); ``spark(files, rules, partitions=N)`` on Spark. The
step functions (``payguard._backtest.step``) are plain Python over one partition's rows, which both
engines run: Dask as tasks over partitions it keeps on its workers, Spark in ``mapInPandas``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._backtest.driver import MAX_ITERATIONS, Engine, PartitionedSummary, run
from ._backtest.plan import partition_of
from ._errors import PayguardError
from ._guard import Guard
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet

__all__ = [
    "MAX_ITERATIONS",
    "PartitionedSummary",
    "UnsupportedOptionError",
    "partition_of",
    "partitioned",
    "spark",
]

# the options of payguard.replay.replay that mean the same here
_OPTIONS = frozenset(
    {"fmt", "mapping", "limits", "history", "feedback_delay", "write", "reject", "mask", "window", "compare"}
)
# the audit trail, written per partition with a manifest (a serial replay's guard takes these itself)
_AUDIT = frozenset({"audit", "audit_key", "audit_signing_key", "audit_checkpoint_every"})
# those the partitioned replay does not do yet, with why: refused rather than silently different
_REFUSED = {
    "observe": "decisions are made on the workers: read the --out lines, or give report=PATH for the report",
    "until": "a partitioned replay decides every event",
    "progress": "progress is per iteration: see the summary's iterations",
}


class UnsupportedOptionError(PayguardError, ValueError):
    """A replay option the partitioned replay does not support (it refuses rather than differ)."""


def _guard(rules: str | Path | RuleSet | Guard, engine: str) -> Guard:
    if isinstance(rules, Guard):
        if rules.audit is not None:
            raise UnsupportedOptionError(
                "the guard's audit trail is one file: give the partitioned replay audit=PATH instead"
            )
        return rules
    ruleset = rules if isinstance(rules, RuleSet) else load_rule_set(rules)
    return Guard(ruleset, engine=engine, max_future=None)


def check_options(options: dict[str, Any]) -> None:
    """``UnsupportedOptionError`` for an option the partitioned replay refuses or does not know."""
    for name in options:
        if name in _REFUSED:
            raise UnsupportedOptionError(
                f"{name} is not supported by the partitioned replay: {_REFUSED[name]}"
            )
        if name not in _OPTIONS | _AUDIT and name not in ("engine", "max_iterations", "report"):
            raise UnsupportedOptionError(
                f"unknown replay option {name!r} (the partitioned replay takes {', '.join(sorted(_OPTIONS))})"
            )


def partitioned(
    files: list[str],
    rules: str | Path | RuleSet | Guard,
    *,
    partitions: int,
    client: Any = None,
    **replay_options: Any,
) -> PartitionedSummary:
    """Replay ``files`` with ``rules`` (a rule file or directory, a ``RuleSet`` or a ``Guard``, whose lists
    in force are used) in ``partitions`` partitions on Dask, with the serial replay's result.

    ``client``: a ``distributed.Client`` (``None``: Dask's synchronous scheduler, in this process).
    ``replay_options`` are those of ``payguard.replay.replay`` (``fmt``, ``mapping``, ``limits``,
    ``history``, ``feedback_delay``, ``write``, ``reject``, ``mask``, ``window``, ``compare``), plus
    ``engine`` (the matching engine), ``max_iterations`` and ``report``; others raise
    ``UnsupportedOptionError``. ``write`` receives the ``--out`` lines in replay order. The summary adds the
    iterations and what changed in each.

    ``compare``: the old rule set (as ``rules``; a ``Guard``'s lists in force are used), replayed
    partitioned beside the new one to its own fixed point: the lines get the old columns and the summary
    its ``compare`` section, as ``payguard replay --compare`` gives them serially. ``report`` (a path):
    write there the HTML report ``payguard replay --report`` writes, from counts the partitions keep.

    ``audit`` (a path) writes the audit trail per partition, beside it: ``NAME.part-000.SUFFIX``...,
    ``NAME.refused.SUFFIX`` and the manifest ``NAME.manifest.json`` (``summary.audit_manifest``), keyed
    with ``audit_key`` and signed with ``audit_signing_key`` (a key file) as a guard's trail is;
    ``payguard audit verify`` checks the manifest and every file it names.
    """
    from ._backtest.dask import DaskEngine

    return _run(files, rules, DaskEngine(client), partitions, replay_options)


def spark(
    files: list[str],
    rules: str | Path | RuleSet | Guard,
    *,
    partitions: int,
    master: str | None = None,
    session: Any = None,
    **replay_options: Any,
) -> PartitionedSummary:
    """As ``partitioned``, on Spark: ``session`` (a ``SparkSession``), or a new one at ``master`` (default
    ``local[PARTITIONS]``: this machine), stopped on return. The extra ``payguard[spark]``; the workers
    import payguard, so it must be installed where they run (for a new session: this Python)."""
    from ._backtest.spark import SparkEngine

    if session is not None:
        return _run(files, rules, SparkEngine(session), partitions, replay_options)
    with spark_session(master or f"local[{partitions}]", partitions) as made:
        return _run(files, rules, SparkEngine(made), partitions, replay_options)


@contextmanager
def spark_session(master: str, partitions: int = 0) -> Iterator[Any]:
    """A ``SparkSession`` at ``master`` (``local[2]``, ``spark://HOST:PORT``), stopped on exit; this
    process's active session instead, if it has one (a notebook's), which is left running."""
    from ._backtest.spark import active_session, session_of

    active = active_session()
    if active is not None:
        yield active
        return
    session = session_of(master, partitions or 200)
    try:
        yield session
    finally:
        session.stop()


def _run(
    files: list[str],
    rules: str | Path | RuleSet | Guard,
    engine: Engine,
    partitions: int,
    options: dict[str, Any],
) -> PartitionedSummary:
    check_options(options)
    matcher = options.pop("engine", "auto")
    guard = _guard(rules, matcher)
    old = options.pop("compare", None)
    old_guard = None if old is None else _guard(old, matcher)
    report = options.pop("report", None)
    collector = None
    if report is not None:
        from ._report import Collector

        collector = Collector()
    summary = run(list(files), guard, engine, partitions, compare=old_guard, collector=collector, **options)
    if report is not None and collector is not None:
        from ._report import ReportContext, write_report

        context = ReportContext(
            list(files),
            _named(rules, guard),
            guard.rules,
            None if old_guard is None else _named(old, old_guard),
            None if old_guard is None else old_guard.rules,
        )
        write_report(Path(report), context, summary, collector)
    return summary


def _named(rules: str | Path | RuleSet | Guard, guard: Guard) -> str:
    """What the report calls a rule set: its path, or its id when it was given loaded."""
    return str(rules) if isinstance(rules, (str, Path)) else guard.rules.id


@contextmanager
def dask_client(partitions: int, scheduler: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster at ``scheduler``, or of a new ``LocalCluster`` of
    ``partitions`` single-threaded workers (closed on exit); ``"synchronous"``: none (Dask's synchronous
    scheduler, in this process)."""
    from ._backtest.dask import client_of, local_cluster

    if scheduler == "synchronous":
        yield None
        return
    if scheduler is not None:
        client = client_of(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster, client = local_cluster(partitions)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
