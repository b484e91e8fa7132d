"""Rule files: YAML written by risk analysts, validated with every problem reported at once.

A rule set is one YAML file or a directory of them (``*_test.yaml`` files are rule tests, not rules).
Exactly one file carries the ``ruleset:`` header; keyword sets, lists, parameters and rules may be spread
over the files. See the README for the format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .._common.text import has_marks, normalize_account, normalize_text, text_normalizer
from .._common.time import zone
from .._decision import Action
from .._errors import RuleFileError, RuleProblem
from .conditions import (
    MAX_ALTERNATIVES,
    Condition,
    alternatives,
)
from .fields import Kind, attribute_field
from .fx import read_fx, read_unrated
from .lint import never_true, positions_of
from .model import _ID, MAX_RULES, Rule, RuleSet, rule_files
from .overrides import override_params
from .parser import ConditionParser, _Loader, suggest
from .yaml_text import read_yaml

__all__ = ["load_rule_set"]

_TOP_KEYS = ("ruleset", "params", "keyword_sets", "lists", "attributes", "rules")
_HEADER_KEYS = (
    "id",
    "version",
    "description",
    "timezone",
    "currency",
    "fx",
    "unrated_currency",
    "scoring",
    "confirmed_fraud_list",
)
_RULE_KEYS = ("id", "description", "when", "action", "score", "reason", "tags", "mode", "currency")
# the actions a score threshold may lead to, from the least severe (thresholds increase in this order)
_SCORED_ACTIONS = (Action.REVIEW, Action.HOLD, Action.INTERRUPT)
_FRAUD_LIST = "fraud_accounts"
_ATTRIBUTE_KINDS = {"bool": Kind.BOOL, "int": Kind.INT, "number": Kind.FLOAT, "string": Kind.STRING}


def _is_integer(value: Any) -> bool:
    """Whether YAML read an integer (ruamel's ``ScalarInt`` for some), not a boolean or a float."""
    return isinstance(value, int) and not isinstance(value, bool)


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


class _RuleSetBuilder(ConditionParser):
    def __init__(self) -> None:
        super().__init__()
        self.header: dict[str, Any] | None = None
        self.header_pos: tuple[str, int] | None = None
        self.list_files: dict[str, str] = {}
        self.rule_nodes: list[tuple[str, Path, CommentedSeq]] = []
        self.rules: list[Rule] = []
        self.public_attributes: set[str] = set()  # declared ``public: true``
        self.rule_ids: dict[str, str] = {}
        self.scoring_declared = False
        # where an explicit ``confirmed_fraud_list`` was written (it must name a declared list)
        self.fraud_list_at: tuple[str, tuple[int, int]] | None = None
        self.lint: list[RuleProblem] = []

    # -- sections --------------------------------------------------------------------------------
    def read_file(self, path: Path, display: str, text: str) -> None:
        self.path = display
        doc = read_yaml(self, path, text)
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
        header: dict[str, Any] = {
            "description": "",
            "timezone": "UTC",
            "currency": None,
            "scoring": (),
            "confirmed_fraud_list": _FRAUD_LIST,
        }
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
        for key in ("description", "timezone", "currency", "confirmed_fraud_list"):
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
        header["fx"] = read_fx(self, node, currency)
        header["unrated_currency"] = read_unrated(self, node)
        if "scoring" in node:
            self.scoring_declared = True
            header["scoring"] = self.read_scoring(node)
        if isinstance(node.get("confirmed_fraud_list"), str):
            self.fraud_list_at = (self.path, self.at(node, "confirmed_fraud_list", value=True))
        self.header = header

    def read_scoring(self, node: CommentedMap) -> tuple[tuple[int, Action], ...]:
        """``scoring: {review: N, hold: N, interrupt: N}``: each optional, positive, increasing."""
        scoring = node["scoring"]
        if not isinstance(scoring, CommentedMap) or not scoring:
            self.problem(
                self.at(node, "scoring", value=True),
                "invalid_type",
                "scoring maps actions (review, hold, interrupt) to the score that leads to them",
            )
            return ()
        self.check_keys(scoring, tuple(a.value for a in _SCORED_ACTIONS), "scoring")
        thresholds: list[tuple[int, Action]] = []
        for action in _SCORED_ACTIONS:
            if action.value not in scoring:
                continue
            value = scoring[action.value]
            if not _is_integer(value) or value < 1:
                self.problem(
                    self.at(scoring, action.value, value=True),
                    "invalid_value",
                    f"scoring.{action.value} must be a positive integer, got {value!r}",
                )
                return ()
            if thresholds and value <= thresholds[-1][0]:
                lower, below = thresholds[-1]
                self.problem(
                    self.at(scoring, action.value, value=True),
                    "invalid_value",
                    f"scoring thresholds must increase with severity: {action.value} is {value}, "
                    f"not above {below.value}'s {lower}",
                )
                return ()
            thresholds.append((int(value), action))
        return tuple(reversed(thresholds))

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
        for name, declared in node.items():
            kind, public = declared, False
            if isinstance(declared, CommentedMap):  # {type: string, public: true}
                unknown = [key for key in declared if key not in ("type", "public")]
                for key in unknown:
                    self.unknown_key(declared, key, ("type", "public"), "attribute")
                kind, public = declared.get("type"), declared.get("public", False)
                if not isinstance(public, bool):
                    self.problem(
                        self.at(declared, "public", value=True),
                        "invalid_type",
                        "public must be true or false",
                    )
                    continue
                if unknown:
                    continue
            if not isinstance(name, str) or not _ID.match(name):
                self.problem(self.at(node, name), "invalid_name", f"invalid attribute name {name!r}")
            elif not isinstance(kind, str) or kind not in _ATTRIBUTE_KINDS:
                self.problem(
                    self.at(node, name, value=True),
                    "invalid_value",
                    f"attribute type must be one of {', '.join(_ATTRIBUTE_KINDS)}",
                    suggest(str(kind), _ATTRIBUTE_KINDS),
                )
            else:
                self.attributes[name] = attribute_field(name, _ATTRIBUTE_KINDS[kind])
                if public:
                    self.public_attributes.add(name)

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
            if not {normalize_text(e) for e in entries} - {""}:
                self.problem(
                    self.at(node, name, value=True),
                    "empty_set",
                    f"keyword set {name!r} has no phrase left after normalisation",
                )
            self.keyword_sets[name] = tuple(entries)  # normalised once every set is read (``keep_marks``)

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
        for key in ("id", "description", "when", "reason"):
            if key not in node:
                self.problem(self.at(node), "missing_field", f"rule is missing {key!r}")
                ok = False
        if "action" not in node and "score" not in node:
            self.problem(
                self.at(node),
                "missing_field",
                "rule has neither 'action' nor 'score': give it an action, a score, or both",
            )
            ok = False
        score = self.read_score(node)
        if "score" in node and score is None:
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
                else:
                    self.lint_rule(str(rule_id), condition)
        if not ok or condition is None or (action is None and score is None):
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
            score=score,
        )

    def lint_rule(self, rule_id: str, condition: Condition) -> None:
        """Record the tests of a rule's condition that can never be true (see ``lint``)."""
        findings = never_true(condition, self.spec_of)
        for finding, (line, column) in zip(findings, positions_of(findings, self.positions), strict=True):
            self.lint.append(
                RuleProblem(self.path, line, column, "never_true", f"rule {rule_id!r}: {finding}")
            )

    def check_fraud_list(self) -> None:
        """An explicit ``confirmed_fraud_list`` names a list the rule set declares (in any file)."""
        if self.fraud_list_at is None or self.header is None:
            return
        name = self.header["confirmed_fraud_list"]
        if name not in self.lists:
            self.path, position = self.fraud_list_at
            known = ", ".join(sorted(self.lists)) or "none"
            self.problem(
                position,
                "unknown_list",
                f"confirmed_fraud_list names {name!r}, which the rule set does not declare (lists: {known})",
                suggest(name, self.lists),
            )

    def read_score(self, node: CommentedMap) -> int | None:
        """A rule's ``score``: an integer (negative: mitigating evidence), in a rule set that scores."""
        if "score" not in node:
            return None
        value = node["score"]
        if not _is_integer(value):
            self.problem(
                self.at(node, "score", value=True),
                "invalid_type",
                f"score must be an integer (negative for mitigating evidence), got {value!r}",
            )
            return None
        if not self.scoring_declared:
            self.problem(
                self.at(node, "score", value=True),
                "score_without_scoring",
                "a rule scores but the rule set has no 'scoring' thresholds in its header "
                "(ruleset: scoring: {review: N, hold: N, interrupt: N})",
            )
            return None
        return int(value)


def load_rule_set(path: str | Path, *, params: Mapping[str, Any] | None = None) -> RuleSet:
    """Load and validate the rule set at ``path`` (a file or a directory). Raises ``RuleFileError``.

    ``params`` override declared parameters (``payguard replay --set``); they change the digest.
    """
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
    if builder.header is None and not any(p.code in ("yaml_syntax", "too_deep") for p in builder.problems):
        builder.problems.append(
            RuleProblem(
                str(files[0]),
                1,
                1,
                "missing_header",
                "no file of the rule set has a 'ruleset:' header with id and version",
            )
        )
    if params:
        builder.problems += override_params(builder.params, params, digest)
    builder.read_rules()
    builder.check_fraud_list()
    for name in sorted(builder.list_files):
        digest.update(name.encode() + b"\0" + "\n".join(sorted(builder.lists[name])).encode() + b"\0")
    if builder.problems:
        raise RuleFileError(sorted(builder.problems, key=lambda p: (p.path, p.line, p.column)))
    header = builder.header or {}
    # combining marks count only where a phrase carries one: else a mark inserted into a phrase evades it
    keep_marks = any(has_marks(e) for entries in builder.keyword_sets.values() for e in entries)
    normalize = text_normalizer(keep_marks)
    keyword_sets = {
        name: tuple(sorted({normalize(e) for e in entries} - {""}))
        for name, entries in builder.keyword_sets.items()
    }
    return RuleSet(
        id=header["id"],
        version=header["version"],
        description=header.get("description", ""),
        timezone=header.get("timezone", "UTC"),
        currency=header.get("currency"),
        rules=tuple(builder.rules),
        keyword_sets=keyword_sets,
        keep_marks=keep_marks,
        public_attributes=frozenset(builder.public_attributes),
        lists=dict(builder.lists),
        attributes=dict(builder.attributes),
        params=dict(builder.params),
        digest="sha256:" + digest.hexdigest(),
        files=tuple(str(f) for f in files),
        scoring=header["scoring"],
        confirmed_fraud_list=header["confirmed_fraud_list"],
        fx=header["fx"],
        unrated_currency=header["unrated_currency"],
        lint=tuple(sorted(builder.lint, key=lambda p: (p.path, p.line, p.column))),
        overrides=dict(params or {}),
    )
