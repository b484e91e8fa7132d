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

import bisect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._audit.record import decision_record
from .._decision import Action, Decision, Hit
from .._errors import InvalidEventError, PayguardError
from .._event import Event, digest
from .._features.context import accounts
from .._guard import Guard
from .._pipeline import INTERNAL_ERROR_RULE, UNRATED_CURRENCY_RULE
from .._replay import CurrencyCheck, ReplaySummary, decision_row
from .._rules.model import RuleSet
from .._stores.history import AccountHistory
from .._stores.memory import MemoryStore
from .audit import part_path, write_part
from .memory import copied, no_cycle_collection
from .parts import PartCollector, PartComparison
from .plan import CREDIT, DECIDE, HISTORY_CREDIT, RECORD, Answer, Checked, Row, Setup
from .summary import freeze

__all__ = ["Decided", "Loading", "Message", "Partition", "Stats", "finish", "step"]

# a decision as a partition keeps it, picklable between workers: the ids of its hits and shadow hits
# (a Decision's features are a read-only mapping, and compiled frozen classes do not unpickle)
Slim = tuple[str, str, tuple[str, ...], tuple[str, ...], int, tuple[str, ...], str | None, datetime]
# the old rule set's decisions of a partition's rows (``--compare``): its setup, decisions and features
Decided = tuple[Setup, dict[int, Slim], dict[int, dict[str, Any]]]
NO_PAYEE_SIDE: Mapping[str, Any] = {}
FROM_START = -(1 << 62)  # before every seq
# an account's history is copied every this many of its rows, so replaying from a change stays short
CHECKPOINT_ROWS = 256


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
    # with an audit: DECIDE seq -> the evidence its decision's record shows, and the decision's latency (µs)
    evidence: dict[int, tuple[dict[str, Any], float]] = field(default_factory=dict)
    runs: int = 0
    # each account's history after the history records (``--history``): every replay starts from it
    snapshots: dict[str, AccountHistory] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # the rows' events, validated once
    # DECIDE seqs of payments to the payer's own account: decided as serially, both sides in one history
    own: frozenset[int] = frozenset()
    # each account's checkpoints of its last replay: (position among its rows, its history before that row)
    checkpoints: dict[str, list[tuple[int, AccountHistory]]] = field(default_factory=dict)
    features: dict[int, dict[str, Any]] = field(default_factory=dict)  # DECIDE seq -> (``keep_features``)
    answers: dict[int, Answer] = field(default_factory=dict)  # what the driver asked of its rows (``Setup``)

    @classmethod
    def build(cls, index: int, rows: list[Row], setup: Setup) -> Partition:
        """The partition of ``rows`` (in any order), its history records replayed once (they are always
        executed), sealed with ``setup``."""
        loading = Loading(index, setup.ruleset, setup.engine)
        return loading.add(sorted(rows, key=lambda row: row.seq)).seal(setup)


class Loading:
    """A partition being built from its rows, batch after batch in replay order (history records first),
    as the plan routes them: each record validated as it arrives (``checked``: what the driver needs to
    know of them), history records replayed at once; sealed once the driver has resolved duplicates and
    feedback (``seal``)."""

    def __init__(self, index: int, ruleset: RuleSet, engine: str, feedback: bool = False) -> None:
        self.index = index
        self.guard = _guard_of(ruleset, engine, {})
        self.rows: list[Row] = []
        self.events: list[Event] = []
        self.feedback = feedback
        self.checked = Checked()

    @no_cycle_collection()
    def add(self, rows: list[Row]) -> Loading:
        """Take the next ``rows`` of the partition, rejecting invalid records as the serial replay does."""
        guard, checked = self.guard, self.checked
        # a payment between two accounts of the partition: both rows hold one record (one pickle)
        validated: dict[int, Event | InvalidEventError] = {}
        for row in rows:
            found = validated.get(id(row.event))
            if found is None:
                try:
                    found = validated[id(row.event)] = guard.validate(row.event)
                except InvalidEventError as exc:
                    found = validated[id(row.event)] = exc
            if isinstance(found, InvalidEventError):
                if row.kind in (DECIDE, RECORD):  # reported once, by the subject's partition
                    checked.invalid.append((row.seq, found, row.event, row.source, row.line))
                continue
            _check_route(row, found)
            if row.kind in (RECORD, HISTORY_CREDIT):
                assert not self.rows, "history records come before the replayed records"
                guard.record([found], side="subject" if row.kind == RECORD else "payee")
                continue
            self.rows.append(row)
            self.events.append(found)
            if row.kind == DECIDE and self.feedback:
                checked.seqs.append(row.seq)
                checked.times.append(found.timestamp.timestamp())
                label, payee = found.label, found.payee
                if label is not None and label.is_fraud and payee is not None:
                    checked.frauds[row.seq] = payee.account
        return self

    @no_cycle_collection()
    def seal(self, setup: Setup) -> Partition:
        """The partition of the rows taken, indexed: without the event ids decided before
        (``setup.dropped``), each decision with the feedback entries in force at it (``setup.epochs``),
        and the digests the driver asked for (``setup.asked``) in ``answers``."""
        index, dropped, asked = self.index, setup.dropped, setup.asked
        starts = [seq for seq, _count in setup.epochs]
        rows: list[Row] = []
        events: list[Event] = []
        answers: dict[int, Answer] = {}
        for row, event in zip(self.rows, self.events, strict=True):
            seq = row.seq
            if seq in asked and row.kind == DECIDE:
                answers[seq] = (digest(event), row.event, row.source, row.line)
            if seq in dropped:
                continue
            if starts:
                at = bisect.bisect_right(starts, seq)
                epoch = setup.epochs[at - 1][1] if at else 0
                if epoch != row.epoch:
                    row = row._replace(epoch=epoch)  # noqa: PLW2901 (the row as sealed)
            rows.append(row)
            events.append(event)
        assert isinstance(self.guard.store, MemoryStore)
        partition = Partition(
            index, rows, snapshots=dict(self.guard.store.accounts), events=events, answers=answers
        )
        for at, row in enumerate(rows):
            partition.accounts.setdefault(row.account, []).append(at)
            partition.where[row.seq, row.kind] = at
        partition.own = frozenset(
            row.seq
            for row in rows
            if row.kind == DECIDE
            and row.peer == index
            and rows[partition.where[row.seq, CREDIT]].account == row.account
        )
        return partition


def _check_route(row: Row, event: Event) -> None:
    """A valid event's row is where the plan routed it as read (``plan.routed``): else the partitioned
    replay would differ from the serial one, and it stops rather than differ."""
    subject, payee = accounts(event)
    if row.kind in (DECIDE, RECORD):
        right = row.account == subject and (payee is None) == (row.peer < 0)
    else:
        right = row.account == payee
    if not right:
        raise PayguardError(
            f"internal error: event {event.id!r} as read was routed to the account {row.account!r}, as "
            f"validated it touches {subject!r} and {payee!r}"
        )


@no_cycle_collection()
def step(
    partition: Partition, setup: Setup, *inbox: Message, everything: bool = False
) -> tuple[Partition, list[Message], Stats]:
    """One iteration of ``partition``: read the messages sent to it, replay the accounts whose inputs
    changed from just before the first change (``everything``: all of them, for an engine that keeps no
    partition between iterations), and return it with the messages for every other partition (by index)
    and what it did. Messages between its own accounts are taken at once, replaying the accounts they
    change, until none changes anything: the partition ends at its own fixed point."""
    started = time.perf_counter()
    warm_up = setup.warm_up and partition.runs == 0
    first = warm_up or partition.runs == (1 if setup.warm_up else 0)
    since: dict[str, int] = dict.fromkeys(partition.accounts, FROM_START) if first or everything else {}
    for message in inbox:
        _take(partition, message, since)
    outbox = [Message() for _ in range(setup.partitions)]
    stats = Stats(partition.index, warm_up=warm_up)
    replay = _Replay(partition, _guard(setup), setup, outbox, warm_up)
    fresh = first
    while since:
        for account in sorted(since):
            stats.accounts += 1
            stats.rows += replay.account(account, since[account], fresh=fresh)
        own, outbox[partition.index] = outbox[partition.index], Message()
        since = {}
        _take(partition, own, since)
        if warm_up:  # a warm-up records every event whatever it is told: the next iteration replays all
            break
        fresh = False
    for message in outbox:
        replay.net(message)
    partition.runs += 1
    stats.changes = sum(len(message) for message in outbox)
    stats.seconds = time.perf_counter() - started
    return partition, outbox, stats


def _take(partition: Partition, message: Message, since: dict[str, int]) -> None:
    """Apply ``message`` to ``partition``: in ``since``, each account whose inputs it changed, from the
    first seq changed."""
    for seq, executed in message.executed.items():
        if partition.executed.get(seq, True) != executed:
            partition.executed[seq] = executed
            _changed(since, partition.rows[partition.where[seq, CREDIT]].account, seq)
    for seq, features in message.payee_side.items():
        if partition.payee_side.get(seq, NO_PAYEE_SIDE) != features:
            partition.payee_side[seq] = features
            _changed(since, partition.rows[partition.where[seq, DECIDE]].account, seq)


def _changed(since: dict[str, int], account: str, seq: int) -> None:
    since[account] = min(since.get(account, seq), seq)


def _guard(setup: Setup) -> Guard:
    return _guard_of(setup.ruleset, setup.engine, setup.lists)


def _guard_of(ruleset: RuleSet, engine: str, lists: Mapping[str, frozenset[str]]) -> Guard:
    # max_decisions 0: every DECIDE row is fresh by construction (the plan deduplicated them)
    guard = Guard(ruleset, engine=engine, store=MemoryStore(max_decisions=0), max_future=None)
    for name, entries in lists.items():
        if entries != guard.list_entries(name):
            guard.set_list(name, entries)
    return guard


class _Replay:
    """Replays accounts of one partition through one guard (a fresh store per account) in subject-only
    mode: an account's own events decided, the payments to it credited where their payers' decisions let
    them through (payments to the payer's own account: decided as serially). ``warm_up``: record the
    events instead of deciding them, for a first estimate of the payee-side features (what they read, the
    money received, does not depend on the account's own decisions)."""

    def __init__(
        self, partition: Partition, guard: Guard, setup: Setup, outbox: list[Message], warm_up: bool
    ) -> None:
        self.partition, self.guard, self.setup, self.outbox, self.warm_up = (
            partition,
            guard,
            setup,
            outbox,
            warm_up,
        )
        name = setup.list_name
        self.base = guard.list_entries(name) if name is not None and name in guard.rules.lists else None
        self.epoch = 0  # the feedback entries in force in the guard's list
        # what the other partitions had been told before this step, for what it changed since
        self.told_executed: dict[int, bool] = {}
        self.told_features: dict[int, Mapping[str, Any]] = {}

    def net(self, message: Message) -> None:
        """Drop from ``message`` what ends as it was before this step (a change undone by a later round:
        an engine that replays from scratch each time would otherwise send it every time)."""
        message.executed = {s: v for s, v in message.executed.items() if self.told_executed[s] != v}
        message.payee_side = {s: v for s, v in message.payee_side.items() if self.told_features[s] != v}

    def account(self, account: str, since: int, *, fresh: bool) -> int:
        """Replay ``account`` from its last checkpoint before ``since`` (``fresh``: from its start, and
        forget the checkpoints of an earlier mode); the number of rows replayed."""
        partition = self.partition
        positions = partition.accounts[account]
        kept = [] if fresh else partition.checkpoints.get(account, [])
        while kept and partition.rows[positions[kept[-1][0]]].seq > since:
            kept.pop()
        start, saved = kept[-1] if kept else (0, partition.snapshots.get(account))
        store = MemoryStore(max_decisions=0)
        if saved is not None:
            store.accounts[account] = copied(saved)
        self.guard.store = store
        for number in range(start, len(positions)):
            due = number > start and (number - start) % CHECKPOINT_ROWS == 0 and not self.warm_up
            if due and (history := store.accounts.get(account)) is not None:
                kept.append((number, copied(history)))
            self.row(positions[number])
        partition.checkpoints[account] = [] if self.warm_up else kept
        return len(positions) - start

    def row(self, at: int) -> None:
        partition, guard, outbox = self.partition, self.guard, self.outbox
        row, event = partition.rows[at], partition.events[at]
        kind, seq = row.kind, row.seq
        own = row.peer == partition.index and seq in partition.own
        if kind == CREDIT and own:
            return  # its payer's decision, in the same history, credits it
        if kind == CREDIT:
            # a rule set that reads no payee-side feature is given none (``payee_features`` says ``{}``)
            features = guard.payee_features(event) if self.setup.payee_side else {}
            if partition.told_payee_side.get(seq, NO_PAYEE_SIDE) != features:
                self.told_features.setdefault(seq, partition.told_payee_side.get(seq, NO_PAYEE_SIDE))
                partition.told_payee_side[seq] = features
                outbox[row.peer].payee_side[seq] = features
            if partition.executed.get(seq, True):
                guard.record([event], side="payee")
            return
        if self.warm_up:
            guard.record([event], side="both" if own else "subject")
            return
        if self.base is not None and row.epoch != self.epoch:
            name = self.setup.list_name
            assert name is not None
            self.epoch = row.epoch
            guard.set_list(name, [*self.base, *self.setup.listed[: self.epoch]])
        started = time.perf_counter()
        if row.peer < 0 or own:
            decision, _fresh = guard.evaluate_fresh(event)
        else:
            decision, _fresh = guard.evaluate_subject(event, partition.payee_side.get(seq, NO_PAYEE_SIDE))
        partition.decisions[seq] = _slim(decision)
        if self.setup.keep_features:
            partition.features[seq] = dict(decision.features)
        if self.setup.audit is not None:  # what the record shows needs the features, which are not kept
            latency = round((time.perf_counter() - started) * 1e6, 1)
            partition.evidence[seq] = (guard.pipeline.evidence(decision, event), latency)
        if row.peer >= 0 and not own:
            executed = not decision.stopped and decision.error is None
            if partition.told_executed.get(seq, True) != executed:
                self.told_executed.setdefault(seq, partition.told_executed.get(seq, True))
                partition.told_executed[seq] = executed
                outbox[row.peer].executed[seq] = executed


def _slim(decision: Decision) -> Slim:
    return (
        decision.decision_id,
        decision.action.value,
        decision.rule_ids,
        tuple(hit.rule_id for hit in decision.shadow_hits),
        decision.score,
        decision.snoozed,
        decision.error,
        decision.evaluated_at,
    )


def _hits(guard: Guard) -> dict[str, Hit]:
    """What each rule id a decision names reports: the rule set's rules, and the unrated-currency hit."""
    pipeline = guard.pipeline
    return {hit.rule_id: hit for _shadow, hit in pipeline.hits} | {UNRATED_CURRENCY_RULE: pipeline.unrated}


def _decision(
    slim: Slim, event: Event, guard: Guard, hits: dict[str, Hit], features: Mapping[str, Any] | None = None
) -> Decision:
    decision_id, action, hit_ids, shadow_ids, score, snoozed, error, evaluated_at = slim
    if error is not None:  # the audited hold of a decision payguard could not make
        reason = f"payguard could not evaluate this payment ({error}); held for review"
        hits = {**hits, INTERNAL_ERROR_RULE: Hit(INTERNAL_ERROR_RULE, Action.HOLD, reason)}
    return Decision(
        decision_id=decision_id,
        event_id=event.id,
        action=Action(action),
        hits=tuple(hits[rule] for rule in hit_ids),
        shadow_hits=tuple(hits[rule] for rule in shadow_ids),
        ruleset=guard.ruleset,
        engine=guard.engine,
        evaluated_at=evaluated_at,
        event_time=event.timestamp,
        error=error,
        score=score,
        snoozed=snoozed,
        features=features,
    )


@no_cycle_collection()
def finish(
    partition: Partition, setup: Setup, wanted: frozenset[int], old: Decided | None = None
) -> dict[str, Any]:
    """The partition's part of the result: its ``--out`` rows (unmasked) by seq, its part of the summary,
    the decision ids of the seqs in ``wanted`` (the first decisions of conflicting event ids), and with an
    audit its audit file, written here (``audit``: that file's manifest entry). ``old``: the old rule set's
    decisions of the same rows (``--compare``), for the rows' old columns and the comparison; with
    ``setup.report``, what the report counts (``report``)."""
    guard = _guard(setup)
    hits = _hits(guard)
    summary = ReplaySummary(currencies=CurrencyCheck(setup.ruleset))
    comparison = PartComparison() if old is not None else None
    collector = PartCollector() if setup.report else None
    old_guard = None if old is None else _guard(old[0])
    old_hits = {} if old_guard is None else _hits(old_guard)
    lines: list[tuple[int, dict[str, Any]]] = []
    ids: dict[int, str] = {}
    decisions: list[tuple[Row, Event, Decision]] = []
    for row, event in zip(partition.rows, partition.events, strict=True):
        if row.kind != DECIDE:
            continue
        seq = row.seq
        decision = _decision(partition.decisions[seq], event, guard, hits, partition.features.get(seq))
        summary.add(event, decision)
        before = None
        if old is not None and old_guard is not None and comparison is not None:
            before = _decision(old[1][seq], event, old_guard, old_hits, old[2].get(seq))
            comparison.add_at(seq, event, before, decision)
        if collector is not None:
            collector.observe_at(seq, event, decision, before)
        line = decision_row(event, decision, before, None, scored=setup.scored)
        if row.possible_duplicate:
            line["possible_duplicate"] = True
        lines.append((seq, line))
        if seq in wanted:
            ids[seq] = decision.decision_id
        if setup.audit is not None:
            decisions.append((row, event, decision))
    audit = None
    if setup.audit is not None:
        target = part_path(setup.audit.path, partition.index)
        records = (_record(partition, setup, guard, *item) for item in decisions)
        audit = write_part(setup.audit, target, records, kind="decisions", partition=partition.index)
    return {
        "lines": lines,
        "summary": freeze(summary),
        "ids": ids,
        "audit": audit,
        "compare": None if comparison is None else comparison.freeze(),
        "report": None if collector is None else collector.freeze(),
    }


def _record(  # noqa: PLR0917 (a decision's parts)
    partition: Partition, setup: Setup, guard: Guard, row: Row, event: Event, decision: Decision
) -> dict[str, Any]:
    """The audit record of a final decision, as the serial replay's guard would have written it."""
    assert setup.audit is not None
    pipeline = guard.pipeline
    evidence, latency = partition.evidence[row.seq]
    offset = pipeline.validate(event).offset
    record = decision_record(
        decision, event, offset, pipeline.ref_json, evidence, latency, public=setup.ruleset.public_attributes
    )
    versions = setup.audit.versions_at(setup.list_name, row.epoch)
    if versions:  # the serial guard's versions: each time feedback set the list, not this partition's count
        record["lists"] = versions
    else:
        record.pop("lists", None)
    return record
