"""Worlds to replay serially and partitioned: a dense one where stops propagate, a generated month, and
the helpers that run both replays (the library calls, or the command) to compare them line for line."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from payguard import Guard, load_rule_set
from payguard._cli import main
from payguard.backtest import PartitionedSummary, partitioned
from payguard.replay import replay

from ..conftest import ROOT, make_event

DEMO = ([str(ROOT / "examples" / "transactions.jsonl")], [str(ROOT / "examples" / "history.jsonl.gz")])
SHIPPED_RULES = ROOT / "rules"
# Keys that say how the replay ran, not what it decided
RUN_KEYS = frozenset({"seconds", "events_per_second", "iterations", "iteration_changes", "partitioned"})

# A rule set where what an account received decides what it may send: stopping one payment changes the
# payee's later decisions, and theirs change their payees'.
DENSE_RULES = """\
ruleset: {id: dense, version: "1", timezone: UTC, currency: CNY}
rules:
  - id: passthrough
    description: sends on most of what came in today
    when: {type: transfer_out, passthrough_ratio_24h: {gte: 0.6}, amount: {gte: 300}}
    action: hold
    reason: money passes straight through
  - id: fan_in
    description: the payee was paid by many today
    when: {type: transfer_out, payee_inbound_distinct_payers_24h: {gte: 5}}
    action: interrupt
    reason: the payee collects from many payers
  - id: after_stops
    description: stopped twice within the hour
    when: {type: transfer_out, recent_stops_60m: {gte: 2}}
    action: hold
    reason: repeated stops
  - id: many_payers
    description: paid by many people today
    mode: shadow
    when: {inbound_distinct_payers_24h: {gte: 4}}
    action: review
    reason: many payers
"""


def dense_world(
    seed: int = 7, accounts: int = 40, shared: int = 3, events: int = 3000
) -> list[dict[str, Any]]:
    """``events`` payments over three days among ``accounts`` accounts that pay each other and a few
    ``shared`` payees, with salaries coming in: in replay order (by time)."""
    rng = random.Random(seed)
    people = [f"62220000{n:08d}" for n in range(accounts)]
    merchants = [f"62229999{n:08d}" for n in range(shared)]
    start = datetime(2026, 3, 2, tzinfo=UTC)
    out = []
    for n in range(events):
        when = start + timedelta(seconds=rng.randrange(3 * 86400))
        payer = rng.choice(people)
        if rng.random() < 0.12:  # a salary or a refund from outside
            data = make_event(
                id=f"d{n}",
                type="transfer_in",
                timestamp=when.isoformat(),
                amount=f"{rng.randrange(500, 5000)}.00",
                payer={"account": f"90000000{rng.randrange(5):04d}", "name": "Employer", "type": "business"},
                payee={"account": payer, "name": "Customer", "type": "personal"},
            )
        else:
            payee = rng.choice(merchants) if rng.random() < 0.25 else rng.choice(people)
            data = make_event(
                id=f"d{n}",
                timestamp=when.isoformat(),
                amount=f"{rng.randrange(50, 3000)}.00",
                payer={"account": payer, "name": "Customer"},
                payee={"account": payee, "name": "Payee", "type": "personal"},
            )
        out.append(data)
    out.sort(key=lambda e: e["timestamp"])
    return out


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return str(path)


def serial(
    files: list[str], rules: Path | str, **options: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The serial replay's ``--out`` lines and summary."""
    lines: list[dict[str, Any]] = []
    guard = Guard(load_rule_set(rules), max_future=None)
    summary = replay(files, guard, write=lines.append, **options)
    return lines, summary.to_dict()


def parted(
    files: list[str], rules: Path | str, partitions: int, **options: Any
) -> tuple[list[dict[str, Any]], PartitionedSummary]:
    """The partitioned replay's ``--out`` lines and summary (Dask's synchronous scheduler by default)."""
    lines: list[dict[str, Any]] = []
    summary = partitioned(files, rules, partitions=partitions, write=lines.append, **options)
    return lines, summary


def decided(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without what says how the replay ran."""
    return {key: value for key, value in summary.items() if key not in RUN_KEYS}


def by_event(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lines, key=lambda line: line["event_id"])


Check = Callable[[list[dict[str, Any]], dict[str, Any]], None]


# Dask's synchronous scheduler, in this process: the same step functions, without starting a cluster
SYNCHRONOUS = ("--dask-scheduler", "synchronous")
RUNS = ("serial", "parted")


@dataclass(frozen=True)
class Replays:
    """The serial and the partitioned ``payguard replay`` of the same arguments (``results``, by run) and
    what each wrote: ``--out`` and the other files to ``FOLDER/RUN.SUFFIX``."""

    folder: Path
    results: Mapping[str, Result]

    def path(self, run: str, suffix: str) -> Path:
        return self.folder / f"{run}.{suffix}"

    def read(self, suffix: str) -> tuple[str, str]:
        """The serial and the partitioned run's file ``suffix``."""
        serial_text, parted_text = (self.path(run, suffix).read_text(encoding="utf-8") for run in RUNS)
        return serial_text, parted_text


def replay_both(
    folder: Path,
    args: Sequence[str],
    partitioned: Sequence[str],
    *,
    files: Mapping[str, str],
    exit_code: int = 0,
) -> Replays:
    """``payguard replay ARGS`` serially, then with ``partitioned`` (``--partitions N`` and its engine),
    each writing the options of ``files`` (``{"--out": "jsonl"}``: to ``FOLDER/RUN.jsonl``); both must
    exit with ``exit_code``."""
    results = {}
    for run, extra in zip(RUNS, ([], partitioned), strict=True):
        written = [
            item for option, suffix in files.items() for item in (option, str(folder / f"{run}.{suffix}"))
        ]
        result = CliRunner().invoke(main, ["replay", *args, *written, *extra], catch_exceptions=False)
        assert result.exit_code == exit_code, f"{run}: {result.stderr}"
        results[run] = result
    return Replays(folder, results)
