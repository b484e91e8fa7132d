"""What ``payguard replay --partitions N`` adds to the serial command: its options, the engine, and the
options it refuses (rather than give another answer than the serial replay)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._errors import AuditError
from .._guard import Guard
from .._replay import ReplaySummary
from .._report.collect import Collector
from .audit import check_new
from .driver import PartitionedSummary, run

__all__ = ["describe", "partition_options", "refuse", "runner"]

EXIT_USAGE = 2


def partition_options(command: Any) -> Any:
    """``--partitions`` and the engine to run on: ``--dask-scheduler`` or ``--spark-master``."""
    for option in reversed(
        [
            click.option(
                "--partitions",
                type=click.IntRange(min=1),
                help="Replay partitioned by account on Dask (a LocalCluster of this many workers), as "
                "serially.",
            ),
            click.option(
                "--dask-scheduler",
                help="With --partitions: the Dask scheduler to run on (tcp://HOST:PORT; synchronous: in this "
                "process).",
            ),
            click.option(
                "--spark-master",
                help="With --partitions: run on Spark instead, at this master (local[2], spark://HOST:PORT).",
            ),
        ]
    ):
        command = option(command)
    return command


def refuse(
    partitions: int | None, dask_scheduler: str | None, spark_master: str | None, **options: str | None
) -> None:
    """Exit 2 with a clear message for an option the partitioned replay cannot honour."""
    if partitions is None:
        raise click.UsageError(
            f"--{'spark-master' if spark_master else 'dask-scheduler'} goes with --partitions N"
        )
    if dask_scheduler and spark_master:
        raise click.UsageError("--dask-scheduler and --spark-master: choose one engine")
    why = {
        "audit_checkpoints": "each partition's audit file holds its signed checkpoints, and the manifest "
        "is signed; there is no witness per partition yet",
        "store": "each partition keeps its accounts' histories in its own memory; replay serially on a store",
    }
    for name, value in options.items():
        if value:
            flag = name.replace("_", "-")
            click.echo(f"error: --{flag} is not supported with --partitions: {why[name]}", err=True)
            sys.exit(EXIT_USAGE)


def runner(
    partitions: int,
    dask_scheduler: str | None,
    spark_master: str | None,
    collector: Collector | None = None,
    **audit: Any,
) -> Callable[..., ReplaySummary]:
    """A function with the serial ``replay``'s signature that runs it partitioned on the engine chosen;
    ``collector``: the report's (``--report``; the partitions count for it, not ``observe``); ``audit``:
    the audit path and keys (``audit``, ``audit_key``, ``audit_signing_key``)."""

    def replay(files: list[str], guard: Guard, **options: Any) -> ReplaySummary:
        options = {name: value for name, value in {**options, **audit}.items() if value is not None}
        options.pop("observe", None)  # the collector's: filled from the partitions' counts instead
        if collector is not None:
            options["collector"] = collector
        options.pop("progress", None)
        if audit.get("audit") is not None:
            try:  # a usage error, before any engine starts: as the serial guard's audit file that cannot open
                check_new(str(Path(audit["audit"]).absolute()), partitions, audit.get("audit_key"))
            except AuditError as exc:
                click.echo(f"error: --audit: {exc}", err=True)
                sys.exit(EXIT_USAGE)
        if spark_master is not None:
            from ..backtest import spark_session
            from .spark import SparkEngine

            with spark_session(spark_master, partitions) as session:
                return run(files, guard, SparkEngine(session), partitions, **options)
        from ..backtest import dask_client
        from .dask import DaskEngine

        with dask_client(partitions, dask_scheduler) as client:
            return run(files, guard, DaskEngine(client), partitions, **options)

    return replay


def describe(summary: ReplaySummary) -> str:
    """The lines ``payguard replay --partitions`` adds to the summary."""
    if not isinstance(summary, PartitionedSummary):
        return ""
    data = summary.to_dict()
    text = (
        f"partitioned on {summary.engine}: {summary.partitions} partitions, {data['iterations']} iterations "
        f"(changes per iteration: {', '.join(map(str, data['iteration_changes']))})"
    )
    if summary.compare_iterations:
        text += f"; the old rule set (--compare): {len(summary.compare_iterations)} iterations"
    if summary.audit_manifest:
        text += f"\naudit: {summary.partitions + 1} files, listed in {summary.audit_manifest}"
    return text
