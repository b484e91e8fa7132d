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
from typing import Any, Final

import re2

from .._common.cache import remember
from .._common.money import checked_minor_units, to_minor_units
from .._common.text import normalize_account
from .._event import Event
from .._rules.conditions import Compare, Condition, Exists, InSet, Pred, leaves
from .._rules.fields import FieldSpec, Kind
from .._rules.fx import rescale, scales
from .._rules.model import RuleSet

__all__ = ["CURRENCY_KEY", "Plan"]

CURRENCY_KEY: Final = "ccy"

Fact = dict[str, Any]
_NO_MINOR: Final[dict[str, int]] = {}

# How a feature's value enters the fact.
_AS_IS: Final = 0
_FINITE_FLOAT: Final = 1
_FINITE_INT: Final = 2
_MONEY: Final = 3
_CONVERSION: Final = {Kind.FLOAT: _FINITE_FLOAT, Kind.INT: _FINITE_INT, Kind.MONEY: _MONEY}
# the kinds whose value enters the fact only under a condition (a currency, a finite number)
_CONDITIONAL: Final = frozenset(_CONVERSION)
# the predicates that read the normalised text of their field (``RuleSet.normalize_text``)
_NORMALISED: Final = frozenset({"contains_any"})


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
    if kind == "contains_any":  # given the text already normalised (``_NORMALISED``)
        assert isinstance(arg, tuple)
        phrases = tuple(p for name in arg for p in ruleset.keyword_sets[str(name)])

        seen: dict[str, bool] = {}  # by text: memos repeat ("rent", "salary"), phrase lists are long

        def contains_any(text: Any, _lists: Mapping[str, frozenset[str]]) -> bool:
            if text is None:
                return False
            found = seen.get(text)
            if found is None:
                found = remember(seen, text, any(map(text.__contains__, phrases)))
            return found

        return contains_any
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
        # currencies compared at the header's reference rates: code -> (numerator, denominator, target)
        self.fx: dict[str, tuple[int, int, str]] = scales(ruleset) if self.uses_currency else {}
        # what each rule reads, for the audit evidence of the rules that fired
        self.rule_fields: dict[str, frozenset[str]] = {rule.id: rule.fields for rule in ruleset.rules}
        specs = {name: ruleset.field_spec(name) for name in reads}
        self.features = frozenset(name for name, spec in specs.items() if spec.is_feature)
        self._columns = [_Column(key, specs[name]) for name, key in self.columns.items()]
        # Feature columns are copied into the fact by ``fact`` itself (compiled), event fields and
        # predicates by the generated builder.
        self._feature_columns = [
            (column.spec.name, column.key, _CONVERSION.get(column.spec.kind, _AS_IS))
            for column in self._columns
            if column.spec.is_feature
        ]
        self._predicates = [
            (key, pred, specs[pred.field], _pred_function(pred, ruleset))
            for pred, key in self.predicates.items()
        ]
        self._build = self._compile()

    def key(self, leaf: Compare | InSet | Exists | Pred) -> str:
        """The fact key a leaf reads."""
        if isinstance(leaf, Pred):
            return self.predicates[leaf]
        return self.columns[leaf.field]

    def field_value(self, spec: FieldSpec, event: Event, features: Mapping[str, Any]) -> Any:
        """The raw value of a field or feature for ``event`` (as the audit evidence shows it)."""
        if spec.is_feature:
            return features.get(spec.name)
        assert spec.getter is not None
        return spec.getter(event)

    def fact(
        self,
        event: Event,
        features: Mapping[str, Any],
        lists: Mapping[str, frozenset[str]],
        minor: Mapping[str, int] | None = None,
    ) -> Fact:
        """The fact for ``event``: column values converted to engine-safe types, then predicates.

        ``minor`` holds money already in integer minor units (``FeatureEngine`` keeps the event's
        ``amount`` and its money features there), which saves converting their ``Decimal`` again.
        """
        known = _NO_MINOR if minor is None else minor
        fact = self._build(event, features, lists, known)
        currency = event.currency
        scale = self.fx.get(currency) if self.fx and currency is not None else None
        # plain dicts (as the guard passes them) read through the compiled dict operations
        values = features if isinstance(features, dict) else dict(features)
        amounts = known if isinstance(known, dict) else dict(known)
        for name, key, conversion in self._feature_columns:
            value = values.get(name)
            if value is None:
                continue
            if conversion == _AS_IS:
                fact[key] = value
            elif conversion == _FINITE_FLOAT:
                if math.isfinite(value):
                    fact[key] = float(value)
            elif conversion == _FINITE_INT:
                if type(value) is int or math.isfinite(value):
                    fact[key] = value
            elif currency is not None:  # money: kept in minor units by the feature engine, else converted
                found = amounts.get(name)
                units = (
                    checked_minor_units(found, currency)
                    if found is not None
                    else to_minor_units(value if type(value) is Decimal else Decimal(value), currency)
                )
                fact[key] = units if scale is None else rescale(units, scale[0], scale[1])
        return fact

    def _compile(
        self,
    ) -> Callable[[Event, Mapping[str, Any], Mapping[str, frozenset[str]], Mapping[str, int]], Fact]:
        """Generate the fact builder: one straight-line function per rule set, no loops over specs.

        Constants reach it through its namespace; the source holds only payguard's own identifiers.
        """
        lines, namespace = self.source(into_fact=True)
        source = ["def build(event, features, lists, minor):", "    fact = {}", *lines, "    return fact"]
        exec(compile("\n".join(source), f"<payguard fact {self.ruleset.id}>", "exec"), namespace)  # noqa: S102
        build: Callable[[Event, Mapping[str, Any], Mapping[str, frozenset[str]], Mapping[str, int]], Fact] = (
            namespace["build"]
        )
        return build

    def source(self, *, into_fact: bool) -> tuple[list[str], dict[str, Any]]:
        """The statements (indented for a function body) that compute the fact for ``event``, ``features``,
        ``lists`` and ``minor``, and the namespace they need.

        ``into_fact``: they fill the dict ``fact`` with the event's fields and the predicates (the compiled
        ``fact`` adds the feature columns). Otherwise every column and predicate lands in a local variable
        ``v_<key>`` (``None`` where the fact would not have the key), features included, and the currency in
        ``ccy``: the Python matcher reads them there without building the dict at all.
        """
        # Filled name by name: a dict built at once with more than five entries gets general keys (in
        # CPython 3.11), on which the generated code's global loads cannot be specialised.
        namespace: dict[str, Any] = {}
        namespace["to_minor_units"] = to_minor_units
        namespace["isfinite"] = math.isfinite
        namespace["Decimal"] = Decimal
        namespace["checked_minor"] = checked_minor_units
        namespace["normalize_text"] = self.ruleset.normalize_text
        namespace["FX"] = self.fx
        namespace["rescale"] = rescale
        lines = ["    currency = event.currency"]
        # the currency the rules see: the event's, or the rule set's for one compared at a reference rate
        seen = "currency"
        if self.fx:
            lines.append("    scale = FX.get(currency) if currency is not None else None")
            seen = "currency if scale is None else scale[2]"
        if into_fact:
            if self.uses_currency:
                lines += ["    if currency is not None:", f"        fact[{CURRENCY_KEY!r}] = {seen}"]
        else:
            lines.append(f"    ccy = {seen}")
            # columns assigned only under a condition start out absent
            lines += [f"    v_{c.key} = None" for c in self._columns if c.spec.kind in _CONDITIONAL]

        def target(key: str) -> str:
            return f"fact[{key!r}]" if into_fact else f"v_{key}"

        variables: dict[str, str] = {}
        parents: dict[str, str] = {}  # event.payer, event.session...: read once

        def parent(name: str) -> str:
            if name not in parents:
                parents[name] = f"e_{name}"
                lines.append(f"    e_{name} = event.{name}")
            return parents[name]

        def value_of(spec: FieldSpec) -> str:
            if spec.name in variables:
                return variables[spec.name]
            var = variables[spec.name] = f"x{len(variables)}"
            if spec.is_feature:
                lines.append(f"    {var} = features.get({spec.name!r})")
            elif spec.name.startswith("attributes."):
                name = spec.name.removeprefix("attributes.")
                lines.append(f"    {var} = event.attributes.get({name!r})")
            else:
                first, *rest = spec.name.split(".")
                if rest:
                    lines.append(f"    {var} = {parent(first)}")
                else:
                    lines.append(f"    {var} = event.{first}")
                for part in rest:
                    lines.append(f"    if {var} is not None: {var} = {var}.{part}")
                if spec.kind is Kind.ENUM and into_fact:
                    # the engines get the plain text; the Python matcher compares the member itself, a str
                    # (StrEnum) equal to its value and hashed as it
                    lines.append(f"    if {var} is not None: {var} = {var}._value_")
            return var

        for column in self._columns:
            if column.spec.is_feature and into_fact:
                continue  # filled by the compiled ``fact``
            var, key, name = value_of(column.spec), target(column.key), column.spec.name
            kind = column.spec.kind
            if kind is Kind.MONEY:
                # the amount and money features: already in minor units where the feature engine kept them
                known = f"checked_minor(minor[{name!r}], currency)"
                converted = f"to_minor_units({var} if type({var}) is Decimal else Decimal({var}), currency)"
                lines.append(f"    if {var} is not None and currency is not None:")
                lines.append(f"        {key} = {known} if {name!r} in minor else {converted}")
                if self.fx:
                    lines.append(f"        if scale is not None: {key} = rescale({key}, scale[0], scale[1])")
            elif kind is Kind.FLOAT:
                lines.append(f"    if {var} is not None and isfinite({var}): {key} = float({var})")
            elif kind is Kind.INT:
                finite = f"(type({var}) is int or isfinite({var}))"
                lines.append(f"    if {var} is not None and {finite}: {key} = {var}")
            elif into_fact:
                lines.append(f"    if {var} is not None: {key} = {var}")
            else:
                lines.append(f"    {key} = {var}")
        normalised: dict[str, str] = {}  # a text's normalised form, computed once for all its keyword sets

        def normalised_of(var: str) -> str:
            if var not in normalised:
                normalised[var] = f"n_{var}"
                lines.append(f"    n_{var} = None if {var} is None else normalize_text({var})")
            return normalised[var]

        for index, (key, pred, spec, function) in enumerate(self._predicates):
            namespace[f"P{index}"] = function
            value = value_of(spec)
            if pred.kind in _NORMALISED:
                value = normalised_of(value)
            lines.append(f"    {target(key)} = P{index}({value}, lists)")
        return lines, namespace

    def conditions(self) -> list[tuple[int, Condition]]:
        return [(index, rule.condition) for index, rule in enumerate(self.ruleset.rules)]
