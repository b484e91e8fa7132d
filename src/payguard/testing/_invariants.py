"""Invariants checked with hypothesis: "any event satisfying WHEN gets at least (or at most) ACTION".

The invariant's condition is compiled into the rule set as one more shadow rule, so "the event satisfies
the condition" is decided by the same engine and the same features as the rules themselves. Events are
drawn from a strategy biased towards the condition: the values its tests compare with, the phrases of its
keyword sets, the entries of its lists, and a short history of earlier payments (some to the same payee).
``hypothesis.find`` then searches for an event that satisfies the condition and breaks the bound, and
shrinks it to a minimal counterexample.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from .._common.money import currency_exponent
from .._decision import Action
from .._errors import RuleFileError
from .._event import EventType
from .._guard import Guard
from .._io.base import set_path
from .._rules.conditions import AllOf, AnyOf, Compare, Condition, Exists, InSet, Not, Pred
from .._rules.fields import EVENT_FIELDS, Kind
from .._rules.model import Rule, RuleSet
from .._rules.parser import parse_condition
from ._runner import CaseResult, Invariant
from .strategies import events as event_strategy

__all__ = ["check_invariant"]

INVARIANT_RULE = "payguard.invariant"
ABSENT = object()  # a hint that removes the field from the event
# Offsets that satisfy each comparison (in hundredths of the unit for money, in units otherwise).
_STEPS = {
    "eq": (0,),
    "ne": (1, -1),
    "gt": (1, 100, 10000),
    "gte": (0, 1, 100),
    "lt": (-1, -100, -10000),
    "lte": (0, -1, -100),
}
_START = datetime.fromisoformat("2026-03-02T10:00:00+08:00")


def _set(event: dict[str, Any], dotted: str, value: Any) -> None:
    if value is ABSENT:
        *parents, leaf = dotted.split(".")
        target = event
        for part in parents:
            target = target.get(part) or {}
        target.pop(leaf, None)
    else:
        set_path(event, dotted, value)


def _money(minor: int, currency: str, step: int) -> str:
    return str(Decimal(max(minor + step, 1)).scaleb(-currency_exponent(currency)))


def _polar_leaves(node: Condition, positive: bool = True) -> Iterator[tuple[Any, bool]]:
    """Each leaf with whether the condition wants it true (``False`` under an odd number of ``not``)."""
    if isinstance(node, AllOf | AnyOf):
        for child in node.children:
            yield from _polar_leaves(child, positive)
    elif isinstance(node, Not):
        yield from _polar_leaves(node.child, not positive)
    else:
        yield node, positive


def _hints(
    condition: Condition, ruleset: RuleSet, lists: Mapping[str, tuple[str, ...]]
) -> dict[str, list[Any]]:
    """Values worth trying for each event field the condition reads (none for the tests it wants false,
    except booleans, which get the other value)."""
    hints: dict[str, list[Any]] = {}
    for leaf, positive in _polar_leaves(condition):
        name = leaf.field
        if not positive:
            if isinstance(leaf, Compare) and isinstance(leaf.value, bool) and leaf.op == "eq":
                hints.setdefault(name, []).append(not leaf.value)
            elif isinstance(leaf, Exists) and leaf.present and name in EVENT_FIELDS:
                hints.setdefault(name, []).append(ABSENT)
            continue
        if name not in EVENT_FIELDS and not name.startswith("attributes."):
            continue
        found = hints.setdefault(name, [])
        spec = ruleset.field_spec(name)
        if isinstance(leaf, Compare):
            if isinstance(leaf.value, int | float) and not isinstance(leaf.value, bool):
                # values that pass the test, the boundary included where it passes
                steps = _STEPS[leaf.op]
                if spec.kind is Kind.MONEY and isinstance(leaf.value, int):
                    currency = leaf.currency or ruleset.currency or "CNY"
                    unit = 10 ** currency_exponent(currency)
                    found += [_money(leaf.value, currency, step * unit // 100 or step) for step in steps]
                else:
                    found += [leaf.value + step for step in steps]
            else:
                found.append(leaf.value)
        elif isinstance(leaf, InSet):
            found += list(leaf.values)
        elif isinstance(leaf, Pred):
            if leaf.kind == "contains_any" and isinstance(leaf.arg, tuple):
                found += [f"请 {p} now" for name_ in leaf.arg for p in ruleset.keyword_sets[str(name_)]]
            elif leaf.kind == "in_list" and isinstance(leaf.arg, tuple):
                for list_name in leaf.arg:
                    found += list(lists.get(str(list_name), ())) or sorted(
                        ruleset.lists.get(str(list_name), ())
                    )
            elif leaf.kind in ("set_in", "set_not_in") and isinstance(leaf.arg, tuple):
                found += list(leaf.arg)[:50]
            elif leaf.kind.startswith("list_") and isinstance(leaf.arg, tuple):
                found += [[str(v)] for v in leaf.arg]
        elif isinstance(leaf, Exists) and spec.kind is Kind.BOOL:
            found += [True, False]
    return {name: values for name, values in hints.items() if values}


@st.composite
def _scenario(
    draw: st.DrawFn, hints: dict[str, list[Any]], defaults: Mapping[str, Any], currency: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A short history and one event, biased towards the condition's values."""
    payer = (
        str(defaults.get("payer", {}).get("account", "P-000001"))
        if isinstance(defaults.get("payer"), dict)
        else "P-1"
    )
    payees = ["Q-1", "Q-2", "Q-3"]
    event = draw(
        event_strategy(
            payers=[payer],
            payees=payees,
            currency=currency,
            start=_START,
            end=_START + timedelta(days=2),
            types=[t.value for t in EventType if t.value in ("transfer_out",)],
        )
    )
    for name, values in hints.items():
        if draw(st.integers(0, 9)) < 8:
            _set(event, name, draw(st.sampled_from(values)))
    if event.get("payee") is not None and "type" not in event["payee"]:
        event["payee"]["type"] = draw(st.sampled_from(["personal", "business", "merchant"]))
    # Earlier payments, often to this very payee, so that "known payee" conditions can hold.
    payee = event.get("payee", {}).get("account") if isinstance(event.get("payee"), dict) else None
    history = []
    for n in range(draw(st.integers(0, 4))):
        past = {
            "id": f"history-{n}",
            "timestamp": (_START - timedelta(days=draw(st.integers(1, 90)))).isoformat(),
            "amount": draw(st.sampled_from(["50.00", "500.00", "5000.00"])),
            "currency": currency,
            "payer": {"account": payer},
            "payee": {"account": draw(st.sampled_from([payee] * 3 + payees if payee else payees))},
        }
        history.append(past)
    return history, event


def check_invariant(
    invariant: Invariant, ruleset: RuleSet, defaults: Mapping[str, Any], examples: int, engine: str = "auto"
) -> CaseResult:
    """Search ``examples`` generated events for one that satisfies the invariant and breaks its bound."""
    result = CaseResult(invariant.name, invariant.path, invariant.line, "passed", kind="invariant")
    where = f"{invariant.path}:{invariant.line}"
    try:
        condition = parse_condition(ruleset, invariant.when, where)
    except RuleFileError as exc:
        result.status, result.message = "failed", f"{where}: invalid condition: {exc}"
        return result
    probe = Rule(INVARIANT_RULE, "invariant condition", Action.ALLOW, "invariant", condition, shadow=True)
    extended = dataclasses.replace(ruleset, rules=(*ruleset.rules, probe))
    currency = ruleset.currency or "CNY"
    strategy = _scenario(_hints(condition, ruleset, invariant.lists), defaults, currency)
    satisfied = 0

    def breaks(scenario: tuple[list[dict[str, Any]], dict[str, Any]]) -> bool:
        nonlocal satisfied
        history, event = scenario
        guard = Guard(extended, engine=engine, on_error="raise", max_future=None)
        for name, entries in invariant.lists.items():
            guard.set_list(name, entries)
        guard.record(history)
        decision = guard.evaluate(event)
        result.fired |= {h.rule_id for h in decision.hits}
        if not any(h.rule_id == INVARIANT_RULE for h in decision.shadow_hits):
            return False
        satisfied += 1
        low, high = invariant.at_least, invariant.at_most
        return (low is not None and decision.action < low) or (high is not None and decision.action > high)

    try:
        history, event = find(
            strategy,
            breaks,
            settings=settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except (NoSuchExample, Unsatisfiable):
        if satisfied == 0:
            result.status = "failed"
            result.message = f"{where}: no generated event satisfied the condition in {examples} examples"
        else:
            result.message = (
                f"{satisfied} of {examples} generated events satisfied the condition; none broke it"
            )
        return result
    guard = Guard(extended, engine=engine, on_error="raise", max_future=None)
    for name, entries in invariant.lists.items():
        guard.set_list(name, entries)
    guard.record(history)
    decision = guard.evaluate(event)
    low, high = invariant.at_least, invariant.at_most
    bound = f"at least {low.value}" if low is not None else f"at most {high.value if high else ''}"
    hits = ", ".join(f"{h.rule_id} ({h.effect})" for h in decision.hits) or "none"
    result.status = "failed"
    result.message = (
        f"{where}: invariant broken: expected {bound}, got {decision.action.value} (hits: {hits})\n"
        f"  counterexample event: {json.dumps(event, ensure_ascii=False)}\n"
        f"  after history: {json.dumps(history, ensure_ascii=False)}"
    )
    return result
