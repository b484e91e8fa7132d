"""The backtest section of the benchmarks (issue 22): the handbook file (288,062 card payments) replayed
serially and partitioned on a Dask ``LocalCluster`` of 1 and 2 workers, with the time of each phase
(the driver's plan, loading the partitions, each iteration, collecting), and the arithmetic for a
100-core cluster on 300 million events from the measured per-event costs.

Every run is in this process (the cluster's workers are processes of their own), one after the other;
the machine has 2 cores shared with other work, so read the figures as ranges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payguard import Guard, load_rule_set
from payguard._backtest.dask import local_cluster
from payguard.backtest import partitioned
from payguard.replay import replay

WEEK = 7 * 86400
CLUSTER_CORES = 100
CLUSTER_EVENTS = 300_000_000


def bench(
    root: Path, data: Path, table: tuple[Callable[..., None], Callable[..., str]], quick: bool
) -> dict[str, Any]:
    header, row = table
    source = data / "handbook" / "handbook_2018-04.csv.gz"
    if not source.exists():
        print("\n(backtest skipped: shared/data/handbook is not beside the checkout)")
        return {}
    rules = str(root / "examples" / "handbook" / "rules.yaml")
    options: dict[str, Any] = {"mapping": "handbook", "feedback_delay": WEEK}
    print("\n### Backtest: the handbook file serially and partitioned on a Dask LocalCluster\n")
    serial_lines: list[dict[str, Any]] = []
    start = time.perf_counter()
    summary = replay(
        [str(source)], Guard(load_rule_set(rules), max_future=None), write=serial_lines.append, **options
    )
    serial_seconds = time.perf_counter() - start
    results: dict[str, Any] = {
        "serial": {"seconds": round(serial_seconds, 2), "evaluated": summary.evaluated}
    }
    header(
        "run",
        "seconds",
        "plan",
        "load",
        "iterations (wall, slowest partition)",
        "collect",
        "identical to serial",
    )
    print(row("serial", f"{serial_seconds:.1f}", "", "", "", "", ""))
    for workers in (1,) if quick else (1, 2):
        cluster, client = local_cluster(workers)
        try:
            lines: list[dict[str, Any]] = []
            start = time.perf_counter()
            parted = partitioned(
                [str(source)], rules, partitions=workers, client=client, write=lines.append, **options
            )
            seconds = time.perf_counter() - start
        finally:
            client.close()
            cluster.close()
        data_ = parted.to_dict()["partitioned"]
        iterations = [item["seconds"] for item in data_["per_iteration"]]
        slowest = [item["slowest_partition_seconds"] for item in data_["per_iteration"]]
        walls = [item["wall_seconds"] for item in data_["per_iteration"]]
        same = sorted(lines, key=lambda line: line["event_id"]) == sorted(
            serial_lines, key=lambda line: line["event_id"]
        )
        results[f"{workers} workers"] = {
            "seconds": round(seconds, 2),
            "plan_seconds": data_["plan_seconds"],
            "load_seconds": data_["load_seconds"],
            "finish_seconds": data_["finish_seconds"],
            "iteration_seconds": iterations,
            "slowest_partition_seconds": slowest,
            "iteration_wall_seconds": walls,
            "rows_replayed": [item["rows_replayed"] for item in data_["per_iteration"]],
            "changes": [item["changes"] for item in data_["per_iteration"]],
            "identical": same,
        }
        print(
            row(
                f"{workers} worker{'s' if workers > 1 else ''}",
                f"{seconds:.1f}",
                f"{data_['plan_seconds']:.1f}",
                f"{data_['load_seconds']:.1f}",
                ", ".join(f"{wall:.1f} ({slow:.1f})" for wall, slow in zip(walls, slowest, strict=True)),
                f"{data_['finish_seconds']:.1f}",
                "yes" if same else "NO",
            )
        )
    results["cluster"] = _arithmetic(results, summary.evaluated)
    return results


def _arithmetic(results: dict[str, Any], events: int) -> dict[str, Any]:
    """A 100-core cluster on 300 M events, from the per-event costs measured here with one worker: the
    driver's part (plan: read, order, route, and the bookkeeping of what the partitions found validating;
    sealing the partitions) is serial, the partitions' steps (every iteration) divide among the cores."""
    one = results.get("1 workers")
    if one is None:
        return {}
    driver_us = (one["plan_seconds"] + one["load_seconds"]) / events * 1e6
    steps_us = sum(one["slowest_partition_seconds"]) / events * 1e6
    driver = driver_us * CLUSTER_EVENTS / 1e6
    steps = steps_us * CLUSTER_EVENTS / 1e6 / CLUSTER_CORES
    print(
        f"\nper event, measured with one worker: the driver {driver_us:.1f} µs (plan and load: serial), the "
        f"partitions' steps {steps_us:.1f} µs of one core over all {len(one['slowest_partition_seconds'])} "
        "iterations."
    )
    print(
        f"{CLUSTER_EVENTS / 1e6:.0f} M events on {CLUSTER_CORES} cores: the steps {steps / 3600:.2f} h "
        f"on the cluster, the driver {driver / 3600:.1f} h, about {(driver + steps) / 3600:.1f} h in all "
        f"(one process: {(driver_us + steps_us) * CLUSTER_EVENTS / 1e6 / 3600:.0f} h); the driver's serial "
        "part bounds the speed-up until the plan itself is partitioned."
    )
    return {
        "driver_us_per_event": round(driver_us, 2),
        "steps_us_per_event": round(steps_us, 2),
        "cluster_hours": round((driver + steps) / 3600, 2),
    }
