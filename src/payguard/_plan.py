"""The fact: the flat dict both engines match, built once per event from the event and its features.

A rule set is compiled into a ``Plan`` that knows which fields and features its rules read. Each field a
rule compares gets a short key (``f0``, ``f1``...), each predicate a key ``p0``, ``p1``... Values in the fact
are only ``str``, ``bool``, ``int`` (money in minor units) and finite ``float``: the types durable_rules
compares correctly. A field the event does not have is simply absent from the fact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import re2

from ._conditions import Compare, Condition, Exists, InSet, Pred, leaves
from ._errors import FieldError, InvalidEventError
from ._event import Event
from ._fields import FieldSpec, Kind
from ._money import to_minor_units
from ._rulefile import RuleSet
from ._text import normalize_account, normalize_text

__all__ = ["CURRENCY_KEY", "Plan"]

CURRENCY_KEY = "ccy"

Fact = dict[str, Any]


@dataclass(frozen=True)
class _Column:
    key: str
    spec: FieldSpec


def _pred_function(pred: Pred, ruleset: RuleSet) -> Callable[[Any, Mapping[str, frozenset[str]]], bool]:
    """A function of (raw field value, current named lists) computing ``pred``."""
    kind, arg = pred.kind, pred.arg
    if kind == "matches":
        pattern = re2.compile(str(arg))
        return lambda v, _lists: v is not None and pattern.search(v) is not None
    if kind == "contains_any":
        assert isinstance(arg, tuple)
        phrases = tuple(p for name in arg for p in ruleset.keyword_sets[str(name)])
        return lambda v, _lists: v is not None and any(p in normalize_text(v) for p in phrases)
    if kind == "in_list":
        assert isinstance(arg, tuple)
        names = tuple(str(n) for n in arg)
        return lambda v, lists: v is not None and any(normalize_account(v) in lists[n] for n in names)
    if kind in ("set_in", "set_not_in"):
        assert isinstance(arg, tuple)
        members = frozenset(arg)
        if kind == "set_in":
            return lambda v, _lists: v is not None and v in members
        return lambda v, _lists: v is not None and v not in members
    if kind == "list_exists":
        want = bool(arg)
        return lambda v, _lists: bool(v) == want
    assert isinstance(arg, tuple)
    wanted = frozenset(arg)
    if kind in ("list_eq", "list_in"):
        return lambda v, _lists: bool(v) and not wanted.isdisjoint(v)
    if kind == "list_not_in":
        return lambda v, _lists: wanted.isdisjoint(v or ())
    raise AssertionError(kind)  # pragma: no cover - the loader only builds the kinds above


def _fits(kind: Kind, value: Any) -> bool:
    """Whether an attribute value has the type the rule set declared for it."""
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Kind.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


class Plan:
    """What the rules of a rule set read, and how to build their fact for one event."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.columns: dict[str, str] = {}
        self.predicates: dict[Pred, str] = {}
        self.uses_currency = False
        reads: set[str] = set()
        for rule in ruleset.rules:
            for leaf in leaves(rule.condition):
                reads.add(leaf.field)
                if isinstance(leaf, Pred):
                    self.predicates.setdefault(leaf, f"p{len(self.predicates)}")
                else:
                    self.columns.setdefault(leaf.field, f"f{len(self.columns)}")
                    if isinstance(leaf, Compare) and leaf.currency is not None:
                        self.uses_currency = True
        self.reads = frozenset(reads)
        specs = {name: ruleset.field_spec(name) for name in reads}
        self.features = frozenset(name for name, spec in specs.items() if spec.is_feature)
        self._columns = [_Column(key, specs[name]) for name, key in self.columns.items()]
        self._predicates = [
            (key, pred.field, specs[pred.field], _pred_function(pred, ruleset))
            for pred, key in self.predicates.items()
        ]

    def key(self, leaf: Compare | InSet | Exists | Pred) -> str:
        """The fact key a leaf reads."""
        if isinstance(leaf, Pred):
            return self.predicates[leaf]
        return self.columns[leaf.field]

    def field_value(self, spec: FieldSpec, event: Event, features: Mapping[str, Any]) -> Any:
        if spec.is_feature:
            return features.get(spec.name)
        assert spec.getter is not None
        value = spec.getter(event)
        if value is not None and spec.name.startswith("attributes.") and not _fits(spec.kind, value):
            raise InvalidEventError(
                [
                    FieldError(
                        spec.name, f"the rule set declares it {spec.kind.value}, got {type(value).__name__}"
                    )
                ],
                event.id,
            )
        return value

    def fact(self, event: Event, features: Mapping[str, Any], lists: Mapping[str, frozenset[str]]) -> Fact:
        """The fact for ``event``: column values converted to engine-safe types, then predicates."""
        fact: Fact = {}
        currency = event.currency
        if self.uses_currency and currency is not None:
            fact[CURRENCY_KEY] = currency
        for column in self._columns:
            value = self.field_value(column.spec, event, features)
            if value is None:
                continue
            kind = column.spec.kind
            if kind is Kind.MONEY:
                if currency is None:
                    continue
                value = to_minor_units(value if isinstance(value, Decimal) else Decimal(value), currency)
            elif kind is Kind.FLOAT or (kind is Kind.INT and isinstance(value, float)):
                if not math.isfinite(value):
                    continue
                value = float(value) if kind is Kind.FLOAT else value
            fact[column.key] = value
        for key, _name, spec, function in self._predicates:
            fact[key] = function(self.field_value(spec, event, features), lists)
        return fact

    def conditions(self) -> list[tuple[int, Condition]]:
        return [(index, rule.condition) for index, rule in enumerate(self.ruleset.rules)]
