"""The adapter to durable_rules. No other module imports ``durable_rules_engine``.

durable-rules 2.0.28 is used only as a single-fact matcher through its C core (see
``docs/durable_rules.md`` §7.2): no ``Host``, no Python actions, no timers, no events. For each
evaluation one fact is asserted in a fixed session under a lock, every activation is drained, and the fact is
retracted. What the C core mishandles never reaches it:

- every rule starts with the positive discriminator ``t == "tx"``, so negative-only rules cannot loop;
- facts hold only str, bool, int (money in minor units, far below int64) and finite floats (``Plan.fact``
  builds them so); a float written with an exponent but no decimal point (``1e-07``), which its parser
  refuses, is written again with one;
- regular expressions, keyword sets, named lists and long ``in`` lists are computed in Python beforehand;
- a condition expands to at most 60 alternatives, and rules are packed into chunks (separate C rulesets)
  whose alternatives add up to at most 60, below the engine's 64 simultaneous activations;
- the one fact alive at a time always has the id ``f``: ids are compared by a 32-bit hash, and a single id
  cannot collide with another (a stored fact with it, left by a failed retract, is retracted first).
"""

from __future__ import annotations

import itertools
import json
import queue
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import orjson

from .._errors import EngineError
from .._event import Event
from .._rules.conditions import (
    MAX_ALTERNATIVES,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Exists,
    InSet,
    Not,
    Pred,
    alternatives,
    push_negations,
)
from .fact import CURRENCY_KEY, Fact, Plan

__all__ = ["AVAILABLE", "DurableMatcher"]

try:
    import durable_rules_engine as _engine
except ImportError:  # Python 3.13+, or the C extension did not build
    _engine = None

AVAILABLE = _engine is not None

_NEGATED = {"eq": "$neq", "ne": None, "gt": "$lte", "gte": "$lt", "lt": "$gte", "lte": "$gt"}
_OPS = {"eq": None, "ne": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
_names = itertools.count()


def _number(value: float) -> str:
    """A float as durable_rules' parser reads it: it refuses an exponent without a decimal point
    (``1e-07``, error 204), which is how Python writes small and large floats."""
    text = repr(value)
    mantissa, sep, exponent = text.partition("e")
    if sep and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text


_string = json.encoder.encode_basestring


# The fact's head: the discriminator every rule tests first, the session, and the id. One fact is alive at a
# time (asserted and retracted under the matcher's lock), so it always has the same id; retracting needs
# only the id.
_KEY: Final = '"sid":"0","id":"f"'
_HEAD: Final = '{"t":"tx",' + _KEY
RETRACT: Final = "{" + _KEY + "}"
_dumps: Final = orjson.dumps  # read once (a Final global compiles to a C variable, not a module lookup)


def encode_fact(fact: Fact) -> str:
    """The flat fact as JSON, with the discriminator, session and id durable_rules needs.

    orjson writes it in one call. Its floats may carry an exponent without a decimal point (``1e-07``),
    which durable_rules' parser refuses (error 204, nothing asserted): ``DurableMatcher.match`` then sends
    the careful form, ``encode_fact_carefully``. A fact orjson cannot write goes there directly.
    """
    try:
        body = _dumps(fact).decode()
    except TypeError:
        return encode_fact_carefully(fact)
    # one copy: the brace that opens orjson's text becomes the head
    return _HEAD + "}" if len(body) == 2 else body.replace("{", _HEAD + ",", 1)


def encode_fact_carefully(fact: Fact) -> str:
    """The fact as JSON, each float written so that durable_rules' parser reads it (``_number``)."""
    parts = [_HEAD]
    for key, value in fact.items():
        kind = type(value)
        if kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = str(value)
        elif kind is str:
            text = _string(value)
        elif kind is float:
            text = encode(value)
        else:
            raise TypeError(f"cannot send {kind.__name__} to durable_rules")
        parts.append(f',"{key}":{text}')
    parts.append("}")
    return "".join(parts)


def encode(value: Any) -> str:
    """JSON for durable_rules: like ``json.dumps`` but with floats it can parse; no NaN or infinity."""
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{encode(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124 (NaN check)
            raise ValueError(f"durable_rules cannot compare {value!r}")
        return _number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot send {type(value).__name__} to durable_rules")


def _compare(op: str | None, key: str, value: Any) -> dict[str, Any]:
    return {key: value} if op is None else {op: {key: value}}


def _absent(key: str) -> dict[str, Any]:
    return {"$nex": {key: 1}}


def _one(op: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0] if len(items) == 1 else {op: items}


class _Compiler:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def expression(self, node: Condition) -> dict[str, Any]:
        if isinstance(node, AllOf):
            return _one("$and", [self.expression(c) for c in node.children])
        if isinstance(node, AnyOf):
            return _one("$or", [self.expression(c) for c in node.children])
        if isinstance(node, Not):
            return self.negated(node.child)
        key = self.plan.key(node)
        if isinstance(node, Compare):
            leaf = _compare(_OPS[node.op], key, node.value)
            if node.currency is None:
                return leaf
            return {"$and": [{CURRENCY_KEY: node.currency}, leaf]}
        if isinstance(node, InSet):
            if node.negate:
                return _one("$and", [{"$neq": {key: v}} for v in node.values])
            return _one("$or", [{key: v} for v in node.values])
        if isinstance(node, Exists):
            return {"$ex": {key: 1}} if node.present else _absent(key)
        assert isinstance(node, Pred)
        return {key: True}

    def negated(self, node: Condition) -> dict[str, Any]:
        """``not node`` for a leaf: true where the leaf is false, absent fields included."""
        key = self.plan.key(node)  # type: ignore[arg-type]
        if isinstance(node, Compare):
            options = [_compare(_NEGATED[node.op], key, node.value), _absent(key)]
            if node.currency is not None:
                options += [{"$neq": {CURRENCY_KEY: node.currency}}, _absent(CURRENCY_KEY)]
            return {"$or": options}
        if isinstance(node, InSet):
            if node.negate:
                return {"$or": [*({key: v} for v in node.values), _absent(key)]}
            return {"$or": [_one("$and", [{"$neq": {key: v}} for v in node.values]), _absent(key)]}
        if isinstance(node, Pred):
            return {key: False}
        raise AssertionError(node)  # pragma: no cover - push_negations leaves Not only over these

    def rule(self, condition: Condition) -> dict[str, Any]:
        body = self.expression(push_negations(condition))
        return {"all": [{"m": {"$and": [{"t": "tx"}, body]}}]}

    def keys(self, condition: Condition) -> set[str]:
        """The fact keys a rule with ``condition`` reads (the currency key where a test names one)."""
        if isinstance(condition, AllOf | AnyOf):
            return set().union(*(self.keys(child) for child in condition.children))
        if isinstance(condition, Not):
            return self.keys(condition.child)
        found = {self.plan.key(condition)}
        if isinstance(condition, Compare) and condition.currency is not None:
            found.add(CURRENCY_KEY)
        return found


def _part(fact: Fact, keys: tuple[str, ...]) -> Fact:
    """The entries of ``fact`` under ``keys`` (a fact holds no None: an absent key is absent)."""
    part: Fact = {}
    for key in keys:
        value = fact.get(key)
        if value is not None:
            part[key] = value
    return part


def _chunks(plan: Plan) -> Iterator[list[int]]:
    """Rule indices packed so that each chunk's alternatives add up to at most ``MAX_ALTERNATIVES``."""
    chunk: list[int] = []
    budget = 0
    for index, condition in plan.conditions():
        width = alternatives(condition)
        if chunk and budget + width > MAX_ALTERNATIVES:
            yield chunk
            chunk, budget = [], 0
        chunk.append(index)
        budget += width
    if chunk:
        yield chunk


class DurableMatcher:
    """Matches a fact with durable_rules' C core; thread-safe (one lock per matcher: its token queue)."""

    name = "durable"

    def __init__(self, plan: Plan) -> None:
        if _engine is None:
            raise EngineError(
                "durable-rules is not importable here (it needs Python < 3.13); use engine='python'"
            )
        compiler = _Compiler(plan)
        self.definitions: list[dict[str, Any]] = []
        self.handles: list[int] = []
        # each chunk is sent only the keys its rules read: durable_rules parses the whole text it is given
        # once per chunk, and a fact has every rule's keys
        self.keys: list[tuple[str, ...]] = []
        for chunk in _chunks(plan):
            conditions = [plan.ruleset.rules[i].condition for i in chunk]
            definition = {f"r{i}": compiler.rule(plan.ruleset.rules[i].condition) for i in chunk}
            self.definitions.append(definition)
            self.keys.append(tuple(sorted(set().union(*map(compiler.keys, conditions)))))
            name = f"payguard{next(_names)}"
            try:
                self.handles.append(_engine.create_ruleset(name, encode(definition)))
            except _engine.error as exc:
                raise EngineError(f"durable_rules refused the compiled rule set: {exc}") from exc
        # The lock is a queue holding one token: uncontended, taking and giving it back are two C calls that
        # touch no OS lock, cheaper than ``threading.Lock.acquire`` (see benchmarks/RESULTS.md).
        tokens: queue.SimpleQueue[int] = queue.SimpleQueue()
        tokens.put(0)
        self._take: Callable[[], int] = tokens.get
        self._give: Callable[[int], None] = tokens.put
        self._plan = plan
        # The C functions, read once: a call then skips two dictionary lookups (module, attribute). Their
        # types let the compiled code unpack and compare their results directly.
        self._assert: Callable[[int, str], tuple[int, int]] = _engine.assert_fact
        self._start: Callable[[int, int], Any] = _engine.start_action_for_state
        self._next: Callable[[int, int], Any] = _engine.complete_and_start_action
        self._retract: Callable[[int, str], Any] = _engine.retract_fact

    def match_event(
        self,
        event: Event,
        features: Mapping[str, Any],
        lists: Mapping[str, frozenset[str]],
        minor: Mapping[str, int],
    ) -> list[int]:
        """The rules ``event`` matches, given its features: its fact built by the plan, then matched."""
        return self.match(self._plan.fact(event, features, lists, minor))

    def match(self, fact: Fact) -> list[int]:
        """The indices of the rules ``fact`` matches, in order. ``fact`` is a fact as ``Plan.fact`` builds
        it: flat, its values str, bool, int or finite float (``1e-07``, which durable_rules' parser
        refuses, is sent again in the careful form)."""
        texts = self.texts(fact)
        found: list[int] = []
        handles = self.handles
        token = self._take()
        try:
            for index in range(len(handles)):
                text = texts[index]
                try:
                    self._run(handles[index], text, found)
                except _engine.error as exc:
                    careful = encode_fact_carefully(_part(fact, self.keys[index]))
                    if careful == text:
                        raise EngineError(f"durable_rules failed to assert the fact: {exc}") from exc
                    self._checked_run(handles[index], careful, found)
        finally:
            self._give(token)
        return sorted(set(found)) if len(found) > 1 else found

    def texts(self, fact: Fact) -> list[str]:
        """What each chunk is sent for ``fact``: the entries its rules read, as JSON with the fact's head
        (orjson's form: a float may be ``1e-07``)."""
        try:
            return [encode_fact(_part(fact, keys)) for keys in self.keys]
        except (TypeError, ValueError) as exc:
            raise EngineError(f"fact cannot be sent to durable_rules: {exc}") from exc

    def _checked_run(self, handle: int, text: str, found: list[int]) -> None:
        try:
            self._run(handle, text, found)
        except _engine.error as exc:
            raise EngineError(f"durable_rules failed to assert the fact: {exc}") from exc

    def _run(self, handle: int, text: str, found: list[int]) -> None:
        """Assert ``text`` in the ruleset ``handle``, add the matching rules to ``found``, retract it.

        Raises ``_engine.error`` if the fact cannot be asserted (nothing is then stored).
        """
        code, state = self._assert(handle, text)
        if code == 2:  # a fact with this id is stored: left by an earlier round whose retract failed
            self._retract(handle, RETRACT)
            code, state = self._assert(handle, text)
            if code == 2:
                raise EngineError("durable_rules reported the fact as already observed")
        if code == 1:  # no rule matched: the fact was not stored
            return
        finished = False
        try:
            result = self._start(handle, state)
            message = result[1] if result else None
            while message:
                found.append(int(message[3 : message.index('"', 2)]))
                message = self._next(handle, state)
            finished = True
        except _engine.error as exc:
            raise EngineError(f"durable_rules failed while collecting matches: {exc}") from exc
        finally:
            # An exception mid-round (even KeyboardInterrupt) must not leave the session locked: drain the
            # round. abandon_action is never called, it crashes the next round.
            try:
                while not finished and self._next(handle, state):
                    pass
            finally:
                self._retract(handle, RETRACT)
