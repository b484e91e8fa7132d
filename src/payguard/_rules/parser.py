"""A rule's ``when:`` mapping into a condition tree, every problem reported with its position and, for a
misspelled name, a suggestion."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import re2
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .._common.money import MoneyError, parse_decimal, to_minor_units
from .._errors import RuleFileError, RuleProblem
from .conditions import (
    NATIVE_IN_LIMIT,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Exists,
    InSet,
    Not,
    Pred,
)
from .fields import EVENT_FIELDS, FEATURES, FieldSpec, Kind
from .model import MAX_LIST_VALUES, MAX_REGEX, RuleSet

__all__ = ["MAX_NESTING", "parse_condition"]

_GROUP_KEYS = ("all", "any", "not")
# How deep all/any/not groups may nest in one condition: far beyond what a rule needs, far below what
# would exhaust the interpreter's stack in parsing, compiling or matching it.
MAX_NESTING = 32
TOO_DEEP = (
    f"the YAML nests too deeply to read (a condition nests at most {MAX_NESTING} all/any/not groups deep)"
)


class _Loader:
    """Collects problems while walking the YAML of every file of a rule set."""

    def __init__(self) -> None:
        self.problems: list[RuleProblem] = []
        self.path = "<memory>"

    # -- positions and problems ------------------------------------------------------------------
    def problem(self, pos: tuple[int, int], code: str, message: str, suggestion: str | None = None) -> None:
        self.problems.append(RuleProblem(self.path, pos[0], pos[1], code, message, suggestion))

    @staticmethod
    def at(node: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]:
        """1-based (line, column) of ``node`` or of its key/item ``key``."""
        try:
            if key is None:
                return node.lc.line + 1, node.lc.col + 1
            if isinstance(node, CommentedSeq):
                line, col = node.lc.item(key)
            elif value:
                line, col = node.lc.value(key)
            else:
                line, col = node.lc.key(key)
        except (AttributeError, KeyError, IndexError, TypeError):
            return 1, 1
        return line + 1, col + 1

    def unknown_key(self, node: CommentedMap, key: Any, allowed: Sequence[str], what: str) -> None:
        self.problem(
            self.at(node, key), "unknown_key", f"unknown {what} key {key!r}", suggest(str(key), allowed)
        )

    def check_keys(self, node: CommentedMap, allowed: Sequence[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.unknown_key(node, key, allowed, what)


def suggest(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


class ConditionParser(_Loader):
    """Parses ``when:`` mappings against a rule set's parameters, keyword sets, lists and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.params: dict[str, Any] = {}
        self.keyword_sets: dict[str, tuple[str, ...]] = {}
        self.lists: dict[str, frozenset[str]] = {}
        self.attributes: dict[str, FieldSpec] = {}
        # where each leaf was written (by the leaf's id), for problems found after parsing (the lint)
        self.positions: dict[int, tuple[int, int]] = {}
        self.depth = 0

    def spec_of(self, name: str) -> FieldSpec:
        """The spec of a name a parsed condition reads."""
        if name.startswith("attributes."):
            return self.attributes[name.removeprefix("attributes.")]
        return EVENT_FIELDS.get(name) or FEATURES[name]

    def condition(self, parent: Any, key: Any, currency: str | None) -> Condition | None:
        """Parse ``parent[key]`` as a condition; problems are reported, ``None`` returned on any."""
        pos = self.at(parent, key, value=not isinstance(parent, CommentedSeq))
        if self.depth > MAX_NESTING:  # the ``when:`` mapping itself is depth 0
            self.problem(pos, "too_deep", f"conditions nest at most {MAX_NESTING} all/any/not groups deep")
            return None
        self.depth += 1
        try:
            return self._condition(parent, key, pos, currency)
        finally:
            self.depth -= 1

    def _condition(
        self, parent: Any, key: Any, pos: tuple[int, int], currency: str | None
    ) -> Condition | None:
        node = parent[key]
        if not isinstance(node, CommentedMap) or not node:
            self.problem(
                pos,
                "invalid_condition",
                "a condition is a non-empty mapping of all/any/not or field names to tests",
            )
            return None
        parts: list[Condition] = []
        failed = False
        for name in node:
            result: Condition | None
            if name in ("all", "any"):
                items = node[name]
                if not isinstance(items, CommentedSeq) or not items:
                    self.problem(
                        self.at(node, name, value=True),
                        "invalid_condition",
                        f"{name} takes a non-empty list of conditions",
                    )
                    failed = True
                    continue
                children = [self.condition(items, i, currency) for i in range(len(items))]
                if any(c is None for c in children):
                    failed = True
                    continue
                kids = tuple(c for c in children if c is not None)
                result = AllOf(kids) if name == "all" else AnyOf(kids)
            elif name == "not":
                child = self.condition(node, name, currency)
                result = Not(child) if child is not None else None
            else:
                result = self.field_tests(node, name, currency)
            if result is None:
                failed = True
            else:
                parts.append(result)
        if failed:
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def resolve(self, node: CommentedMap, name: Any) -> FieldSpec | None:
        if isinstance(name, str) and name.startswith("attributes."):
            attr = name.removeprefix("attributes.")
            spec = self.attributes.get(attr)
            if spec is None:
                self.problem(
                    self.at(node, name),
                    "unknown_attribute",
                    f"attribute {attr!r} is not declared under 'attributes:' with its type",
                    suggest(attr, self.attributes),
                )
            return spec
        spec = EVENT_FIELDS.get(name) or FEATURES.get(name) if isinstance(name, str) else None
        if spec is None:
            choices = [*EVENT_FIELDS, *FEATURES, *_GROUP_KEYS]
            self.problem(
                self.at(node, name),
                "unknown_field",
                f"unknown field or feature {name!r}",
                suggest(str(name), choices),
            )
        return spec

    def field_tests(self, node: CommentedMap, name: Any, currency: str | None) -> Condition | None:
        spec = self.resolve(node, name)
        if spec is None:
            return None
        value = node[name]
        if isinstance(value, CommentedMap):
            tests = [(op, value[op], self.at(value, op), self.at(value, op, value=True)) for op in value]
            if not tests:
                self.problem(
                    self.at(node, name, value=True), "invalid_condition", f"no test given for {name!r}"
                )
                return None
        else:
            op = "in" if isinstance(value, CommentedSeq) else "eq"
            where = self.at(node, name, value=True)
            tests = [(op, value, where, where)]
        parts: list[Condition] = []
        for op, arg, op_pos, arg_pos in tests:
            if op not in spec.operators:
                all_ops = (
                    "eq",
                    "ne",
                    "gt",
                    "gte",
                    "lt",
                    "lte",
                    "in",
                    "not_in",
                    "exists",
                    "matches",
                    "contains_any",
                    "in_list",
                )
                if op in all_ops:
                    self.problem(
                        op_pos,
                        "invalid_operator",
                        f"{op!r} does not apply to {spec.name} ({spec.kind.value}); "
                        f"use one of {', '.join(spec.operators)}",
                    )
                else:
                    self.problem(
                        op_pos, "unknown_operator", f"unknown operator {op!r}", suggest(str(op), all_ops)
                    )
                continue
            leaf = self.leaf(spec, op, arg, arg_pos, currency)
            if leaf is not None:
                self.positions[id(leaf)] = arg_pos
                parts.append(leaf)
        if len(parts) != len(tests):
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def param(self, arg: Any, pos: tuple[int, int]) -> tuple[bool, Any]:
        """Resolve ``$name`` to its parameter value; ``$$text`` is the literal ``$text``."""
        if isinstance(arg, str) and arg.startswith("$"):
            if arg.startswith("$$"):
                return True, arg[1:]
            name = arg[1:]
            if name not in self.params:
                self.problem(pos, "unknown_param", f"unknown parameter {name!r}", suggest(name, self.params))
                return False, None
            return True, self.params[name]
        return True, arg

    def scalar(
        self, spec: FieldSpec, arg: Any, pos: tuple[int, int], currency: str | None
    ) -> tuple[bool, Any]:
        """Check one operand against the field's kind; money becomes minor units of ``currency``."""
        ok, arg = self.param(arg, pos)
        if not ok:
            return False, None
        kind = spec.kind
        bad = None
        if kind is Kind.BOOL:
            if not isinstance(arg, bool):
                bad = "true or false"
        elif kind in (Kind.INT, Kind.FLOAT):
            if isinstance(arg, bool) or not isinstance(arg, int | float):
                bad = "a number"
            elif isinstance(arg, float) and arg != arg:  # noqa: PLR0124 (NaN check)
                bad = "a finite number"
            else:
                return True, int(arg) if isinstance(arg, int) else float(arg)
        elif kind is Kind.MONEY:
            if currency is None:
                self.problem(
                    pos,
                    "missing_currency",
                    f"{spec.name} is money: set 'currency' in the ruleset header or on the rule",
                )
                return False, None
            if isinstance(arg, bool):
                bad = "a decimal amount"
            else:
                try:
                    return True, to_minor_units(
                        parse_decimal(str(arg) if isinstance(arg, float) else arg), currency
                    )
                except MoneyError as exc:
                    self.problem(pos, "invalid_value", f"{spec.name}: {exc}")
                    return False, None
        elif kind in (Kind.STRING, Kind.LIST):
            if not isinstance(arg, str):
                bad = "a string"
        elif kind is Kind.ENUM and arg not in spec.values:
            self.problem(
                pos,
                "invalid_value",
                f"{spec.name} is one of {', '.join(spec.values)}; got {arg!r}",
                suggest(str(arg), spec.values),
            )
            return False, None
        if bad is not None:
            self.problem(pos, "type_mismatch", f"{spec.name} is {kind.value}: expected {bad}, got {arg!r}")
            return False, None
        return True, str(arg) if kind is not Kind.BOOL else arg

    def names(
        self, arg: Any, pos: tuple[int, int], known: Mapping[str, Any], what: str
    ) -> tuple[str, ...] | None:
        items = list(arg) if isinstance(arg, CommentedSeq) else [arg]
        if not items or not all(isinstance(i, str) for i in items):
            self.problem(pos, "invalid_type", f"expected a {what} name or a list of them")
            return None
        missing = [i for i in items if i not in known]
        for item in missing:
            self.problem(
                pos, f"unknown_{what.replace(' ', '_')}", f"unknown {what} {item!r}", suggest(item, known)
            )
        return None if missing else tuple(items)

    def leaf(
        self, spec: FieldSpec, op: str, arg: Any, pos: tuple[int, int], currency: str | None
    ) -> Condition | None:
        field_name = spec.name
        money_ccy = currency if spec.kind is Kind.MONEY else None
        if op == "exists":
            if not isinstance(arg, bool):
                self.problem(pos, "type_mismatch", "exists takes true or false")
                return None
            if spec.kind is Kind.LIST:
                return Pred(field_name, "list_exists", arg)
            return Exists(field_name, arg)
        if op in ("eq", "ne", "gt", "gte", "lt", "lte"):
            if isinstance(arg, list):
                outcome = "never true" if op == "eq" else "always true" if op == "ne" else "meaningless"
                self.problem(
                    pos,
                    "list_operand",
                    f"{field_name} ({spec.kind.value}) is compared with a list by {op}: one value against a "
                    f"list is {outcome}; write in: [...] or not_in: [...] for membership",
                )
                return None
            ok, value = self.scalar(spec, arg, pos, currency)
            if not ok:
                return None
            if spec.kind is Kind.LIST:
                return Pred(field_name, "list_eq", (value,))
            return Compare(field_name, op, value, money_ccy)
        if op in ("in", "not_in"):
            ok, arg = self.param(arg, pos)
            if not ok:
                return None
            if not isinstance(arg, list) or not arg:
                self.problem(pos, "invalid_type", f"{op} takes a non-empty list")
                return None
            if len(arg) > MAX_LIST_VALUES:
                self.problem(
                    pos, "too_large", f"{op} lists hold at most {MAX_LIST_VALUES} values; use a named list"
                )
                return None
            values = []
            for item in arg:
                ok, value = self.scalar(spec, item, pos, currency)
                if not ok:
                    return None
                values.append(value)
            unique = tuple(sorted(set(values), key=repr))
            if spec.kind is Kind.LIST:
                return Pred(field_name, "list_in" if op == "in" else "list_not_in", tuple(map(str, unique)))
            if len(unique) > NATIVE_IN_LIMIT:
                return Pred(field_name, "set_in" if op == "in" else "set_not_in", unique)
            return InSet(field_name, unique, negate=op == "not_in")
        if op == "matches":
            ok, arg = self.param(arg, pos)
            if not ok:
                return None
            if not isinstance(arg, str) or not arg or len(arg) > MAX_REGEX:
                self.problem(
                    pos, "invalid_regex", f"matches takes a regular expression of 1 to {MAX_REGEX} characters"
                )
                return None
            try:
                re2.compile(arg)
            except re2.error as exc:
                self.problem(pos, "invalid_regex", f"invalid regular expression (RE2 syntax): {exc}")
                return None
            return Pred(field_name, "matches", arg)
        if op == "contains_any":
            sets = self.names(arg, pos, self.keyword_sets, "keyword set")
            return Pred(field_name, "contains_any", sets) if sets is not None else None
        if op == "in_list":
            lists = self.names(arg, pos, self.lists, "list")
            return Pred(field_name, "in_list", lists) if lists is not None else None
        raise AssertionError(op)  # pragma: no cover - operators were checked above


def parse_condition(ruleset: RuleSet, when: Any, where: str) -> Condition:
    """Compile a condition written in the rule language against ``ruleset`` (its parameters, keyword
    sets, lists and attributes), as rule tests' invariants do. Raises ``RuleFileError``."""
    builder = ConditionParser()
    builder.path = where
    builder.params = dict(ruleset.params)
    builder.keyword_sets = dict(ruleset.keyword_sets)
    builder.lists = dict(ruleset.lists)
    builder.attributes = dict(ruleset.attributes)
    try:
        doc = YAML(typ="rt", pure=True).load(json.dumps({"when": when}, ensure_ascii=False))
    except RecursionError:
        raise RuleFileError([RuleProblem(where, 1, 1, "too_deep", TOO_DEEP)]) from None
    condition = builder.condition(doc, "when", ruleset.currency)
    if builder.problems or condition is None:
        raise RuleFileError(builder.problems)
    return condition
