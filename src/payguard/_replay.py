"""Replay and backtest: run a rule set over transaction files as live evaluation would have.

Events are evaluated in event-time order through a fresh store. Files are streamed: each file passes
through a reorder buffer of ``REORDER_WINDOW`` records (a heap keyed by time), and the files are merged.
Time-sorted files, or files whose disorder stays within the window, are therefore replayed exactly in
order with memory bounded by the window, however large they are. An event that arrives later than the
window allows is still evaluated (never dropped), as live traffic would be, and counted as out of order.

Replay decides in event time: give it a guard built with ``max_future=None`` (the CLI does), or events
dated after the machine's clock are rejected as a live guard rejects them. An event id decided before
is a duplicate (counted, not decided again) when it is the same event, and a conflict (counted apart,
reported as a rejection) when it is not.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._decision import Action, Decision
from ._errors import DuplicateEventError, InvalidEventError
from ._event import Event, EventType, parse_event
from ._features.context import INCOMING
from ._guard import Guard
from ._io import Limits, read_records
from ._io.base import Record
from ._rules.conditions import Compare, leaves
from ._rules.model import RuleSet

__all__ = ["REORDER_WINDOW", "ReplaySummary", "decision_row", "order", "parse_duration", "replay"]

REORDER_WINDOW = 100_000
FRAUD_LIST = "fraud_accounts"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``7d``, ``12h``, ``30m``, ``45s`` or a plain number of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use 7d, 12h, 30m or 45s)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _epoch(record: Record) -> float | None:
    event = record.event
    if event is None:
        return None
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _ordered(
    records: Iterable[Record], index: int, window: int, late: Counter[str]
) -> Iterator[tuple[Any, ...]]:
    """Records of one file in time order, through a reorder buffer of ``window`` records."""
    heap: list[tuple[float, int, int, Record]] = []
    emitted = float("-inf")
    last = float("-inf")
    for seq, record in enumerate(records):
        stamp = _epoch(record)
        key = last if stamp is None else stamp  # unreadable records keep their place in the stream
        last = key if stamp is not None else last
        heapq.heappush(heap, (key, index, seq, record))
        if len(heap) > window:
            item = heapq.heappop(heap)
            if item[0] < emitted:
                late["out_of_order"] += 1
            emitted = max(emitted, item[0])
            yield item
    while heap:
        item = heapq.heappop(heap)
        if item[0] < emitted:
            late["out_of_order"] += 1
        emitted = max(emitted, item[0])
        yield item


def order(
    files: list[str],
    *,
    fmt: str | None = None,
    mapping: str | None = None,
    limits: Limits | None = None,
    window: int = REORDER_WINDOW,
    late: Counter[str] | None = None,
) -> Iterator[Record]:
    """The records of ``files`` in the order a replay decides them: the canonical replay order.

    Each file through a reorder buffer of ``window`` records (by event time; an unreadable record keeps
    its place in its stream), then the files merged by time, ties broken by file then position. The serial
    and the partitioned replays both number events by their position here. ``late`` counts the records
    that came out later than the window allowed (``out_of_order``).
    """
    late = Counter() if late is None else late
    streams = [
        _ordered(read_records(name, fmt, mapping, limits), i, window, late) for i, name in enumerate(files)
    ]
    for _key, _index, _seq, record in heapq.merge(*streams):
        yield record


def _money() -> defaultdict[str, Decimal]:
    return defaultdict(Decimal)


@dataclass
class Backtest:
    """Stopped (hold or interrupt) against labelled fraud, over labelled outgoing payments."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    legit_interrupted: int = 0
    fraud_money: defaultdict[str, Decimal] = field(default_factory=_money)
    fraud_money_stopped: defaultdict[str, Decimal] = field(default_factory=_money)
    rule_fraud: Counter[str] = field(default_factory=Counter)
    rule_legit: Counter[str] = field(default_factory=Counter)

    def add(self, event: Event, decision: Decision) -> None:
        if event.label is None or event.type not in (EventType.TRANSFER_OUT, EventType.CASH_WITHDRAWAL):
            return
        fraud, stopped = event.label.is_fraud, decision.stopped
        if fraud:
            self.tp += stopped
            self.fn += not stopped
            if event.amount is not None and event.currency:
                self.fraud_money[event.currency] += event.amount
                if stopped:
                    self.fraud_money_stopped[event.currency] += event.amount
        else:
            self.fp += stopped
            self.tn += not stopped
            self.legit_interrupted += decision.action is Action.INTERRUPT
        for hit in decision.hits:
            (self.rule_fraud if fraud else self.rule_legit)[hit.rule_id] += 1

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def to_dict(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 4) if b else None

        rules = sorted(set(self.rule_fraud) | set(self.rule_legit))
        return {
            "labelled_payments": self.labelled,
            "confusion": {
                "stopped_fraud": self.tp,
                "stopped_legit": self.fp,
                "missed_fraud": self.fn,
                "allowed_legit": self.tn,
            },
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp, self.tp + self.fn),
            "fraud_money_stopped_share": {
                ccy: ratio(float(self.fraud_money_stopped[ccy]), float(total))
                for ccy, total in sorted(self.fraud_money.items())
            },
            "legit_stopped_share": ratio(self.fp, self.fp + self.tn),
            "legit_interrupted_share": ratio(self.legit_interrupted, self.fp + self.tn),
            "rules": {
                rule: {
                    "fraud_hits": self.rule_fraud[rule],
                    "legit_hits": self.rule_legit[rule],
                    "precision": ratio(self.rule_fraud[rule], self.rule_fraud[rule] + self.rule_legit[rule]),
                }
                for rule in rules
            },
        }


@dataclass
class ReplaySummary:
    """What a replay saw and decided; ``to_dict`` is the ``--summary-json`` form."""

    records: int = 0
    history: int = 0
    evaluated: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0  # event ids decided before, for another event (``DuplicateEventError``)
    possible_duplicates: int = 0  # records their sender marked as maybe sent before
    events_by_type: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    action_money: defaultdict[str, defaultdict[str, Decimal]] = field(
        default_factory=lambda: defaultdict(_money)
    )
    rule_counts: Counter[str] = field(default_factory=Counter)
    rule_money: defaultdict[str, defaultdict[str, Decimal]] = field(
        default_factory=lambda: defaultdict(_money)
    )
    shadow_counts: Counter[str] = field(default_factory=Counter)
    score_counts: Counter[int] = field(default_factory=Counter)
    snoozed_counts: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    backtest: Backtest = field(default_factory=Backtest)
    seconds: float = 0.0
    listed_by_feedback: int = 0
    compare: Comparison | None = None
    currencies: CurrencyCheck | None = None
    # rule-set parameters overridden for this replay (``--set``), by name
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, event: Event, decision: Decision) -> None:
        self.evaluated += 1
        self.events_by_type[event.type.value] += 1
        action = decision.action.value
        self.actions[action] += 1
        if event.amount is not None and event.currency:
            self.action_money[action][event.currency] += event.amount
        for hit in decision.hits:
            self.rule_counts[hit.rule_id] += 1
            if event.amount is not None and event.currency:
                self.rule_money[hit.rule_id][event.currency] += event.amount
        for hit in decision.shadow_hits:
            self.shadow_counts[hit.rule_id] += 1
        self.score_counts[decision.score] += 1
        for rule_id in decision.snoozed:
            self.snoozed_counts[rule_id] += 1
        self.backtest.add(event, decision)
        if self.currencies is not None and event.currency is not None:
            self.currencies.add(event.currency)

    def to_dict(self) -> dict[str, Any]:
        def money(table: dict[str, Decimal]) -> dict[str, str]:
            return {ccy: str(amount) for ccy, amount in sorted(table.items())}

        by_amount = sorted(self.rule_money.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        data: dict[str, Any] = {
            "history_records": self.history,
            "records": self.records,
            "evaluated": self.evaluated,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "possible_duplicates": self.possible_duplicates,
            "out_of_order": self.late["out_of_order"],
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "decisions": {
                action.value: {
                    "count": self.actions[action.value],
                    "amount": money(self.action_money[action.value]),
                }
                for action in Action
            },
            "top_rules_by_count": [
                {"rule_id": rule, "count": count}
                for rule, count in sorted(self.rule_counts.items(), key=lambda i: (-i[1], i[0]))[:10]
            ],
            "top_rules_by_amount": [
                {"rule_id": rule, "amount": money(table)} for rule, table in by_amount[:10]
            ],
            "shadow_rules": dict(sorted(self.shadow_counts.items())),
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.evaluated / self.seconds, 1) if self.seconds else None,
        }
        if set(self.score_counts) - {0}:
            scores = self.score_counts
            data["scores"] = {
                "min": min(scores),
                "max": max(scores),
                "mean": round(sum(s * n for s, n in scores.items()) / sum(scores.values()), 2),
                "decisions_by_score": {str(s): n for s, n in sorted(scores.items())},
            }
        if self.snoozed_counts:
            data["snoozed_rules"] = dict(sorted(self.snoozed_counts.items()))
        if self.backtest.labelled:
            data["backtest"] = self.backtest.to_dict()
        if self.listed_by_feedback:
            data["accounts_listed_by_feedback"] = self.listed_by_feedback
        if self.compare is not None:
            data["compare"] = self.compare.to_dict()
        if self.currencies is not None and self.currencies.mismatched:
            data["currency_mismatch"] = self.currencies.to_dict()
        if self.settings:
            data["settings"] = dict(sorted(self.settings.items()))
        return data


class CurrencyCheck:
    """Money events in a currency none of the rule set's money tests are written in: for them every money
    test is false, which looks like "nothing fired" rather than like a mistake unless it is said."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.tests: Counter[str] = Counter()
        rules: set[str] = set()
        for rule in ruleset.rules:
            for leaf in leaves(rule.condition):
                if isinstance(leaf, Compare) and leaf.currency is not None:
                    self.tests[leaf.currency] += 1
                    rules.add(rule.id)
        self.rules = len(rules)
        self.mismatched: Counter[str] = Counter()
        self.converted = frozenset(ruleset.fx)  # compared at the header's reference rates (``fx``)

    def add(self, currency: str) -> None:
        if self.tests and currency not in self.tests and currency not in self.converted:
            self.mismatched[currency] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_by_currency": dict(sorted(self.mismatched.items())),
            "rule_currencies": sorted(self.tests),
            "money_tests_not_applied": sum(self.tests.values()),
            "rules_with_money_tests": self.rules,
        }

    def warning(self) -> str:
        """The warning ``payguard replay`` prints (empty when every money event had tests to meet)."""
        if not self.mismatched:
            return ""
        events = sum(self.mismatched.values())
        return (
            f"warning: {events:,} money events are in {', '.join(sorted(self.mismatched))} but the rule "
            f"set's money tests are in {', '.join(sorted(self.tests))}: none of its "
            f"{sum(self.tests.values())} money tests (in {self.rules} rules) could apply to them; give the "
            "mapping a currency override, give the rule set's header a reference rate (fx), or replay a rule "
            "set written in that currency"
        )


@dataclass
class Comparison:
    """How a new rule set's decisions differ from an old one's on the same events."""

    changed: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules: defaultdict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: defaultdict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    old_backtest: Backtest = field(default_factory=Backtest)
    # decisions whose score changed (whether or not the action did), and by how much in all
    score_changed: int = 0
    score_delta: int = 0

    def add(self, event: Event, old: Decision, new: Decision) -> None:
        self.old_backtest.add(event, old)
        if old.score != new.score:
            self.score_changed += 1
            self.score_delta += new.score - old.score
        if old.action == new.action:
            return
        key = (old.action.value, new.action.value)
        self.changed[key] += 1
        old_ids, new_ids = set(old.rule_ids), set(new.rule_ids)
        for rule in sorted(new_ids - old_ids):
            self.rules[key][f"+{rule}"] += 1
        for rule in sorted(old_ids - new_ids):
            self.rules[key][f"-{rule}"] += 1
        if len(self.examples[key]) < 5:
            self.examples[key].append(event.id)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "changed": [
                {
                    "old": old,
                    "new": new,
                    "count": count,
                    "rules": dict(self.rules[(old, new)].most_common(10)),
                    "examples": self.examples[(old, new)],
                }
                for (old, new), count in sorted(self.changed.items(), key=lambda i: (-i[1], i[0]))
            ],
            "changed_total": sum(self.changed.values()),
        }
        if self.score_changed:
            data["score_changed"] = self.score_changed
            data["score_delta_total"] = self.score_delta
        if self.old_backtest.labelled:
            data["old_backtest"] = self.old_backtest.to_dict()
        return data


Reporter = Callable[[Record, str], None]
# sees each fresh decision: the record, its event, the decision and the old rule set's (with --compare)
Observer = Callable[[Record, Event, Decision, Decision | None], None]


def decision_row(
    event: Event,
    decision: Decision,
    old: Decision | None,
    mask: Callable[[str], str] | None,
    *,
    scored: bool = True,
) -> dict[str, Any]:
    """One ``--out`` line: what an analyst joins on (event, time, money, masked account, label) and the
    decision (and the old rule set's, with ``--compare``)."""
    party = event.payee if event.type in INCOMING and event.payee is not None else event.payer
    label = event.label
    row: dict[str, Any] = {
        "event_id": event.id,
        "timestamp": event.timestamp.isoformat(),
        "type": event.type.value,
        "amount": None if event.amount is None else str(event.amount),
        "currency": event.currency,
        "account": mask(party.account) if mask is not None else party.account,
        "label": None if label is None else ("fraud" if label.is_fraud else "legit"),
        "action": decision.action.value,
        "score": decision.score,
        "hits": list(decision.rule_ids),
    }
    if decision.shadow_hits:
        row["shadow_hits"] = [hit.rule_id for hit in decision.shadow_hits]
    if decision.snoozed:
        row["snoozed"] = list(decision.snoozed)
    if old is not None:
        row["old_action"] = old.action.value
        row["old_hits"] = list(old.rule_ids)
        if scored:
            row["old_score"] = old.score
    return row


def replay(
    files: list[str],
    guard: Guard,
    *,
    fmt: str | None = None,
    mapping: str | None = None,
    write: Callable[[dict[str, Any]], None] | None = None,
    reject: Reporter | None = None,
    compare: Guard | None = None,
    feedback_delay: int | None = None,
    progress: Callable[[int], None] | None = None,
    window: int = REORDER_WINDOW,
    history: list[str] | None = None,
    observe: Observer | None = None,
    until: str | None = None,
    mask: Callable[[str], str] | None = None,
    limits: Limits | None = None,
) -> ReplaySummary:
    """Evaluate every record of ``files`` through ``guard`` in event-time order; see the module doc.

    ``history`` files are read first and recorded as executed payments (not decided, not audited), to
    warm the store as a bank would with its past transactions. ``observe`` sees every fresh decision
    (and the old rule set's, with ``compare``); the replay stops after the event whose id is ``until``.
    ``mask`` masks the account of the ``write`` lines (as the audit trail does). ``limits`` bounds
    the lines and fields the readers accept (``Limits``).
    """
    summary = ReplaySummary(
        compare=Comparison() if compare is not None else None,
        currencies=CurrencyCheck(guard.rules),
        settings=dict(guard.rules.overrides),
    )
    for name in history or []:
        _record_history(name, (fmt, mapping, limits), (guard, compare), summary, reject)
    pending: list[tuple[float, str]] = []  # (when the fraud label becomes known, payee account)
    scored = bool(guard.rules.scoring) or (compare is not None and bool(compare.rules.scoring))
    started = time.perf_counter()
    for record in order(files, fmt=fmt, mapping=mapping, limits=limits, window=window, late=summary.late):
        summary.records += 1
        if progress is not None:
            progress(1)
        if record.event is None:
            _rejected(summary, reject, record, record.error or "unreadable record")
            continue
        try:
            event = guard.validate(record.event)  # audits the rejection, as live evaluation would
        except InvalidEventError as exc:
            _rejected(summary, reject, record, str(exc))
            continue
        if feedback_delay is not None:
            summary.listed_by_feedback += _apply_feedback(pending, event, (guard, compare))
        try:
            decision, fresh = guard.evaluate_fresh(event)
        except DuplicateEventError as exc:  # audited by the guard
            summary.conflicts += 1
            if reject is not None:
                reject(record, str(exc))
            continue
        summary.possible_duplicates += record.possible_duplicate
        if not fresh:
            summary.duplicates += 1
            continue
        summary.add(event, decision)
        old = None
        if compare is not None and summary.compare is not None:
            old, _ = compare.evaluate_fresh(event)
            summary.compare.add(event, old, decision)
        if write is not None:
            row = decision_row(event, decision, old, mask, scored=scored)
            if record.possible_duplicate:  # decided all the same: its event id was not decided before
                row["possible_duplicate"] = True
            write(row)
        if observe is not None:
            observe(record, event, decision, old)
        if feedback_delay is not None and event.label is not None and event.label.is_fraud and event.payee:
            heapq.heappush(pending, (event.timestamp.timestamp() + feedback_delay, event.payee.account))
        if until is not None and event.id == until:
            break
    summary.seconds = time.perf_counter() - started
    return summary


def _record_history(
    name: str,
    reading: tuple[str | None, str | None, Limits | None],
    guards: tuple[Guard, Guard | None],
    summary: ReplaySummary,
    reject: Reporter | None,
) -> None:
    """Record the events of history file ``name``; ``reading``: its format, mapping and limits.

    A record is rejected (reported and counted) when it is not an event or the rule set rejects it (an
    attribute of another type than it declares). Each rule set records the records it takes, as the
    partitioned replay's do; one the replay's rule set takes but the old one (``compare``) rejects raises
    that ``InvalidEventError``, as an event to decide does.
    """
    guard, old = guards
    for record in read_records(name, *reading):
        if record.event is None:
            _rejected(summary, reject, record, record.error or "unreadable record")
            continue
        try:
            event = parse_event(record.event)
        except InvalidEventError as exc:
            _rejected(summary, reject, record, str(exc))
            continue
        try:
            guard.record([event])  # the rule set's own checks: the attributes it declares
        except InvalidEventError as exc:
            _rejected(summary, reject, record, str(exc))
            if old is not None:
                with suppress(InvalidEventError):  # reported once, as the replay's rule set rejects it
                    old.record([event])
            continue
        summary.history += 1
        if old is not None:
            old.record([event])


def _rejected(summary: ReplaySummary, reject: Reporter | None, record: Record, reason: str) -> None:
    summary.rejected += 1
    if reject is not None:
        reject(record, reason)


def _apply_feedback(pending: list[tuple[float, str]], event: Event, guards: tuple[Guard | None, ...]) -> int:
    """Add to ``fraud_accounts`` the payees of frauds whose label became known by this event's time."""
    now = event.timestamp.timestamp()
    due = []
    while pending and pending[0][0] <= now:
        due.append(heapq.heappop(pending)[1])
    if not due:
        return 0
    for guard in guards:
        if guard is not None and FRAUD_LIST in guard.rules.lists:
            guard.set_list(FRAUD_LIST, [*guard.list_entries(FRAUD_LIST), *due])
    return len(due)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
