"""The driver of a partitioned replay, whatever the engine: plan, iterate to the fixed point, collect.

The engine (``dask.py``) only runs the step functions of ``step.py`` over the partitions and carries
their messages; everything that decides what the result is happens in the step functions and here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .._audit.manifest import Part
from .._audit.record import rejected_record
from .._errors import DuplicateEventError, InvalidEventError, PayguardError
from .._event import Event
from .._features.catalogue import PAYEE_SIDE
from .._guard import Guard
from .._io import Limits
from .._io.base import Record
from .._replay import FRAUD_LIST, REORDER_WINDOW, Comparison, CurrencyCheck, ReplaySummary, Reporter
from .._report.collect import Collector
from .._rules.model import RuleSet
from .audit import AuditPlan, check_new, finish_manifest, refusal_ids, refused_path, write_part
from .memory import no_cycle_collection
from .parts import absorb_collector, absorb_comparison
from .plan import Answer, Checked, Plan, Row, Setup, classify, plan, resolve
from .step import Stats
from .summary import absorb

__all__ = ["MAX_ITERATIONS", "Engine", "PartitionedSummary", "run"]

# a safety net far above what real traffic needs (two to five): each iteration fixes at least one position
MAX_ITERATIONS = 50


class Engine(Protocol):
    """Runs the step functions over the partitions and carries their messages (``dask.py``)."""

    name: str

    def begin(self, ruleset: RuleSet, engine: str, partitions: int, feedback: bool = False) -> None: ...

    def feed(self, rows: list[list[Row]]) -> None: ...

    def checked(self) -> list[Checked]: ...

    def load(self, setup: Setup) -> list[dict[int, Answer]]: ...

    def iterate(self) -> list[Stats]: ...

    def twin(self) -> Engine: ...

    def finish(self, wanted: list[frozenset[int]], old: Any = None) -> list[dict[str, Any]]: ...


@dataclass
class PartitionedSummary(ReplaySummary):
    """A replay summary, with how the partitioned replay got there: its iterations and what changed in
    each (the last changes nothing: it verified the fixed point)."""

    engine: str = ""
    partitions: int = 0
    iterations: list[list[Stats]] = field(default_factory=list)
    iteration_seconds: list[float] = field(default_factory=list)  # each iteration as the driver waited
    # the driver's plan (read, order, route; the partitions validate their rows meanwhile) until the driver
    # knows what they found, sealing the partitions, collecting their results
    plan_seconds: float = 0.0
    load_seconds: float = 0.0
    finish_seconds: float = 0.0
    audit_manifest: str | None = None  # with an audit: its manifest, which names every file
    # with ``compare``: the old rule set's own replay to its fixed point, iteration by iteration
    compare_iterations: list[list[Stats]] = field(default_factory=list)
    compare_iteration_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["iterations"] = len(self.iterations)
        data["iteration_changes"] = [sum(s.changes for s in stats) for stats in self.iterations]
        data["partitioned"] = {
            "engine": self.engine,
            "partitions": self.partitions,
            "plan_seconds": round(self.plan_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "finish_seconds": round(self.finish_seconds, 3),
            **({"audit_manifest": self.audit_manifest} if self.audit_manifest else {}),
            "per_iteration": _per_iteration(self.iterations, self.iteration_seconds),
        }
        if self.compare_iterations:
            data["partitioned"]["compare_per_iteration"] = _per_iteration(
                self.compare_iterations, self.compare_iteration_seconds
            )
        return data


def _per_iteration(iterations: list[list[Stats]], walls: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "iteration": number,
            "kind": "estimate" if any(s.warm_up for s in stats) else "decide",
            "changes": sum(s.changes for s in stats),
            "accounts_replayed": sum(s.accounts for s in stats),
            "rows_replayed": sum(s.rows for s in stats),
            "seconds": round(sum(s.seconds for s in stats), 3),
            "wall_seconds": round(wall, 3),
            "slowest_partition_seconds": round(max((s.seconds for s in stats), default=0.0), 3),
        }
        for number, (stats, wall) in enumerate(zip(iterations, walls, strict=True), 1)
    ]


@no_cycle_collection()
def run(
    files: list[str],
    guard: Guard,
    engine: Engine,
    partitions: int,
    *,
    fmt: str | None = None,
    mapping: str | None = None,
    limits: Limits | None = None,
    history: list[str] | None = None,
    feedback_delay: int | None = None,
    write: Callable[[dict[str, Any]], None] | None = None,
    reject: Reporter | None = None,
    mask: Callable[[str], str] | None = None,
    window: int = REORDER_WINDOW,
    max_iterations: int = MAX_ITERATIONS,
    compare: Guard | None = None,
    collector: Collector | None = None,
    audit: str | Path | None = None,
    audit_key: str | bytes | None = None,
    audit_signing_key: str | Path | None = None,
    audit_checkpoint_every: int = 1000,
) -> PartitionedSummary:
    """Replay ``files`` with ``guard``'s rule set on ``engine``, as ``payguard.replay.replay`` would.

    ``guard``'s rule set and lists, as set, are those in force; the partitions validate the records and
    decide with guards of their own. ``write`` receives the ``--out`` lines in replay order. ``compare``:
    the old rule set's guard (its lists in force), replayed partitioned beside the new one on a twin of
    ``engine`` (``--compare``). ``collector`` is filled with what the report shows, as
    ``observe=collector.observe`` fills it serially (``--report``). ``audit`` (a path): each partition
    writes its audit file beside it, keyed with ``audit_key`` and signed with ``audit_signing_key`` as a
    guard's would be, and a manifest names them all (``audit.py``).
    """
    if partitions < 1:
        raise PayguardError(f"partitions must be at least 1, not {partitions}")
    started = time.perf_counter()
    if audit is not None:
        check_new(str(Path(audit).absolute()), partitions, audit_key)
    lanes = [(engine, guard)]
    if compare is not None:
        lanes.append((engine.twin(), compare))
    for lane, lane_guard in lanes:
        lane.begin(lane_guard.rules, lane_guard.engine, partitions, feedback_delay is not None)

    def feed(rows: list[list[Row]]) -> None:
        for lane, _guard in lanes:
            lane.feed(rows)

    reading = (fmt, mapping, limits)
    overrides = guard.rules.overrides
    the_plan = plan(files, partitions, history or [], reading, feed, window, settings=overrides)
    checked = [lane.checked() for lane, _guard in lanes]
    resolve(the_plan, checked[0], feedback_delay)
    if compare is not None:
        _valid_for_both(the_plan, checked)
    auditing = None
    if audit is not None:
        auditing = AuditPlan(
            str(Path(audit).absolute()),
            audit_key,
            None if audit_signing_key is None else str(Path(audit_signing_key).absolute()),
            audit_checkpoint_every,
            dict(guard.list_versions),
            the_plan.batches if FRAUD_LIST in guard.rules.lists else {},
        )
    scored = any(lane_guard.rules.scoring for _lane, lane_guard in lanes)
    dropped = frozenset(seq for seq, _first in the_plan.repeats)
    asked = frozenset(seq for pair in the_plan.repeats for seq in pair)
    # the old rule set decides only what the new one does (serially, the events its guard took)
    rejected = frozenset(seq for seq, _error in the_plan.invalid)
    setups = [
        Setup(
            lane_guard.rules,
            lane_guard.engine,
            partitions,
            FRAUD_LIST,
            tuple(the_plan.listed),
            scored,
            dict(lane_guard.lists),
            warm_up=partitions > 1 and bool(lane_guard.pipeline.plan.features & PAYEE_SIDE),
            payee_side=bool(lane_guard.pipeline.plan.features & PAYEE_SIDE),
            audit=auditing if number == 0 else None,
            report=collector is not None and number == 0,
            keep_features=collector is not None and compare is not None,
            dropped=dropped if number == 0 else dropped | rejected,
            asked=asked if number == 0 else frozenset(),
            epochs=tuple(the_plan.epochs),
        )
        for number, (_lane, lane_guard) in enumerate(lanes)
    ]
    summary = PartitionedSummary(
        compare=Comparison() if compare is not None else None,
        currencies=CurrencyCheck(guard.rules),
        settings=dict(guard.rules.overrides),
        engine=engine.name,
        partitions=partitions,
    )
    summary.plan_seconds = time.perf_counter() - started
    loading = time.perf_counter()
    answers = [lane.load(setup) for (lane, _guard), setup in zip(lanes, setups, strict=True)]
    classify(the_plan, {seq: answer for part in answers[0] for seq, answer in part.items()})
    _take_counts(summary, the_plan.summary)
    summary.load_seconds = time.perf_counter() - loading
    records = [(summary.iterations, summary.iteration_seconds)]
    records.append((summary.compare_iterations, summary.compare_iteration_seconds))
    going = list(range(len(lanes)))  # the lanes not yet at their fixed point
    for _ in range(max_iterations):
        for number in list(going):
            iterating = time.perf_counter()
            stats = lanes[number][0].iterate()
            records[number][1].append(time.perf_counter() - iterating)
            records[number][0].append(stats)
            if not any(s.changes or s.warm_up for s in stats):
                going.remove(number)
        if not going:
            break
    else:
        raise PayguardError(
            f"the partitioned replay did not reach its fixed point in {max_iterations} iterations"
        )
    wanted = [frozenset(the_plan.wanted)] * partitions
    finishing = time.perf_counter()
    parts = engine.finish(wanted, lanes[1][0] if len(lanes) > 1 else None)
    summary.finish_seconds = time.perf_counter() - finishing
    first_ids: dict[int, str] = {}
    lines: list[tuple[int, dict[str, Any]]] = []
    for part in parts:
        absorb(summary, part["summary"])
        first_ids.update(part["ids"])
        lines += part["lines"]
    if summary.compare is not None:
        absorb_comparison(summary.compare, [part["compare"] for part in parts])
    if collector is not None:
        absorb_collector(collector, [part["report"] for part in parts])
    _report(the_plan, first_ids, reject)
    if auditing is not None:
        written = [part["audit"] for part in sorted(parts, key=lambda part: part["audit"].partition)]
        written.append(_refused(the_plan, first_ids, guard, auditing))
        summary.audit_manifest = str(finish_manifest(auditing, written, summary.evaluated))
    if write is not None:
        lines.sort(key=lambda item: item[0])
        for _seq, line in lines:
            if mask is not None:
                line["account"] = mask(line["account"])
            write(line)
    summary.seconds = time.perf_counter() - started
    return summary


def _take_counts(summary: ReplaySummary, counted: ReplaySummary) -> None:
    """What the plan counted before any decision: records, history, rejections, duplicates, feedback."""
    for name in ("records", "history", "rejected", "duplicates", "conflicts", "possible_duplicates"):
        setattr(summary, name, getattr(counted, name))
    summary.listed_by_feedback = counted.listed_by_feedback
    summary.late.update(counted.late)


def _valid_for_both(the_plan: Plan, checked: list[list[Checked]]) -> None:
    """Raise, as the serial replay's old guard would, the first record the new rule set decides or records
    (history, negative seqs: read first) that the old one (``--compare``) rejects (another rule set may
    declare other attributes)."""
    new = {seq for part in checked[0] for seq, *_rest in part.invalid}
    dropped = {seq for seq, _first in the_plan.repeats}
    old = [
        (seq, error)
        for part in checked[1]
        for seq, error, *_rest in part.invalid
        if seq not in new and seq not in dropped
    ]
    if old:
        raise min(old, key=lambda item: item[0])[1]


def _refused(the_plan: Plan, first_ids: dict[int, str], guard: Guard, auditing: AuditPlan) -> Part:
    """Write the audit file of the records refused before partitioning, in replay order, as the serial
    replay's guard audits them: invalid events, and event ids decided before for another event."""
    pipeline = guard.pipeline
    refused: list[tuple[int, InvalidEventError, Event | None]] = [(s, e, None) for s, e in the_plan.invalid]
    for seq, record, first in the_plan.conflicts:
        assert record.event is not None
        event = guard.validate(record.event)
        refused.append((seq, DuplicateEventError(event.id, first_ids.get(first, "?")), event))
    refused.sort(key=lambda item: item[0])
    ids = refusal_ids()
    records = (
        rejected_record(next(ids), error, pipeline.ref_json, pipeline.engine, event=event)
        for _seq, error, event in refused
    )
    return write_part(auditing, refused_path(auditing.path), records, kind="refused", partition=None)


def _report(the_plan: Plan, first_ids: dict[int, str], reject: Reporter | None) -> None:
    """Report rejections and conflicts in replay order, as the serial replay reports them."""
    if reject is None:
        return
    problems: list[tuple[int, Record, str]] = list(the_plan.rejected)
    for seq, record, first in the_plan.conflicts:
        assert record.event is not None
        event_id = str(record.event.get("id"))
        problems.append((seq, record, str(DuplicateEventError(event_id, first_ids.get(first, "?")))))
    problems.sort(key=lambda item: item[0])
    for _seq, record, reason in problems:
        reject(record, reason)
