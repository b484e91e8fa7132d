"""Explain one decision exactly as a replay made it: the events before it are replayed (decided in event-time
order, stops counted), streamed, and the event's fields, features, hits with their evidence and, for a rule
that did not fire, each of its conditions with the event's value and whether it held."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._decision import Decision
from ._engine.fact import CURRENCY_KEY, Plan
from ._errors import PayguardError
from ._event import Event
from ._guard import Guard
from ._io.base import Record
from ._replay import ReplaySummary, replay
from ._rules.conditions import AllOf, AnyOf, Compare, Condition, Exists, InSet, Not, Pred
from ._rules.model import Rule
from ._rules.parser import suggest

__all__ = ["Check", "Explanation", "NoSuchEventError", "explain", "render"]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class NoSuchEventError(PayguardError):
    """The file holds no event to explain (or none with the id asked for)."""


@dataclass(frozen=True)
class Check:
    """One condition of a rule, evaluated on the event: a test (with the event's value) or a group."""

    text: str
    held: bool
    depth: int
    value: Any = None
    is_group: bool = False
    note: str = ""


@dataclass
class Explanation:
    """The decision replay made for one event, and what it read."""

    record: Record
    event: Event
    decision: Decision
    summary: ReplaySummary
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    why_not: tuple[Rule, list[Check]] | None = None


def explain(
    files: list[str],
    guard: Guard,
    event_id: str | None,
    *,
    fmt: str | None = None,
    mapping: str | None = None,
    history: list[str] | None = None,
    why_not: str | None = None,
) -> Explanation:
    """Replay ``files`` through ``guard`` up to the event ``event_id`` (default: the last one) and explain
    its decision. Raises ``NoSuchEventError``, or ``PayguardError`` when ``why_not`` names no rule."""
    rule = None
    if why_not is not None:
        rule = guard.rules.rule(why_not)
        if rule is None:
            close = suggest(why_not, [r.id for r in guard.rules.rules])
            raise PayguardError(
                f"--why-not {why_not!r}: the rule set {guard.rules.id!r} has no such rule"
                + (f" (did you mean {close!r}?)" if close else "")
            )
    seen: list[tuple[Record, Event, Decision]] = []

    def observe(record: Record, event: Event, decision: Decision, _old: Decision | None) -> None:
        if event_id is None or event.id == event_id:
            seen[:] = [(record, event, decision)]  # only the one explained is kept: memory stays bounded

    summary = replay(files, guard, fmt=fmt, mapping=mapping, history=history, observe=observe, until=event_id)
    if not seen:
        which = "no event" if event_id is None else f"no event with id {event_id!r}"
        raise NoSuchEventError(f"{', '.join(files)}: {which} (rejected records: {summary.rejected})")
    record, event, decision = seen[0]
    plan = guard.pipeline.plan
    evidence = {
        hit.rule_id: {
            name: plan.field_value(guard.rules.field_spec(name), event, decision.features)
            for name in sorted(plan.rule_fields.get(hit.rule_id, frozenset()))
        }
        for hit in (*decision.hits, *decision.shadow_hits)
    }
    explanation = Explanation(record, event, decision, summary, evidence)
    if rule is not None:
        fact = plan.fact(event, decision.features, guard.lists)
        explanation.why_not = (rule, list(_checks(rule.condition, plan, event, decision, fact, 1)))
    return explanation


def _checks(  # noqa: PLR0917 (a private helper of explain)
    node: Condition, plan: Plan, event: Event, decision: Decision, fact: dict[str, Any], depth: int
) -> Iterator[Check]:
    """The checks of ``node`` depth first, each group before its children."""
    if isinstance(node, AllOf | AnyOf | Not):
        children = node.children if isinstance(node, AllOf | AnyOf) else (node.child,)
        inner = [list(_checks(child, plan, event, decision, fact, depth + 1)) for child in children]
        results = [checks[0].held for checks in inner]
        held = all(results) if isinstance(node, AllOf) else any(results)
        name = "all" if isinstance(node, AllOf) else "any" if isinstance(node, AnyOf) else "not"
        if isinstance(node, Not):
            held = not results[0]
        yield Check(name, held, depth, is_group=True)
        for checks in inner:
            yield from checks
        return
    spec = plan.ruleset.field_spec(node.field)
    value = plan.field_value(spec, event, decision.features)
    raw = fact.get(plan.key(node))
    note = ""
    if isinstance(node, Compare):
        held = raw is not None and _COMPARE[node.op](raw, node.value)
        shown: Any = node.value
        if node.currency is not None:
            shown = f"{_major(node.value, node.currency)} {node.currency}"
            if fact.get(CURRENCY_KEY) != node.currency and raw is not None:
                held = False
                note = f"the event is in {event.currency}: a test in {node.currency} cannot apply"
            elif event.currency != node.currency and raw is not None:
                converted = f"{_major(raw, node.currency)} {node.currency}"
                note = f"{value} {event.currency} is {converted} at the reference rate"
        text = f"{node.field} {node.op} {shown}"
    elif isinstance(node, InSet):
        held = raw is not None and (raw not in node.values if node.negate else raw in node.values)
        text = f"{node.field} {'not_in' if node.negate else 'in'} {list(node.values)}"
    elif isinstance(node, Exists):
        held = (raw is not None) == node.present
        text = f"{node.field} exists {str(node.present).lower()}"
    else:
        assert isinstance(node, Pred)
        held = raw is True
        text = f"{node.field} {_PRED_NAMES.get(node.kind, node.kind)} {_arg(node.arg)}"
    if value is None and not isinstance(node, Exists):
        note = note or "the event has no value: a test on an absent field is false"
    yield Check(text, held, depth, value, note=note)


_PRED_NAMES = {
    "set_in": "in",
    "set_not_in": "not_in",
    "list_eq": "eq",
    "list_in": "in",
    "list_not_in": "not_in",
    "list_exists": "exists",
}


def _arg(arg: Any) -> str:
    if isinstance(arg, tuple):
        return str(list(arg)) if len(arg) != 1 else repr(arg[0])
    return repr(arg) if not isinstance(arg, bool) else str(arg).lower()


def _major(minor: Any, currency: str) -> str:
    from ._common.money import currency_exponent

    exponent = currency_exponent(currency)
    return f"{int(minor) / 10**exponent:.{exponent}f}"


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), data


def render(explanation: Explanation, *, scored: bool) -> list[str]:
    """The explanation as ``payguard explain`` prints it."""
    decision, event, summary = explanation.decision, explanation.event, explanation.summary
    score = f" (score {decision.score})" if scored else ""
    stops = sum(summary.actions[a] for a in ("hold", "interrupt"))
    before = summary.evaluated - 1
    lines = [
        f"event {decision.event_id} ({explanation.record.where}) -> {decision.action.value}{score}",
        (
            f"after {summary.history:,} history records and {before:,} events decided before it as replay "
            f"decides them ({stops - decision.stopped:,} of them stopped)"
        ),
        "event:",
    ]
    fields = event.model_dump(mode="json", exclude_none=True)
    for name, value in _flatten(fields):
        if value not in ({}, [], ()):
            lines.append(f"  {name:<36} {value}")
    lines.append("features:")
    lines += [f"  {name:<36} {value}" for name, value in sorted(decision.features.items())]
    lines.append("hits:" if decision.hits or decision.shadow_hits else "hits: none")
    for hit, shadow in [*((h, False) for h in decision.hits), *((h, True) for h in decision.shadow_hits)]:
        lines.append(f"  {hit.rule_id:<36} {hit.effect:<18} {'(shadow) ' if shadow else ''}{hit.reason}")
        reads = explanation.evidence.get(hit.rule_id, {})
        if reads:
            lines.append("      evidence: " + ", ".join(f"{k}={v}" for k, v in reads.items()))
    for rule_id in decision.snoozed:
        lines.append(f"  {rule_id:<36} {'snoozed':<18} (matched, kept from firing by a snooze)")
    if explanation.why_not is not None:
        rule, checks = explanation.why_not
        fired = rule.id in decision.rule_ids or any(h.rule_id == rule.id for h in decision.shadow_hits)
        outcome = "fired" if fired else "snoozed" if rule.id in decision.snoozed else "did not fire"
        lines.append(f"why not {rule.id} ({rule.path}:{rule.line}): {outcome}")
        for check in checks:
            indent = "  " * check.depth
            mark = "yes" if check.held else "NO "
            if check.is_group:
                lines.append(f"  {mark} {indent}{check.text}:")
                continue
            value = "(absent)" if check.value is None else check.value
            note = f"  [{check.note}]" if check.note else ""
            lines.append(f"  {mark} {(indent + check.text):<48} event: {value}{note}")
    return lines
