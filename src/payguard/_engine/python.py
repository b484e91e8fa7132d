"""The Python matcher: a rule set compiled to one generated Python function.

It is the reference for the semantics in ``_rules.conditions`` and the oracle the durable engine is tested
against; it is also the fastest engine, and the one used where durable-rules cannot be imported.
Constants are passed through the function's namespace, never pasted into its source, so no rule text can
inject code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._event import Event
from .._rules.conditions import AllOf, AnyOf, Compare, Condition, Exists, InSet, Not, Pred
from .fact import CURRENCY_KEY, Fact, Plan

__all__ = ["EventMatch", "PythonMatcher"]

# (event, features, current named lists, money in minor units) -> indices of the rules that matched
EventMatch = Callable[[Event, Mapping[str, Any], Mapping[str, frozenset[str]], Mapping[str, int]], list[int]]

_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _Source:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.constants: dict[str, Any] = {}
        # one name per distinct constant, so that equal conditions read the same and can be shared
        self._names: dict[tuple[type, Any], str] = {}

    def const(self, value: Any) -> str:
        key = (type(value), value)  # 1, 1.0 and True are equal keys of a dict, but not the same constant
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"C{len(self.constants)}"
            self.constants[name] = value
        return name

    def conjuncts(self, node: Condition) -> list[str]:
        """The expressions all of which ``node`` requires, in the order they are written."""
        if isinstance(node, AllOf):
            return [text for child in node.children for text in self.conjuncts(child)]
        return [self.expr(node)]

    def rules(self, rules: list[tuple[int, list[str]]], indent: str, lines: list[str]) -> None:
        """Statements appending the index of each rule whose conjuncts all hold, in rule order.

        Consecutive rules that start with the same condition test it once: most rules of a rule set begin
        with the same event type, and many then with the same feature (``is_new_payee``). Conditions have no
        side effects, so testing a shared one once changes nothing but the time.
        """
        at = 0
        while at < len(rules):
            index, conditions = rules[at]
            if not conditions:  # everything it requires was tested by the enclosing blocks
                lines.append(f"{indent}hits.append({index})")
                at += 1
                continue
            end = at + 1
            while end < len(rules) and rules[end][1][:1] == conditions[:1]:
                end += 1
            if end - at == 1:
                lines.append(f"{indent}if {' and '.join(conditions)}: hits.append({index})")
            else:
                lines.append(f"{indent}if {conditions[0]}:")
                self.rules([(i, c[1:]) for i, c in rules[at:end]], indent + "    ", lines)
            at = end

    def expr(self, node: Condition) -> str:
        if isinstance(node, AllOf):
            return "(" + " and ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, AnyOf):
            return "(" + " or ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child)})"
        var = "v_" + self.plan.key(node)
        if isinstance(node, Compare):
            text = f"({var} is not None and {var} {_OPS[node.op]} {self.const(node.value)}"
            if node.currency is not None:
                text += f" and ccy == {self.const(node.currency)}"
            return text + ")"
        if isinstance(node, InSet):
            members = self.const(frozenset(node.values))
            return (
                f"({var} is not None and {var} not in {members})" if node.negate else f"({var} in {members})"
            )
        if isinstance(node, Exists):
            return f"({var} is not None)" if node.present else f"({var} is None)"
        assert isinstance(node, Pred)
        return f"({var} is True)"


class PythonMatcher:
    """Matches a fact against every rule of a plan; returns the indices of the rules that matched.

    Two functions are generated from the same rule conditions: ``match`` reads a ready fact (the oracle
    the durable engine is tested against), ``match_event`` computes the fact's values from the event
    straight into local variables and tests the rules on them, without building the fact's dict.
    """

    name = "python"

    def __init__(self, plan: Plan) -> None:
        source = _Source(plan)
        keys = [*plan.columns.values(), *plan.predicates.values()]
        rules = ["    hits = []"]
        source.rules([(index, source.conjuncts(c)) for index, c in plan.conditions()], "    ", rules)
        rules.append("    return hits")
        reads = [f"    v_{key} = f.get({key!r})" for key in keys]
        lines = ["def match(f):", *reads, f"    ccy = f.get({CURRENCY_KEY!r})", *rules]
        values, namespace = plan.source(into_fact=False)
        lines += ["def match_event(event, features, lists, minor):", *values, *rules]
        namespace.update(source.constants)
        exec(compile("\n".join(lines), f"<payguard rules {plan.ruleset.id}>", "exec"), namespace)  # noqa: S102
        self._match: Callable[[Fact], list[int]] = namespace["match"]
        self.match_event: EventMatch = namespace["match_event"]
        self.source = "\n".join(lines)

    def match(self, fact: Fact) -> list[int]:
        return self._match(fact)
