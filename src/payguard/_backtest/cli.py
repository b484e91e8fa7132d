"""What ``payguard replay --partitions N`` adds to the serial command: the engine, and the options it
refuses (rather than give another answer than the serial replay)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from .._guard import Guard
from .._replay import ReplaySummary
from .driver import PartitionedSummary, run

__all__ = ["describe", "refuse", "runner"]

EXIT_USAGE = 2


def refuse(partitions: int | None, dask_scheduler: str | None, **options: str | None) -> None:
    """Exit 2 with a clear message for an option the partitioned replay cannot honour."""
    if partitions is None:
        raise click.UsageError("--dask-scheduler goes with --partitions N")
    why = {
        "audit": "the audit trail written per partition is not built yet; replay serially for an audit",
        "compare": "the old rule set needs its own partitioned replay; run the two and compare their --out",
        "report": "the HTML report reads every decision in one process; replay serially for it",
        "store": "each partition keeps its accounts' histories in its own memory; replay serially on a store",
    }
    for name, value in options.items():
        if value:
            click.echo(f"error: --{name} is not supported with --partitions: {why[name]}", err=True)
            sys.exit(EXIT_USAGE)


def runner(partitions: int, dask_scheduler: str | None) -> Callable[..., ReplaySummary]:
    """A function with the serial ``replay``'s signature that runs it partitioned on the engine chosen."""

    def replay(files: list[str], guard: Guard, **options: Any) -> ReplaySummary:
        options = {name: value for name, value in options.items() if value is not None}
        options.pop("compare", None)  # refused above: never set here
        options.pop("observe", None)
        options.pop("progress", None)
        from ..backtest import dask_client
        from .dask import DaskEngine

        with dask_client(partitions, dask_scheduler) as client:
            return run(files, guard, DaskEngine(client), partitions, **options)

    return replay


def describe(summary: ReplaySummary) -> str:
    """The line ``payguard replay --partitions`` adds to the summary."""
    if not isinstance(summary, PartitionedSummary):
        return ""
    data = summary.to_dict()
    return (
        f"partitioned on {summary.engine}: {summary.partitions} partitions, {data['iterations']} iterations "
        f"(changes per iteration: {', '.join(map(str, data['iteration_changes']))})"
    )
