"""The step functions of a partitioned replay, the same on every engine: plain Python over one
partition's rows.

A partition holds the rows of some accounts (``plan``). Each iteration replays, in replay order, the
accounts whose inputs changed since the last one (all of them the first time) through a fresh ``Guard``
in subject-only mode: its own events decided, the credits from other partitions applied where their payer
decided them executed, and the payee-side features of the payments it receives computed for the payer's
partition. What changed goes out as messages to the partitions concerned; accounts are independent given
their inputs, so an account whose inputs did not change keeps its outputs. The iteration stops when no
message changes anything (the fixed point, equal to the serial replay: see ``payguard.backtest``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._decision import Action, Decision, Hit, RulesetRef
from .._event import parse_event
from .._guard import Guard
from .._replay import CurrencyCheck, ReplaySummary, decision_row
from .._stores.history import AccountHistory
from .._stores.memory import MemoryStore
from .plan import CREDIT, DECIDE, HISTORY_CREDIT, RECORD, Row, Setup
from .summary import freeze

__all__ = ["Message", "Partition", "Stats", "finish", "step"]

# a decision as a partition keeps it (picklable: a Decision's features are a read-only mapping)
Slim = tuple[str, str, tuple[Hit, ...], tuple[Hit, ...], int, tuple[str, ...], str | None, datetime]
NO_PAYEE_SIDE: Mapping[str, Any] = {}


@dataclass
class Message:
    """What one partition tells another: payments decided executed or not (by seq, for the credit rows
    there), and payee-side features (by seq, for the decisions there)."""

    executed: dict[int, bool] = field(default_factory=dict)
    payee_side: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.executed) + len(self.payee_side)


@dataclass
class Stats:
    """One partition's iteration: accounts and rows replayed, messages sent, seconds."""

    partition: int
    warm_up: bool = False  # the first estimate of the payee-side features, before any decision
    accounts: int = 0
    rows: int = 0
    changes: int = 0
    seconds: float = 0.0


@dataclass
class Partition:
    """One partition's rows, the inputs it was last run with and its outputs (kept between iterations)."""

    index: int
    rows: list[Row]
    accounts: dict[str, list[int]] = field(default_factory=dict)  # row indices of each account, in order
    where: dict[tuple[int, int], int] = field(default_factory=dict)  # (seq, kind) -> row index
    executed: dict[int, bool] = field(default_factory=dict)  # CREDIT seq -> its payment went through
    payee_side: dict[int, dict[str, Any]] = field(default_factory=dict)  # DECIDE seq -> payee features
    decisions: dict[int, Slim] = field(default_factory=dict)  # DECIDE seq -> its decision
    told_executed: dict[int, bool] = field(default_factory=dict)  # what the payee's partition was told
    told_payee_side: dict[int, dict[str, Any]] = field(default_factory=dict)  # what the payer's was told
    runs: int = 0

    # each account's history after the history records (``--history``): every replay starts from it
    snapshots: dict[str, AccountHistory] = field(default_factory=dict)

    @classmethod
    def build(cls, index: int, rows: list[Row], setup: Setup) -> Partition:
        """The partition of ``rows``, its history records replayed once (they are always executed)."""
        rows = sorted(rows, key=lambda row: row.seq)
        guard = _guard(setup)
        past = [row for row in rows if row.kind in (RECORD, HISTORY_CREDIT)]
        for row in past:
            guard.record([row.event], side="subject" if row.kind == RECORD else "payee")
        assert isinstance(guard.store, MemoryStore)
        rows = rows[len(past) :]  # history records come first (negative seqs)
        partition = cls(index, rows, snapshots=dict(guard.store.accounts))
        for at, row in enumerate(rows):
            partition.accounts.setdefault(row.account, []).append(at)
            partition.where[row.seq, row.kind] = at
        return partition


def step(partition: Partition, setup: Setup, *inbox: Message) -> tuple[Partition, list[Message], Stats]:
    """One iteration of ``partition``: read the messages sent to it, replay the accounts whose inputs
    changed, and return it with the messages for every partition (by index) and what it did."""
    started = time.perf_counter()
    warm_up = setup.warm_up and partition.runs == 0
    first = partition.runs == (1 if setup.warm_up else 0)
    dirty: set[str] = set(partition.accounts) if warm_up or first else set()
    for message in inbox:
        for seq, executed in message.executed.items():
            if partition.executed.get(seq, True) != executed:
                partition.executed[seq] = executed
                dirty.add(partition.rows[partition.where[seq, CREDIT]].account)
        for seq, features in message.payee_side.items():
            if partition.payee_side.get(seq, NO_PAYEE_SIDE) != features:
                partition.payee_side[seq] = features
                dirty.add(partition.rows[partition.where[seq, DECIDE]].account)
    outbox = [Message() for _ in range(setup.partitions)]
    stats = Stats(partition.index, accounts=len(dirty), warm_up=warm_up)
    if dirty:
        indices = sorted(at for account in dirty for at in partition.accounts[account])
        stats.rows = len(indices)
        guard = _guard(setup)
        store = guard.store
        assert isinstance(store, MemoryStore)
        for account in dirty:
            found = partition.snapshots.get(account)
            if found is not None:
                store.accounts[account] = copy.deepcopy(found)
        _replay_rows(partition, guard, setup, [partition.rows[at] for at in indices], outbox, warm_up)
    partition.runs += 1
    stats.changes = sum(len(message) for message in outbox)
    stats.seconds = time.perf_counter() - started
    return partition, outbox, stats


def _guard(setup: Setup) -> Guard:
    # max_decisions 0: every DECIDE row is fresh by construction (the plan deduplicated them)
    guard = Guard(setup.ruleset, engine=setup.engine, store=MemoryStore(max_decisions=0), max_future=None)
    for name, entries in setup.lists.items():
        if entries != guard.list_entries(name):
            guard.set_list(name, entries)
    return guard


def _replay_rows(  # noqa: PLR0917 (a replay's parts)
    partition: Partition, guard: Guard, setup: Setup, rows: list[Row], outbox: list[Message], warm_up: bool
) -> None:
    """Replay ``rows`` (some accounts' rows, in replay order) through a fresh guard in subject-only mode;
    ``warm_up``: record the events instead of deciding them, for a first estimate of the payee-side
    features (their inputs, the money received, do not depend on the account's own decisions)."""
    name = setup.list_name
    base = guard.list_entries(name) if name is not None and name in guard.rules.lists else None
    epoch = 0
    for row in rows:
        kind, seq, event = row.kind, row.seq, row.event
        if kind == CREDIT:
            features = guard.payee_features(event)
            if partition.told_payee_side.get(seq, NO_PAYEE_SIDE) != features:
                partition.told_payee_side[seq] = features
                outbox[row.peer].payee_side[seq] = features
            if partition.executed.get(seq, True):
                guard.record([event], side="payee")
        elif warm_up:
            guard.record([event], side="subject")
        else:
            if base is not None and row.epoch != epoch:
                assert name is not None
                epoch = row.epoch
                guard.set_list(name, [*base, *setup.listed[:epoch]])
            decision, _fresh = guard.evaluate_subject(event, partition.payee_side.get(seq, NO_PAYEE_SIDE))
            partition.decisions[seq] = _slim(decision)
            if row.peer >= 0:
                executed = not decision.stopped and decision.error is None
                if partition.told_executed.get(seq, True) != executed:
                    partition.told_executed[seq] = executed
                    outbox[row.peer].executed[seq] = executed


def _slim(decision: Decision) -> Slim:
    return (
        decision.decision_id,
        decision.action.value,
        decision.hits,
        decision.shadow_hits,
        decision.score,
        decision.snoozed,
        decision.error,
        decision.evaluated_at,
    )


def _decision(slim: Slim, event_id: str, ref: RulesetRef, engine: str, event_time: datetime) -> Decision:
    decision_id, action, hits, shadow, score, snoozed, error, evaluated_at = slim
    return Decision(
        decision_id=decision_id,
        event_id=event_id,
        action=Action(action),
        hits=hits,
        shadow_hits=shadow,
        ruleset=ref,
        engine=engine,
        evaluated_at=evaluated_at,
        event_time=event_time,
        error=error,
        score=score,
        snoozed=snoozed,
    )


def finish(partition: Partition, setup: Setup, wanted: frozenset[int]) -> dict[str, Any]:
    """The partition's part of the result: its ``--out`` rows (unmasked) by seq, its part of the summary,
    and the decision ids of the seqs in ``wanted`` (the first decisions of conflicting event ids)."""
    guard = _guard(setup)
    ref, engine = guard.ruleset, guard.engine
    summary = ReplaySummary(currencies=CurrencyCheck(setup.ruleset))
    lines: list[tuple[int, dict[str, Any]]] = []
    ids: dict[int, str] = {}
    for row in partition.rows:
        if row.kind != DECIDE:
            continue
        event = parse_event(row.event)
        decision = _decision(partition.decisions[row.seq], event.id, ref, engine, event.timestamp)
        summary.add(event, decision)
        line = decision_row(event, decision, None, None, scored=setup.scored)
        if row.possible_duplicate:
            line["possible_duplicate"] = True
        lines.append((row.seq, line))
        if row.seq in wanted:
            ids[row.seq] = decision.decision_id
    return {"lines": lines, "summary": freeze(summary), "ids": ids}
