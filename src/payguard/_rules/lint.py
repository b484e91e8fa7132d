"""Conditions that can never be true: a rule that loads but can never fire is a silent bug.

The condition is expanded into its alternatives (negations pushed to the leaves, ``any`` adds, ``all``
multiplies) and each alternative's tests on one field are intersected: two ranges that do not overlap
("after 22:00 and before 06:00" written as one range), ``eq`` to two values, two different enum values under
``all``, a threshold outside the values a feature can take. Tests under a negation only narrow a field that
another test of the alternative requires to be present, since a negated test is true when it is absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .conditions import AllOf, AnyOf, Compare, Condition, Exists, InSet, Leaf, Not, Pred, push_negations
from .fields import FieldSpec, Kind

__all__ = ["Finding", "never_true"]

# more alternatives than this are not expanded (the loader refuses rules far below it anyway)
_MAX_EXPANSION = 512
_Literal = Leaf | Not


@dataclass(frozen=True)
class Finding:
    """A condition that can never be true: the tests involved and why."""

    leaves: tuple[Leaf, ...]
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return self.message + self.hint


@dataclass
class _Domain:
    """What one alternative allows for one field, while present."""

    spec: FieldSpec
    low: float = -math.inf
    low_open: bool = False
    high: float = math.inf
    high_open: bool = False
    allowed: set[Any] | None = None
    excluded: set[Any] = field(default_factory=set)
    present: bool = False
    absent: bool = False

    def below(self, value: float, inclusive: bool) -> None:
        if value < self.high or (value == self.high and not inclusive):
            self.high, self.high_open = value, not inclusive

    def above(self, value: float, inclusive: bool) -> None:
        if value > self.low or (value == self.low and not inclusive):
            self.low, self.low_open = value, not inclusive

    def allow(self, values: set[Any]) -> None:
        self.allowed = set(values) if self.allowed is None else self.allowed & values

    def empty(self) -> bool:
        if self.absent:
            return self.present
        if not self.present:
            return False
        low, high = self.low, self.high
        spec_low, spec_high = self.spec.bounds
        if spec_low is not None and spec_low > low:
            low, low_open = spec_low, False
        else:
            low_open = self.low_open
        if spec_high is not None and spec_high < high:
            high, high_open = spec_high, False
        else:
            high_open = self.high_open
        if self.allowed is None and self.spec.kind is Kind.BOOL:
            self.allowed = {True, False}
        if self.allowed is None and self.spec.kind is Kind.ENUM:
            self.allowed = set(self.spec.values)
        if self.allowed is not None:
            return not any(
                value not in self.excluded and _inside(value, low, low_open, high, high_open)
                for value in self.allowed
            )
        if self.spec.kind in (Kind.INT, Kind.MONEY) and math.isfinite(low) and math.isfinite(high):
            # whole numbers (money in minor units): gt 5 and lt 6 leave nothing
            first = math.floor(low) + 1 if low_open or low != math.floor(low) else low
            last = math.ceil(high) - 1 if high_open or high != math.ceil(high) else high
            return first > last or (first == last and first in self.excluded)
        return low > high or (low == high and (low_open or high_open or low in self.excluded))


def _inside(value: Any, low: float, low_open: bool, high: float, high_open: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    above = value > low or (value == low and not low_open)
    below = value < high or (value == high and not high_open)
    return above and below


def _alternatives(node: Condition) -> list[list[_Literal]] | None:
    """The conjunctions of literals ``node`` (in negation normal form) is the disjunction of."""
    if isinstance(node, AllOf):
        result: list[list[_Literal]] = [[]]
        for child in node.children:
            expanded = _alternatives(child)
            if expanded is None or len(result) * len(expanded) > _MAX_EXPANSION:
                return None
            result = [[*left, *right] for left in result for right in expanded]
        return result
    if isinstance(node, AnyOf):
        result = []
        for child in node.children:
            expanded = _alternatives(child)
            if expanded is None or len(result) + len(expanded) > _MAX_EXPANSION:
                return None
            result += expanded
        return result
    return [[node]]


def _narrow(domain: _Domain, literal: _Literal) -> None:
    """Apply one literal to its field's domain."""
    negated = isinstance(literal, Not)
    leaf = literal.child if isinstance(literal, Not) else literal
    if isinstance(leaf, Exists):  # negations of Exists were pushed into it
        if leaf.present:
            domain.present = True
        else:
            domain.absent = True
        return
    if not negated:
        domain.present = True  # every other test is false on an absent field
    if isinstance(leaf, Compare):
        if negated and leaf.currency is not None:
            return  # true for another currency: it narrows nothing
        op = _NEGATED[leaf.op] if negated else leaf.op
        value = leaf.value
        if op == "eq":
            domain.allow({value})
        elif op == "ne":
            domain.excluded.add(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if op in ("lt", "lte"):
                domain.below(value, op == "lte")
            else:
                domain.above(value, op == "gte")
    elif isinstance(leaf, InSet):
        if leaf.negate != negated:
            domain.excluded.update(leaf.values)
        else:
            domain.allow(set(leaf.values))
    elif isinstance(leaf, Pred) and leaf.kind in ("set_in", "set_not_in") and isinstance(leaf.arg, tuple):
        if (leaf.kind == "set_not_in") != negated:
            domain.excluded.update(leaf.arg)
        else:
            domain.allow(set(leaf.arg))


_NEGATED = {"eq": "ne", "ne": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


def _describe(literal: _Literal) -> str:
    if isinstance(literal, Not):
        return f"not ({_describe(_leaf(literal))})"
    if isinstance(literal, Compare):
        value = literal.value
        shown = f"{value} (minor units of {literal.currency})" if literal.currency else repr(value)
        return f"{literal.op} {shown}"
    if isinstance(literal, InSet):
        return f"{'not_in' if literal.negate else 'in'} {list(literal.values)}"
    if isinstance(literal, Exists):
        return f"exists {str(literal.present).lower()}"
    return f"{literal.kind} {literal.arg!r}"


def _leaf(literal: _Literal) -> Leaf:
    child = literal.child if isinstance(literal, Not) else literal
    assert not isinstance(child, AllOf | AnyOf | Not)
    return child


def never_true(condition: Condition, spec_of: Callable[[str], FieldSpec]) -> list[Finding]:
    """The contradictions in ``condition``, one per field and set of tests; the last finding says so when
    no alternative of the condition can ever be true."""
    alternatives = _alternatives(push_negations(condition))
    if alternatives is None:
        return []
    findings: dict[tuple[int, ...], Finding] = {}  # by the identities of the tests involved
    dead = 0
    for alternative in alternatives:
        by_field: dict[str, list[_Literal]] = {}
        for literal in alternative:
            by_field.setdefault(_leaf(literal).field, []).append(literal)
        contradicted = False
        for name, literals in by_field.items():
            spec = spec_of(name)
            domain = _Domain(spec)
            for literal in literals:
                _narrow(domain, literal)
            if not domain.empty():
                continue
            contradicted = True
            involved = tuple(_leaf(literal) for literal in literals)
            key = tuple(id(leaf) for leaf in involved)
            if key not in findings:
                findings[key] = Finding(involved, *_message(spec, literals))
        dead += contradicted
    result = list(findings.values())
    if result and dead == len(alternatives):
        last = result[-1]
        result[-1] = Finding(last.leaves, last.message + ": the rule can never fire", last.hint)
    return result


def _message(spec: FieldSpec, literals: list[_Literal]) -> tuple[str, str]:
    tests = " and ".join(_describe(literal) for literal in literals)
    low, high = spec.bounds
    if len(literals) == 1 and (low is not None or high is not None):
        span = f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
        return f"{spec.name} {tests} is outside the values it can take ({span})", ""
    hint = ""
    if spec.name == "local_hour":
        hint = " (hours across midnight are any: [{local_hour: {gte: 22}}, {local_hour: {lt: 6}}])"
    return f"{spec.name}: {tests} can never all hold", hint


def positions_of(findings: list[Finding], where: Mapping[int, tuple[int, int]]) -> list[tuple[int, int]]:
    """Where to report each finding: at its last test (by position) that the parser placed."""
    result = []
    for finding in findings:
        placed = [where[id(leaf)] for leaf in finding.leaves if id(leaf) in where]
        result.append(max(placed) if placed else (1, 1))
    return result
