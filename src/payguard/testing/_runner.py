"""Rule tests: cases and invariants written in YAML beside the rules they test.

``velocity.yaml`` is tested by ``velocity_test.yaml`` in the same directory; the rule set under test is the
directory (every rule file in it), as a guard would load it. A test file holds:

    defaults:            # merged under every event of every case (dicts merge, other values replace)
      timestamp: "2026-03-02T10:00:00+08:00"
      currency: CNY
      payer: {account: "6222-0001"}
    cases:
      - name: a call with a new payee is held
        lists: {fraud_accounts: []}     # list contents for this case
        history: [ ... events ... ]     # what already happened: recorded as executed payments
        events:
          - event: {amount: "5000", payee: {account: "NEW-1"}, session: {on_call: true}}
            expect: {action: hold, fires: [on_call_new_payee], not_fires: [fraud_payee]}
            resolve: legitimate         # how the bank resolves the stop: legitimate, fraud, cancelled
          - event: {amount: "80", payee: {account: "NEW-1"}}
            expect: {action: allow, score: 0}   # score: the sum of the enforced hits' scores
    invariants:
      - name: fraud accounts are always interrupted
        when: {payee.account: {in_list: fraud_accounts}}
        at_least: interrupt          # or at_most: review
        lists: {fraud_accounts: ["6222 9999 0001"]}

Events without ``id`` get one; a ``timestamp`` of ``+90m`` (or ``+2h``, ``+1d``) is relative to the default
timestamp. A case whose name starts with ``todo_`` is reported as skipped.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .._decision import Action, Decision
from .._errors import InvalidEventError, PayguardError, RuleFileError, RuleProblem
from .._guard import Guard
from .._rules.loader import load_rule_set
from .._rules.model import RuleSet, is_test_file
from .._rules.parser import TOO_DEEP

__all__ = [
    "CaseResult",
    "Invariant",
    "RuleTestFile",
    "TestCase",
    "TestReport",
    "find_test_files",
    "load_test_file",
    "run_rule_tests",
]

_FILE_KEYS = ("defaults", "cases", "invariants", "rules")
_CASE_KEYS = ("name", "lists", "history", "events", "description")
_STEP_KEYS = ("event", "expect", "resolve")
_EXPECT_KEYS = ("action", "score", "fires", "not_fires")
_OUTCOMES = ("legitimate", "fraud", "cancelled")
_INVARIANT_KEYS = ("name", "when", "at_least", "at_most", "lists", "description")
_RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Step:
    event: dict[str, Any]
    action: Action | None = None
    fires: tuple[str, ...] = ()
    not_fires: tuple[str, ...] = ()
    line: int = 0
    score: int | None = None
    # how the bank resolves the stop, applied right after the decision
    resolve: str | None = None


@dataclass(frozen=True)
class TestCase:
    """One case: lists, history, then events each with what is expected of its decision."""

    __test__ = False  # not a pytest test class

    name: str
    path: str
    line: int
    lists: Mapping[str, tuple[str, ...]]
    history: tuple[dict[str, Any], ...]
    steps: tuple[Step, ...]

    @property
    def skipped(self) -> bool:
        return self.name.startswith("todo_")


@dataclass(frozen=True)
class Invariant:
    """A bound on the action of every event satisfying ``when``."""

    name: str
    path: str
    line: int
    when: Any
    at_least: Action | None
    at_most: Action | None
    lists: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class RuleTestFile:
    __test__ = False

    path: Path
    rules_path: Path
    defaults: Mapping[str, Any]
    cases: tuple[TestCase, ...]
    invariants: tuple[Invariant, ...]


@dataclass
class CaseResult:
    """What happened to one case (or invariant): ``passed``, ``failed`` or ``skipped``, and why."""

    name: str
    path: str
    line: int
    status: str
    message: str = ""
    fired: set[str] = field(default_factory=set)
    kind: str = "case"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "file": self.path,
            "line": self.line,
            "status": self.status,
            "message": self.message,
        }


@dataclass
class TestReport:
    """The results of a run, with rule coverage."""

    __test__ = False

    results: list[CaseResult] = field(default_factory=list)
    rules: dict[str, set[str]] = field(default_factory=dict)  # rule-set directory -> rule ids

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def fired(self) -> set[str]:
        return {rule for r in self.results for rule in r.fired}

    def unfired(self) -> list[str]:
        every = {rule for rules in self.rules.values() for rule in rules}
        return sorted(every - self.fired)

    def coverage(self) -> float:
        every = {rule for rules in self.rules.values() for rule in rules}
        return 100.0 if not every else 100.0 * len(every & self.fired) / len(every)

    def counts(self) -> dict[str, int]:
        return {
            status: sum(r.status == status for r in self.results)
            for status in ("passed", "failed", "skipped")
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [r.to_dict() for r in self.results],
            "summary": self.counts(),
            "coverage": {"percent": round(self.coverage(), 1), "unfired": self.unfired()},
        }


# -- loading ------------------------------------------------------------------------------------------


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``*_test.yaml`` files at or under ``paths``."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*_test.y*ml") if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            found.append(path)
        else:
            raise RuleFileError([RuleProblem(str(path), 1, 1, "file_not_found", "no such file or directory")])
    return found


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[RuleProblem] = []

    def problem(self, node: Any, key: Any, code: str, message: str) -> None:
        line, column = 1, 1
        try:
            if key is None:
                line, column = node.lc.line + 1, node.lc.col + 1
            elif isinstance(node, CommentedSeq):
                line, column = (v + 1 for v in node.lc.item(key))
            else:
                line, column = (v + 1 for v in node.lc.key(key))
        except (AttributeError, KeyError, IndexError, TypeError):
            pass
        self.problems.append(RuleProblem(str(self.path), line, column, code, message))

    def keys(self, node: Any, allowed: tuple[str, ...], what: str) -> bool:
        if not isinstance(node, CommentedMap):
            self.problem(node, None, "invalid_type", f"{what} must be a mapping")
            return False
        for key in node:
            if key not in allowed:
                self.problem(
                    node, key, "unknown_key", f"unknown {what} key {key!r}; expected {', '.join(allowed)}"
                )
        return True

    def line(self, node: Any) -> int:
        return int(getattr(getattr(node, "lc", None), "line", 0)) + 1


def _plain(value: Any) -> Any:
    """ruamel containers to plain dicts and lists, scalars to str/int/float/bool."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _lists(reader: _Reader, node: Any, key: str) -> dict[str, tuple[str, ...]]:
    value = node.get(key) if isinstance(node, CommentedMap) else None
    if value is None:
        return {}
    if not isinstance(value, CommentedMap) or not all(isinstance(v, list) for v in value.values()):
        reader.problem(node, key, "invalid_type", "lists maps list names to lists of entries")
        return {}
    return {str(name): tuple(str(v) for v in entries) for name, entries in value.items()}


def _action(reader: _Reader, node: CommentedMap, key: str) -> Action | None:
    if key not in node:
        return None
    try:
        return Action(node[key])
    except ValueError:
        reader.problem(node, key, "invalid_value", f"{key} must be one of allow, review, hold, interrupt")
        return None


def _event(defaults: Mapping[str, Any], raw: Any, case: str, index: int) -> dict[str, Any]:
    event = _merge(defaults, _plain(raw) if isinstance(raw, Mapping) else {})
    event.setdefault("id", f"{case}#{index}")
    stamp = event.get("timestamp")
    base = defaults.get("timestamp")
    if isinstance(stamp, str) and isinstance(base, str) and (match := _RELATIVE.match(stamp)):
        offset = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
        event["timestamp"] = (datetime.fromisoformat(base) + offset).isoformat()
    return event


def load_test_file(path: str | Path) -> RuleTestFile:
    """Parse a rule test file; problems raise ``RuleFileError`` with their positions."""
    path = Path(path)
    reader = _Reader(path)
    try:
        doc = YAML(typ="rt", pure=True).load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RuleFileError([RuleProblem(str(path), line, column, "yaml_syntax", str(exc.problem))]) from None
    except RecursionError:
        raise RuleFileError([RuleProblem(str(path), 1, 1, "too_deep", TOO_DEEP)]) from None
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise RuleFileError([RuleProblem(str(path), 1, 1, "unreadable", str(exc))]) from None
    if not reader.keys(doc, _FILE_KEYS, "test file"):
        raise RuleFileError(reader.problems)
    defaults = _plain(doc.get("defaults") or {})
    rules_path = (path.parent / str(doc["rules"])).resolve() if "rules" in doc else path.parent
    cases: list[TestCase] = []
    seen: set[str] = set()
    for index, node in enumerate(doc.get("cases") or []):
        case = _case(reader, doc["cases"], index, node, defaults, seen)
        if case is not None:
            cases.append(case)
    invariants = [
        inv
        for i, node in enumerate(doc.get("invariants") or [])
        if (inv := _invariant(reader, doc["invariants"], i, node))
    ]
    if reader.problems:
        raise RuleFileError(reader.problems)
    return RuleTestFile(path, rules_path, defaults, tuple(cases), tuple(invariants))


def _case(  # noqa: PLR0917 (a private helper of the loader)
    reader: _Reader, seq: Any, index: int, node: Any, defaults: Mapping[str, Any], seen: set[str]
) -> TestCase | None:
    if not reader.keys(node, _CASE_KEYS, "case"):
        return None
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        reader.problem(seq, index, "missing_field", "every case needs a name")
        return None
    if name in seen:
        reader.problem(node, "name", "duplicate_case", f"case name {name!r} is used twice in this file")
    seen.add(name)
    steps: list[Step] = []
    raw_steps = node.get("events") or []
    if not isinstance(raw_steps, list) or not raw_steps:
        reader.problem(
            node, "events" if "events" in node else None, "missing_field", "a case needs a list of events"
        )
    for n, step in enumerate(raw_steps, start=1):
        if not reader.keys(step, _STEP_KEYS, "event step") or "event" not in step:
            reader.problem(
                raw_steps, n - 1, "missing_field", "each step has an 'event' and optionally 'expect'"
            )
            continue
        expect = step.get("expect") or CommentedMap()
        if not reader.keys(expect, _EXPECT_KEYS, "expect"):
            continue
        score = expect.get("score")
        if score is not None and (not isinstance(score, int) or isinstance(score, bool)):
            reader.problem(expect, "score", "invalid_type", "expect.score must be an integer")
            score = None
        resolve = step.get("resolve")
        if resolve is not None and resolve not in _OUTCOMES:
            reader.problem(step, "resolve", "invalid_value", f"resolve must be one of {', '.join(_OUTCOMES)}")
        steps.append(
            Step(
                event=_event(defaults, step["event"], name, n),
                action=_action(reader, expect, "action"),
                fires=tuple(str(r) for r in expect.get("fires") or ()),
                not_fires=tuple(str(r) for r in expect.get("not_fires") or ()),
                line=reader.line(step),
                score=None if score is None else int(score),
                resolve=resolve if resolve in _OUTCOMES else None,
            )
        )
    history = tuple(
        _event(defaults, e, f"{name}/history", n) for n, e in enumerate(node.get("history") or [], 1)
    )
    return TestCase(
        name, str(reader.path), reader.line(node), _lists(reader, node, "lists"), history, tuple(steps)
    )


def _invariant(reader: _Reader, seq: Any, index: int, node: Any) -> Invariant | None:
    if not reader.keys(node, _INVARIANT_KEYS, "invariant"):
        return None
    name = node.get("name")
    if not isinstance(name, str) or "when" not in node:
        reader.problem(seq, index, "missing_field", "an invariant needs a name and a 'when' condition")
        return None
    at_least, at_most = _action(reader, node, "at_least"), _action(reader, node, "at_most")
    if at_least is None and at_most is None:
        reader.problem(node, None, "missing_field", "an invariant needs at_least or at_most")
        return None
    return Invariant(
        name,
        str(reader.path),
        reader.line(node),
        _plain(node["when"]),
        at_least,
        at_most,
        _lists(reader, node, "lists"),
    )


# -- running ------------------------------------------------------------------------------------------


def _guard(ruleset: RuleSet, lists: Mapping[str, tuple[str, ...]], engine: str) -> Guard:
    guard = Guard(ruleset, engine=engine, on_error="raise")
    for name, entries in lists.items():
        guard.set_list(name, entries)
    return guard


def _describe(decision: Decision) -> str:
    hits = ", ".join(f"{h.rule_id} ({h.effect})" for h in decision.hits) or "none"
    return f"hits: {hits}"


def run_case(case: TestCase, ruleset: RuleSet, engine: str = "auto") -> CaseResult:
    """Run one case on a fresh guard and store."""
    result = CaseResult(case.name, case.path, case.line, "passed")
    if case.skipped:
        result.status, result.message = "skipped", "todo"
        return result
    try:
        guard = _guard(ruleset, case.lists, engine)
        guard.record(case.history)
        failures = []
        for number, step in enumerate(case.steps, start=1):
            decision = guard.evaluate(step.event)
            result.fired |= {h.rule_id for h in (*decision.hits, *decision.shadow_hits)}
            ids = set(decision.rule_ids) | {h.rule_id for h in decision.shadow_hits}
            problems = []
            if step.action is not None and decision.action is not step.action:
                problems.append(f"expected action {step.action.value}, got {decision.action.value}")
            if step.score is not None and decision.score != step.score:
                problems.append(f"expected score {step.score}, got {decision.score}")
            missing = [r for r in step.fires if r not in ids]
            if missing:
                problems.append(f"expected {', '.join(missing)} to fire")
            unexpected = [r for r in step.not_fires if r in ids]
            if unexpected:
                problems.append(f"expected {', '.join(unexpected)} not to fire")
            if step.resolve is not None:
                if decision.stopped:
                    guard.resolve(decision.decision_id, step.resolve)
                else:
                    problems.append(f"resolve: {step.resolve} needs a stop, got {decision.action.value}")
            if problems:
                failures.append(
                    f"{case.path}:{step.line}: event {number}: {'; '.join(problems)}; {_describe(decision)}"
                )
    except (InvalidEventError, ValueError, KeyError, PayguardError) as exc:
        result.status, result.message = "failed", f"{case.path}:{case.line}: {type(exc).__name__}: {exc}"
        return result
    if failures:
        result.status, result.message = "failed", "\n".join(failures)
    return result


def run_rule_tests(
    paths: Iterable[str | Path] | str | Path,
    *,
    select: str | None = None,
    fuzz: int = 0,
    engine: str = "auto",
) -> TestReport:
    """Run every case (and, with ``fuzz``, every invariant) of the rule test files at ``paths``.

    ``select`` keeps the cases whose name contains it (or matches it as a glob). Raises ``RuleFileError``
    when a rule or test file cannot be loaded.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = [load_test_file(p) for p in find_test_files(paths)]
    report = TestReport()
    rulesets: dict[Path, RuleSet] = {}
    for test_file in files:
        ruleset = rulesets.get(test_file.rules_path)
        if ruleset is None:
            ruleset = rulesets[test_file.rules_path] = load_rule_set(test_file.rules_path)
            report.rules[str(test_file.rules_path)] = {rule.id for rule in ruleset.rules}
        for case in test_file.cases:
            if _selected(case.name, select):
                report.results.append(run_case(case, ruleset, engine))
        if fuzz:
            from ._invariants import check_invariant

            for invariant in test_file.invariants:
                if _selected(invariant.name, select):
                    report.results.append(
                        check_invariant(invariant, ruleset, test_file.defaults, fuzz, engine)
                    )
    return report


def _selected(name: str, pattern: str | None) -> bool:
    return pattern is None or pattern in name or fnmatch.fnmatch(name, pattern)


def is_rule_test_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and is_test_file(path)
