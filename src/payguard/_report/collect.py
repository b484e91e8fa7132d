"""What the backtest report shows, gathered decision by decision while a replay runs.

Kept to counters and sums updated in place: the report adds a small constant to each decision, never a
list of decisions (a replay of millions of events stays in bounded memory).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .._decision import Action, Decision, Hit
from .._event import Event
from .._io.base import Record

__all__ = ["Collector", "RuleStats"]

_STOPS = (Action.HOLD, Action.INTERRUPT)
_MAX_EXAMPLES = 5


def _money() -> defaultdict[str, Decimal]:
    return defaultdict(Decimal)


@dataclass
class RuleStats:
    """One rule's hits over the replay: labelled counts and money, and what only it stopped."""

    hits: int = 0
    fraud: int = 0
    legit: int = 0
    fraud_money: defaultdict[str, Decimal] = field(default_factory=_money)
    legit_money: defaultdict[str, Decimal] = field(default_factory=_money)
    only: int = 0
    only_money: defaultdict[str, Decimal] = field(default_factory=_money)
    # shadow rules, as if enforced: payments they would have stopped that nothing else stopped
    newly_stopped: int = 0
    newly_fraud: int = 0
    newly_legit: int = 0
    newly_fraud_money: defaultdict[str, Decimal] = field(default_factory=_money)

    @property
    def precision(self) -> float | None:
        return round(self.fraud / (self.fraud + self.legit), 4) if self.fraud + self.legit else None


@dataclass
class Change:
    """Decisions that ``--compare`` changed from one action to another, by label, knock-on ones apart."""

    fraud: int = 0
    legit: int = 0
    unlabelled: int = 0
    knock_on: int = 0
    examples: list[str] = field(default_factory=list)
    knock_on_examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.fraud + self.legit + self.unlabelled


class Collector:
    """Observes a replay (``replay(observe=collector.observe)``) for the report."""

    def __init__(self) -> None:
        self.days: defaultdict[date, Counter[str]] = defaultdict(Counter)
        self.day_money: defaultdict[date, defaultdict[tuple[str, str], Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        self.rules: defaultdict[str, RuleStats] = defaultdict(RuleStats)
        self.shadow: defaultdict[str, RuleStats] = defaultdict(RuleStats)
        self.overlap: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.changes: defaultdict[tuple[str, str], Change] = defaultdict(Change)
        self.old_hits: Counter[str] = Counter()
        self.new_hits: Counter[str] = Counter()
        self.compared = False

    def observe(self, _record: Record | None, event: Event, decision: Decision, old: Decision | None) -> None:
        action = decision.action
        day = event.timestamp.date()  # the day in the event's own time
        self.days[day][action._value_] += 1
        amount, currency = event.amount, event.currency
        if currency is None:
            amount = None
        elif amount is not None and action in _STOPS:
            self.day_money[day][(action._value_, currency)] += amount
        label = event.label
        fraud = None if label is None else label.is_fraud
        hits = decision.hits
        if hits:
            self._hits(hits, decision, fraud, amount, currency)
        if decision.shadow_hits:
            self._shadow(decision, fraud, amount, currency)
        if old is not None:
            self._compare(event, decision, old, fraud)

    def _hits(
        self,
        hits: tuple[Hit, ...],
        decision: Decision,
        fraud: bool | None,
        amount: Decimal | None,
        currency: str | None,
    ) -> None:
        stoppers = [hit for hit in hits if hit.action in _STOPS]
        for hit in hits:
            stats = self.rules[hit.rule_id]
            stats.hits += 1
            if fraud is not None:
                if fraud:
                    stats.fraud += 1
                    if amount is not None:
                        stats.fraud_money[str(currency)] += amount
                else:
                    stats.legit += 1
                    if amount is not None:
                        stats.legit_money[str(currency)] += amount
        if decision.stopped and len(stoppers) == 1:
            only = self.rules[stoppers[0].rule_id]
            only.only += 1
            if amount is not None:
                only.only_money[str(currency)] += amount
        if len(hits) > 1:
            ids = [hit.rule_id for hit in hits]
            for rule_id in ids:
                counter = self.overlap[rule_id]
                for other in ids:
                    if other != rule_id:
                        counter[other] += 1

    def _shadow(
        self, decision: Decision, fraud: bool | None, amount: Decimal | None, currency: str | None
    ) -> None:
        for hit in decision.shadow_hits:
            stats = self.shadow[hit.rule_id]
            stats.hits += 1
            if fraud is not None:
                stats.fraud += fraud
                stats.legit += not fraud
            if hit.action in _STOPS and not decision.stopped:  # it alone would have stopped the payment
                stats.newly_stopped += 1
                if fraud is not None:
                    stats.newly_fraud += fraud
                    stats.newly_legit += not fraud
                    if fraud and amount is not None:
                        stats.newly_fraud_money[str(currency)] += amount

    def _compare(self, event: Event, new: Decision, old: Decision, fraud: bool | None) -> None:
        self.compared = True
        for hit in old.hits:
            self.old_hits[hit.rule_id] += 1
        for hit in new.hits:
            self.new_hits[hit.rule_id] += 1
        if old.action is new.action:
            return
        change = self.changes[(old.action._value_, new.action._value_)]
        if fraud is None:
            change.unlabelled += 1
        elif fraud:
            change.fraud += 1
        else:
            change.legit += 1
        # Features come from the history only: when they differ, an earlier decision (a stop that was not
        # executed, or one that was) changed what this event saw, so the change is a knock-on effect.
        common = old.features.keys() & new.features.keys()
        knock_on = any(old.features[name] != new.features[name] for name in common)
        if knock_on:
            change.knock_on += 1
            if len(change.knock_on_examples) < _MAX_EXAMPLES:
                change.knock_on_examples.append(event.id)
        elif len(change.examples) < _MAX_EXAMPLES:
            change.examples.append(event.id)

    def rule_deltas(self) -> list[dict[str, Any]]:
        """Per rule, hits under the old and the new rule set, the rules that changed first."""
        rows = [
            {"rule_id": rule, "old": self.old_hits[rule], "new": self.new_hits[rule]}
            for rule in set(self.old_hits) | set(self.new_hits)
        ]
        return sorted(rows, key=lambda r: (-abs(r["new"] - r["old"]), r["rule_id"]))
