"""Rule files: YAML written by risk analysts, validated with every problem reported at once.

A rule set is one YAML file or a directory of them (``*_test.yaml`` files are rule tests, not rules).
Exactly one file carries the ``ruleset:`` header; keyword sets, lists, parameters and rules may be spread
over the files. See the README for the format.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import re2
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ._conditions import (
    NATIVE_IN_LIMIT,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Exists,
    InSet,
    Not,
    Pred,
    leaves,
    push_negations,
)
from ._decision import Action
from ._errors import RuleFileError, RuleProblem
from ._event import zone
from ._fields import EVENT_FIELDS, FEATURES, FieldSpec, Kind, attribute_field
from ._money import MoneyError, parse_decimal, to_minor_units
from ._text import normalize_account, normalize_text

__all__ = [
    "MAX_ALTERNATIVES",
    "Rule",
    "RuleSet",
    "is_test_file",
    "load_rule_set",
    "parse_condition",
    "rule_files",
]

# A rule's condition, expanded into alternatives (``any`` adds, ``all`` multiplies), may have at most this
# many. durable_rules reports every satisfied alternative and fails above 64 at once.
MAX_ALTERNATIVES = 60
MAX_RULES = 4000
MAX_LIST_VALUES = 100_000
MAX_REGEX = 1000

_TOP_KEYS = ("ruleset", "params", "keyword_sets", "lists", "attributes", "rules")
_HEADER_KEYS = ("id", "version", "description", "timezone", "currency")
_RULE_KEYS = ("id", "description", "when", "action", "reason", "tags", "mode", "currency")
_GROUP_KEYS = ("all", "any", "not")
_ATTRIBUTE_KINDS = {"bool": Kind.BOOL, "int": Kind.INT, "number": Kind.FLOAT, "string": Kind.STRING}
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Rule:
    """One rule, as loaded: its condition tree and where it was written."""

    id: str
    description: str
    action: Action
    reason: str
    condition: Condition
    tags: tuple[str, ...] = ()
    shadow: bool = False
    path: str = "<memory>"
    line: int = 0

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(leaf.field for leaf in leaves(self.condition))


@dataclass(frozen=True)
class RuleSet:
    """A validated rule set: header, rules, keyword sets, lists and the digest of what was read."""

    id: str
    version: str
    description: str
    timezone: str
    currency: str | None
    rules: tuple[Rule, ...]
    keyword_sets: Mapping[str, tuple[str, ...]]
    lists: Mapping[str, frozenset[str]]
    attributes: Mapping[str, FieldSpec]
    params: Mapping[str, Any]
    digest: str
    files: tuple[str, ...] = ()

    def field_spec(self, name: str) -> FieldSpec:
        if name.startswith("attributes."):
            return self.attributes[name.removeprefix("attributes.")]
        return EVENT_FIELDS.get(name) or FEATURES[name]


def is_test_file(path: Path) -> bool:
    return path.stem.endswith("_test")


def rule_files(path: Path) -> list[Path]:
    """The rule files of ``path``: the file itself, or the ``*.yaml``/``*.yml`` files of a directory."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not is_test_file(p))
    return [path]


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


def _read_yaml(loader: _Loader, path: Path, text: str) -> Any:
    yaml = YAML(typ="rt", pure=True)
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        loader.problem(
            pos, "yaml_syntax", " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        )
    except YAMLError as exc:
        loader.problem((1, 1), "yaml_syntax", " ".join(str(exc).split()))
    return None


def _read_lines(loader: _Loader, base: Path, node: Any, key: Any, relative: str) -> list[str] | None:
    """Entries of a plain text file: one per line, ``#`` starts a comment."""
    target = (base / relative).resolve()
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        loader.problem(loader.at(node, key, value=True), "file_not_found", f"cannot read {relative!r}: {exc}")
        return None
    entries = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(entry)
    return entries


class _RuleSetBuilder(_Loader):
    def __init__(self) -> None:
        super().__init__()
        self.header: dict[str, Any] | None = None
        self.header_pos: tuple[str, int] | None = None
        self.params: dict[str, Any] = {}
        self.keyword_sets: dict[str, tuple[str, ...]] = {}
        self.lists: dict[str, frozenset[str]] = {}
        self.list_files: dict[str, str] = {}
        self.attributes: dict[str, FieldSpec] = {}
        self.rule_nodes: list[tuple[str, Path, CommentedSeq]] = []
        self.rules: list[Rule] = []
        self.rule_ids: dict[str, str] = {}

    # -- sections --------------------------------------------------------------------------------
    def read_file(self, path: Path, display: str, text: str) -> None:
        self.path = display
        doc = _read_yaml(self, path, text)
        if doc is None:
            if not self.problems or self.problems[-1].path != display:
                self.problem((1, 1), "empty_file", "the file holds no rule set sections")
            return
        if not isinstance(doc, CommentedMap):
            self.problem(
                (1, 1), "invalid_type", "a rule file is a mapping of sections: " + ", ".join(_TOP_KEYS)
            )
            return
        self.check_keys(doc, _TOP_KEYS, "top-level")
        if "ruleset" in doc:
            self.read_header(doc)
        if "params" in doc:
            self.read_params(doc)
        if "attributes" in doc:
            self.read_attributes(doc)
        if "keyword_sets" in doc:
            self.read_keyword_sets(doc, path.parent)
        if "lists" in doc:
            self.read_lists(doc, path.parent)
        if "rules" in doc:
            rules = doc["rules"]
            if isinstance(rules, CommentedSeq):
                self.rule_nodes.append((display, path, rules))
            else:
                self.problem(
                    self.at(doc, "rules", value=True), "invalid_type", "rules must be a list of rules"
                )

    def read_header(self, doc: CommentedMap) -> None:
        node = doc["ruleset"]
        if self.header_pos is not None:
            other, line = self.header_pos
            self.problem(
                self.at(doc, "ruleset"),
                "duplicate_header",
                f"a rule set has one 'ruleset' header; another is at {other}:{line}",
            )
            return
        self.header_pos = (self.path, self.at(doc, "ruleset")[0])
        if not isinstance(node, CommentedMap):
            self.problem(self.at(doc, "ruleset", value=True), "invalid_type", "ruleset must be a mapping")
            return
        self.check_keys(node, _HEADER_KEYS, "ruleset")
        header: dict[str, Any] = {"description": "", "timezone": "UTC", "currency": None}
        for key in ("id", "version"):
            value = node.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
                header[key] = str(value)
            else:
                where = self.at(node, key, value=True) if key in node else self.at(node)
                self.problem(
                    where,
                    "missing_field" if key not in node else "invalid_type",
                    f"ruleset.{key} is required and must be a non-empty string",
                )
        for key in ("description", "timezone", "currency"):
            if key in node:
                value = node[key]
                if not isinstance(value, str):
                    self.problem(
                        self.at(node, key, value=True), "invalid_type", f"ruleset.{key} must be a string"
                    )
                else:
                    header[key] = value
        try:
            zone(header["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(
                self.at(node, "timezone", value=True),
                "invalid_value",
                f"unknown IANA time zone {header['timezone']!r}",
            )
        currency = header["currency"]
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
            self.problem(
                self.at(node, "currency", value=True),
                "invalid_value",
                f"currency must be an ISO 4217 code such as CNY, got {currency!r}",
            )
        self.header = header

    def read_params(self, doc: CommentedMap) -> None:
        node = doc["params"]
        if not isinstance(node, CommentedMap):
            self.problem(self.at(doc, "params", value=True), "invalid_type", "params must be a mapping")
            return
        for name, value in node.items():
            if not isinstance(name, str) or not _ID.match(name):
                self.problem(self.at(node, name), "invalid_name", f"invalid parameter name {name!r}")
            elif name in self.params:
                self.problem(self.at(node, name), "duplicate_name", f"parameter {name!r} is declared twice")
            elif not isinstance(value, str | int | float | bool):
                self.problem(
                    self.at(node, name, value=True),
                    "invalid_type",
                    f"parameter {name!r} must be a number, string or boolean",
                )
            else:
                self.params[name] = value

    def read_attributes(self, doc: CommentedMap) -> None:
        node = doc["attributes"]
        if not isinstance(node, CommentedMap):
            self.problem(
                self.at(doc, "attributes", value=True),
                "invalid_type",
                "attributes must map attribute names to types",
            )
            return
        for name, kind in node.items():
            if not isinstance(name, str) or not _ID.match(name):
                self.problem(self.at(node, name), "invalid_name", f"invalid attribute name {name!r}")
            elif kind not in _ATTRIBUTE_KINDS:
                self.problem(
                    self.at(node, name, value=True),
                    "invalid_value",
                    f"attribute type must be one of {', '.join(_ATTRIBUTE_KINDS)}",
                    suggest(str(kind), _ATTRIBUTE_KINDS),
                )
            else:
                self.attributes[name] = attribute_field(name, _ATTRIBUTE_KINDS[kind])

    def _entries(self, node: CommentedMap, name: str, base: Path, what: str) -> list[str] | None:
        value = node[name]
        if isinstance(value, CommentedMap) and set(value) == {"file"} and isinstance(value["file"], str):
            return _read_lines(self, base, value, "file", value["file"])
        if isinstance(value, CommentedSeq) and all(isinstance(v, str | int) for v in value):
            return [str(v) for v in value]
        self.problem(
            self.at(node, name, value=True),
            "invalid_type",
            f"{what} {name!r} must be a list of strings or {{file: PATH}}",
        )
        return None

    def read_keyword_sets(self, doc: CommentedMap, base: Path) -> None:
        node = doc["keyword_sets"]
        if not isinstance(node, CommentedMap):
            self.problem(
                self.at(doc, "keyword_sets", value=True), "invalid_type", "keyword_sets must be a mapping"
            )
            return
        for name in node:
            if not isinstance(name, str) or not _ID.match(name):
                self.problem(self.at(node, name), "invalid_name", f"invalid keyword set name {name!r}")
                continue
            if name in self.keyword_sets:
                self.problem(self.at(node, name), "duplicate_name", f"keyword set {name!r} is declared twice")
                continue
            entries = self._entries(node, name, base, "keyword set")
            if entries is None:
                continue
            phrases = tuple(sorted({normalize_text(e) for e in entries} - {""}))
            if not phrases:
                self.problem(
                    self.at(node, name, value=True),
                    "empty_set",
                    f"keyword set {name!r} has no phrase left after normalisation",
                )
            self.keyword_sets[name] = phrases

    def read_lists(self, doc: CommentedMap, base: Path) -> None:
        node = doc["lists"]
        if not isinstance(node, CommentedMap):
            self.problem(self.at(doc, "lists", value=True), "invalid_type", "lists must be a mapping")
            return
        for name in node:
            if not isinstance(name, str) or not _ID.match(name):
                self.problem(self.at(node, name), "invalid_name", f"invalid list name {name!r}")
                continue
            if name in self.lists:
                self.problem(self.at(node, name), "duplicate_name", f"list {name!r} is declared twice")
                continue
            entries = self._entries(node, name, base, "list")
            if entries is None:
                continue
            value = node[name]
            if isinstance(value, CommentedMap):
                self.list_files[name] = str((base / value["file"]).resolve())
            self.lists[name] = frozenset(normalize_account(e) for e in entries)

    # -- rules -------------------------------------------------------------------------------------
    def read_rules(self) -> None:
        header_currency = self.header["currency"] if self.header else None
        for display, _path, seq in self.rule_nodes:
            self.path = display
            for index, node in enumerate(seq):
                if not isinstance(node, CommentedMap):
                    self.problem(self.at(seq, index), "invalid_type", "each rule must be a mapping")
                    continue
                rule = self.read_rule(node, header_currency)
                if rule is not None:
                    self.rules.append(rule)
        if len(self.rules) > MAX_RULES:
            self.problem((1, 1), "too_many_rules", f"a rule set may hold at most {MAX_RULES} rules")

    def read_rule(self, node: CommentedMap, header_currency: str | None) -> Rule | None:
        self.check_keys(node, _RULE_KEYS, "rule")
        ok = True
        for key in ("id", "description", "when", "action", "reason"):
            if key not in node:
                self.problem(self.at(node), "missing_field", f"rule is missing {key!r}")
                ok = False
        rule_id = node.get("id")
        if "id" in node:
            if not isinstance(rule_id, str) or not _ID.match(rule_id):
                self.problem(
                    self.at(node, "id", value=True),
                    "invalid_name",
                    "rule id must start with a letter and hold only letters, digits, _ . -",
                )
                ok = False
            elif rule_id in self.rule_ids:
                self.problem(
                    self.at(node, "id", value=True),
                    "duplicate_rule",
                    f"rule id {rule_id!r} is already used at {self.rule_ids[rule_id]}",
                )
                ok = False
            else:
                self.rule_ids[rule_id] = f"{self.path}:{self.at(node, 'id')[0]}"
        for key in ("description", "reason"):
            if key in node and (not isinstance(node[key], str) or not node[key].strip()):
                self.problem(
                    self.at(node, key, value=True), "invalid_type", f"{key} must be a non-empty string"
                )
                ok = False
        action = None
        if "action" in node:
            try:
                action = Action(node["action"])
            except ValueError:
                self.problem(
                    self.at(node, "action", value=True),
                    "invalid_value",
                    "action must be one of allow, review, hold, interrupt",
                    suggest(str(node["action"]), [a.value for a in Action]),
                )
                ok = False
        mode = node.get("mode", "enforce")
        if mode not in ("enforce", "shadow"):
            self.problem(
                self.at(node, "mode", value=True),
                "invalid_value",
                "mode must be enforce or shadow",
                suggest(str(mode), ["enforce", "shadow"]),
            )
            ok = False
        tags = node.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.problem(self.at(node, "tags", value=True), "invalid_type", "tags must be a list of strings")
            ok = False
        currency = node.get("currency", header_currency)
        if "currency" in node and (not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency)):
            self.problem(
                self.at(node, "currency", value=True),
                "invalid_value",
                "currency must be an ISO 4217 code such as CNY",
            )
            ok = False
            currency = None
        condition = None
        if "when" in node:
            condition = self.condition(node, "when", currency)
            if condition is not None:
                width = alternatives(condition)
                if width > MAX_ALTERNATIVES:
                    self.problem(
                        self.at(node, "when"),
                        "too_complex",
                        f"the condition expands to {width} alternatives (all multiplies, any adds); "
                        f"at most {MAX_ALTERNATIVES} are allowed: split the rule",
                    )
                    ok = False
        if not ok or condition is None or action is None:
            return None
        return Rule(
            id=str(rule_id),
            description=str(node["description"]).strip(),
            action=action,
            reason=str(node["reason"]).strip(),
            condition=condition,
            tags=tuple(tags),
            shadow=mode == "shadow",
            path=self.path,
            line=self.at(node)[0],
        )

    def condition(self, parent: Any, key: Any, currency: str | None) -> Condition | None:
        """Parse ``parent[key]`` as a condition; problems are reported, ``None`` returned on any."""
        node = parent[key]
        pos = self.at(parent, key, value=not isinstance(parent, CommentedSeq))
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


def alternatives(node: Condition) -> int:
    """How many alternatives ``node`` expands to in durable_rules (negations pushed to the leaves)."""

    def width(n: Condition) -> int:
        if isinstance(n, AllOf):
            product = 1
            for child in n.children:
                product *= width(child)
            return product
        if isinstance(n, AnyOf):
            return sum(width(child) for child in n.children)
        if isinstance(n, Not):
            inner = n.child
            if isinstance(inner, Compare):
                return 4 if inner.currency else 2
            if isinstance(inner, InSet):
                return 2 if not inner.negate else len(inner.values) + 1
            return 1
        if isinstance(n, InSet) and not n.negate:
            return len(n.values)
        return 1

    return width(push_negations(node))


def parse_condition(ruleset: RuleSet, when: Any, where: str) -> Condition:
    """Compile a condition written in the rule language against ``ruleset`` (its parameters, keyword
    sets, lists and attributes), as rule tests' invariants do. Raises ``RuleFileError``."""
    builder = _RuleSetBuilder()
    builder.path = where
    builder.params = dict(ruleset.params)
    builder.keyword_sets = dict(ruleset.keyword_sets)
    builder.lists = dict(ruleset.lists)
    builder.attributes = dict(ruleset.attributes)
    doc = YAML(typ="rt", pure=True).load(json.dumps({"when": when}, ensure_ascii=False))
    condition = builder.condition(doc, "when", ruleset.currency)
    if builder.problems or condition is None:
        raise RuleFileError(builder.problems)
    return condition


def load_rule_set(path: str | Path) -> RuleSet:
    """Load and validate the rule set at ``path`` (a file or a directory). Raises ``RuleFileError``."""
    root = Path(path)
    builder = _RuleSetBuilder()
    if not root.exists():
        raise RuleFileError([RuleProblem(str(root), 1, 1, "file_not_found", "no such file or directory")])
    files = rule_files(root)
    if not files:
        raise RuleFileError(
            [RuleProblem(str(root), 1, 1, "no_rules", "the directory holds no .yaml rule files")]
        )
    digest = hashlib.sha256()
    for file in files:
        display = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            builder.problems.append(RuleProblem(display, 1, 1, "unreadable", str(exc)))
            continue
        digest.update(file.name.encode() + b"\0" + text.encode() + b"\0")
        builder.read_file(file, display, text)
    if builder.header is None and not any(p.code == "yaml_syntax" for p in builder.problems):
        builder.problems.append(
            RuleProblem(
                str(files[0]),
                1,
                1,
                "missing_header",
                "no file of the rule set has a 'ruleset:' header with id and version",
            )
        )
    builder.read_rules()
    for name in sorted(builder.list_files):
        digest.update(name.encode() + b"\0" + "\n".join(sorted(builder.lists[name])).encode() + b"\0")
    if builder.problems:
        raise RuleFileError(sorted(builder.problems, key=lambda p: (p.path, p.line, p.column)))
    header = builder.header or {}
    return RuleSet(
        id=header["id"],
        version=header["version"],
        description=header.get("description", ""),
        timezone=header.get("timezone", "UTC"),
        currency=header.get("currency"),
        rules=tuple(builder.rules),
        keyword_sets=dict(builder.keyword_sets),
        lists=dict(builder.lists),
        attributes=dict(builder.attributes),
        params=dict(builder.params),
        digest="sha256:" + digest.hexdigest(),
        files=tuple(str(f) for f in files),
    )
