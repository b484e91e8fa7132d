"""What ``--compare`` and ``--report`` count, in parts: each partition counts its own decisions in replay
order, the driver adds the parts up into exactly what the serial replay counted.

Sums do not depend on the order they are taken in; what does is kept with the replay position (seq) that
put it there: the first examples of each change (the serial replay keeps the first five it meets), and
the order in which keys first appeared where a tie between equal counts is broken by it (``most_common``
in the comparison's rules and the report's "fires most with", the report's main currency). A key first
met at the same seq in two parts cannot happen (one event, one partition), so (first seq, position in
its part) orders the merged keys as the serial replay inserted them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from .._decision import Decision
from .._event import Event
from .._replay import Comparison
from .._report.collect import Collector, RuleStats
from .summary import absorb_backtest, add_money, freeze_backtest

__all__ = ["PartCollector", "PartComparison", "absorb_collector", "absorb_comparison"]

_MAX_EXAMPLES = 5


class PartComparison(Comparison):
    """A ``Comparison`` of one partition's decisions, which remembers the seq of what depends on order."""

    def __init__(self) -> None:
        super().__init__()
        self.example_seqs: dict[tuple[str, str], list[int]] = {}
        self.rule_firsts: dict[tuple[str, str], dict[str, int]] = {}

    def add_at(self, seq: int, event: Event, old: Decision, new: Decision) -> None:
        key = (old.action.value, new.action.value)
        had = len(self.examples[key]) if key in self.examples else 0
        known = len(self.rules[key]) if key in self.rules else 0
        self.add(event, old, new)
        if key in self.examples and len(self.examples[key]) > had:
            self.example_seqs.setdefault(key, []).append(seq)
        if key in self.rules and len(self.rules[key]) > known:
            firsts = self.rule_firsts.setdefault(key, {})
            for rule in list(self.rules[key])[known:]:
                firsts[rule] = seq

    def freeze(self) -> dict[str, Any]:
        """Plain data (a ``Comparison``'s default factories do not pickle)."""
        return {
            "changed": dict(self.changed),
            "rules": {
                key: [(rule, count, self.rule_firsts[key][rule]) for rule, count in counter.items()]
                for key, counter in self.rules.items()
            },
            "examples": {
                key: list(zip(self.example_seqs[key], ids, strict=True)) for key, ids in self.examples.items()
            },
            "old_backtest": freeze_backtest(self.old_backtest),
            "score_changed": self.score_changed,
            "score_delta": self.score_delta,
        }


def absorb_comparison(total: Comparison, parts: Iterable[dict[str, Any]]) -> None:
    """Add the frozen parts to ``total``, as if one ``Comparison`` had seen every decision in replay order."""
    rules: dict[tuple[str, str], list[tuple[int, int, str, int]]] = {}
    examples: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for part in parts:
        total.changed.update(part["changed"])
        for key, found in part["rules"].items():
            rules.setdefault(key, []).extend(
                (first, at, rule, count) for at, (rule, count, first) in enumerate(found)
            )
        for key, found in part["examples"].items():
            examples.setdefault(key, []).extend(found)
        absorb_backtest(total.old_backtest, part["old_backtest"])
        total.score_changed += part["score_changed"]
        total.score_delta += part["score_delta"]
    for key, found in rules.items():
        counter = total.rules[key]
        for _first, _at, rule, count in sorted(found):
            counter[rule] += count
    for key, found in examples.items():
        total.examples[key] = [event_id for _seq, event_id in sorted(found)[:_MAX_EXAMPLES]]


class PartCollector(Collector):
    """The report's ``Collector`` over one partition's decisions, which remembers the seq of what depends
    on order (the days and currencies of the money stopped, the rules firing together, the examples)."""

    def __init__(self) -> None:
        super().__init__()
        self.money_firsts: dict[date, tuple[int, dict[tuple[str, str], int]]] = {}
        self.overlap_firsts: dict[str, dict[str, int]] = {}
        self.example_seqs: dict[tuple[tuple[str, str], bool], list[int]] = {}

    def observe_at(self, seq: int, event: Event, decision: Decision, old: Decision | None) -> None:
        day = event.timestamp.date()
        money = len(self.day_money[day]) if day in self.day_money else 0
        ids = [hit.rule_id for hit in decision.hits] if len(decision.hits) > 1 else []
        together = {rule: len(self.overlap[rule]) if rule in self.overlap else 0 for rule in ids}
        key = None if old is None else (old.action.value, decision.action.value)
        change = self.changes[key] if key is not None and key in self.changes else None
        examples = (len(change.examples), len(change.knock_on_examples)) if change is not None else (0, 0)
        self.observe(None, event, decision, old)
        if day in self.day_money and len(self.day_money[day]) > money:
            firsts = self.money_firsts.setdefault(day, (seq, {}))[1]
            for item in list(self.day_money[day])[money:]:
                firsts[item] = seq
        for rule, known in together.items():
            if len(self.overlap[rule]) > known:
                firsts_of = self.overlap_firsts.setdefault(rule, {})
                for other in list(self.overlap[rule])[known:]:
                    firsts_of[other] = seq
        if key is not None and key in self.changes:
            change = self.changes[key]
            if len(change.examples) > examples[0]:
                self.example_seqs.setdefault((key, False), []).append(seq)
            if len(change.knock_on_examples) > examples[1]:
                self.example_seqs.setdefault((key, True), []).append(seq)

    def freeze(self) -> dict[str, Any]:
        """Plain data (the day-money table's default factory does not pickle)."""
        return {
            "days": {day: dict(counts) for day, counts in self.days.items()},
            "day_money": [
                (
                    self.money_firsts[day][0],
                    day,
                    [(item, amount, self.money_firsts[day][1][item]) for item, amount in table.items()],
                )
                for day, table in self.day_money.items()
            ],
            "rules": dict(self.rules),
            "shadow": dict(self.shadow),
            "overlap": {
                rule: [(other, count, self.overlap_firsts[rule][other]) for other, count in counter.items()]
                for rule, counter in self.overlap.items()
            },
            "changes": {
                key: (
                    change,
                    list(zip(self.example_seqs.get((key, False), []), change.examples, strict=True)),
                    list(zip(self.example_seqs.get((key, True), []), change.knock_on_examples, strict=True)),
                )
                for key, change in self.changes.items()
            },
            "old_hits": dict(self.old_hits),
            "new_hits": dict(self.new_hits),
            "compared": self.compared,
        }


def absorb_collector(total: Collector, parts: Iterable[dict[str, Any]]) -> None:
    """Add the frozen parts to ``total``, as if it had observed every decision in replay order."""
    money: dict[date, tuple[int, list[tuple[int, int, tuple[str, str], Decimal]]]] = {}
    overlap: dict[str, list[tuple[int, int, str, int]]] = {}
    changes: dict[tuple[str, str], tuple[list[tuple[int, str]], list[tuple[int, str]]]] = {}
    for part in parts:
        for day, counts in part["days"].items():
            total.days[day].update(counts)
        for first, day, table in part["day_money"]:
            earliest, items = money.get(day, (first, []))
            items.extend((seen, at, item, amount) for at, (item, amount, seen) in enumerate(table))
            money[day] = (min(earliest, first), items)
        for name in ("rules", "shadow"):
            for rule, stats in part[name].items():
                _add_stats(getattr(total, name)[rule], stats)
        for rule, found in part["overlap"].items():
            overlap.setdefault(rule, []).extend(
                (first, at, other, n) for at, (other, n, first) in enumerate(found)
            )
        for key, (change, examples, knock_on) in part["changes"].items():
            merged = total.changes[key]
            for name in ("fraud", "legit", "unlabelled", "knock_on"):
                setattr(merged, name, getattr(merged, name) + getattr(change, name))
            found_examples, found_knock_on = changes.setdefault(key, ([], []))
            found_examples.extend(examples)
            found_knock_on.extend(knock_on)
        total.old_hits.update(part["old_hits"])
        total.new_hits.update(part["new_hits"])
        total.compared = total.compared or part["compared"]
    for day, (_first, items) in sorted(money.items(), key=lambda item: item[1][0]):
        table = total.day_money[day]
        for _seen, _at, item, amount in sorted(items, key=lambda entry: entry[:2]):
            table[item] += amount
    for rule, found in overlap.items():
        counter = total.overlap[rule]
        for _first, _at, other, count in sorted(found):
            counter[other] += count
    for key, (examples, knock_on) in changes.items():
        total.changes[key].examples = [event_id for _seq, event_id in sorted(examples)[:_MAX_EXAMPLES]]
        total.changes[key].knock_on_examples = [
            event_id for _seq, event_id in sorted(knock_on)[:_MAX_EXAMPLES]
        ]


def _add_stats(total: RuleStats, part: RuleStats) -> None:
    for field in dataclasses.fields(RuleStats):
        value = getattr(part, field.name)
        if isinstance(value, int):
            setattr(total, field.name, getattr(total, field.name) + value)
        else:
            add_money(getattr(total, field.name), value)
