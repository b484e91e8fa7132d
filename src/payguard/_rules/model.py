"""A loaded rule set: ``Rule``, ``RuleSet``, and which files of a directory are rule files."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._common.text import normalize_account, text_normalizer
from .._decision import Action
from .._errors import FieldError, PayguardError, RuleProblem
from .._event import Event
from .conditions import (
    Condition,
    Pred,
    leaves,
)
from .fields import EVENT_FIELDS, FEATURES, FieldSpec, Kind

__all__ = ["Rule", "RuleSet", "is_test_file", "list_entries", "rule_files"]

MAX_RULES = 4000
MAX_LIST_VALUES = 100_000
MAX_REGEX = 1000
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Rule:
    """One rule, as loaded: its condition tree, its action or score (or both), and where it was written."""

    id: str
    description: str
    action: Action | None
    reason: str
    condition: Condition
    tags: tuple[str, ...] = ()
    shadow: bool = False
    path: str = "<memory>"
    line: int = 0
    score: int | None = None

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(leaf.field for leaf in leaves(self.condition))

    @property
    def reads_list(self) -> bool:
        """Whether the condition looks a value up in a named list (``in_list``)."""
        return any(isinstance(leaf, Pred) and leaf.kind == "in_list" for leaf in leaves(self.condition))

    @property
    def snoozable(self) -> bool:
        """Whether a snooze may suppress this rule: not an interrupt that reads a list (a fraud-list hit
        must never be snoozed away)."""
        return not (self.action is Action.INTERRUPT and self.reads_list)


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
    # score thresholds, most severe first: ((80, interrupt), (50, hold), (20, review)); empty: no scoring
    scoring: tuple[tuple[int, Action], ...] = ()
    # the list that a payee resolved as fraud joins (``Guard.resolve``)
    confirmed_fraud_list: str = "fraud_accounts"
    # what the lint found (conditions that can never be true): reported by ``payguard check``, not fatal
    lint: tuple[RuleProblem, ...] = ()
    # parameters overridden when loading (``payguard replay --set``), by name
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # whether texts keep their combining marks for keyword matching (some phrase carries one)
    keep_marks: bool = False
    # the attributes declared ``public: true``: shown in clear in the audit's evidence (others are masked)
    public_attributes: frozenset[str] = frozenset()
    # reference rates (``fx``): units of ``currency`` per unit of each other currency (``_rules.fx``)
    fx: Mapping[str, Decimal] = field(default_factory=dict)
    # the action at least of a payment in a currency no money test can read (no rate): fail closed
    unrated_currency: Action = Action.REVIEW

    @property
    def normalize_text(self) -> Callable[[str], str]:
        """How this rule set normalises texts for keyword matching (``_common.text``)."""
        return text_normalizer(self.keep_marks)

    def rule(self, rule_id: str) -> Rule | None:
        """The rule with id ``rule_id``, if the rule set has one."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def check_snoozable(self, rule_id: str) -> None:
        """``PayguardError`` unless ``rule_id`` names a rule that a snooze may suppress."""
        rule = self.rule(rule_id)
        if rule is None:
            close = difflib.get_close_matches(rule_id, [r.id for r in self.rules], n=1, cutoff=0.6)
            raise PayguardError(
                f"cannot snooze {rule_id!r}: the rule set {self.id!r} has no such rule"
                + (f" (did you mean {close[0]!r}?)" if close else "")
            )
        if not rule.snoozable:
            raise PayguardError(
                f"cannot snooze {rule_id!r}: it interrupts on a list lookup, and a list hit must never be "
                "snoozed away (take the account off the list instead)"
            )

    def field_spec(self, name: str) -> FieldSpec:
        if name.startswith("attributes."):
            return self.attributes[name.removeprefix("attributes.")]
        return EVENT_FIELDS.get(name) or FEATURES[name]

    def attribute_errors(self, event: Event) -> list[FieldError]:
        """The event's attributes whose type is not the one this rule set declares for them."""
        attributes = event.attributes
        if not attributes or not self.attributes:
            return []
        errors = []
        for name, spec in self.attributes.items():
            value = attributes.get(name)
            if value is not None and not _fits(spec.kind, value):
                message = f"the rule set declares it {spec.kind.value}, got {type(value).__name__}"
                errors.append(FieldError(spec.name, message))
        return errors


def _fits(kind: Kind, value: Any) -> bool:
    """Whether an attribute value has the type the rule set declared for it."""
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Kind.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def is_test_file(path: Path) -> bool:
    return path.stem.endswith("_test")


def rule_files(path: Path) -> list[Path]:
    """The rule files of ``path``: the file itself, or the ``*.yaml``/``*.yml`` files of a directory."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not is_test_file(p))
    return [path]


def list_entries(name: str, entries: Iterable[object]) -> frozenset[str]:
    """The entries of a named list as matching reads them (normalised account numbers, blanks dropped).

    ``entries`` is a collection of strings: a lone string (whose characters would become the entries) or a
    non-string entry raises ``TypeError``, before anything changes.
    """
    if isinstance(entries, str | bytes | bytearray):
        raise TypeError(
            f"set_list({name!r}, ...) takes a collection of account numbers, not one "
            f"{type(entries).__name__} (write [{'value'!r}] for a single entry)"
        )
    items = list(entries)
    wrong = sorted({type(e).__name__ for e in items if not isinstance(e, str)})
    if wrong:
        raise TypeError(
            f"set_list({name!r}, ...): every entry must be a string (an account number), "
            f"found {', '.join(wrong)}"
        )
    return frozenset(normalize_account(e) for e in items if isinstance(e, str) and e.strip())
