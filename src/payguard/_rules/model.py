"""A loaded rule set: ``Rule``, ``RuleSet``, and which files of a directory are rule files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._decision import Action
from .._errors import FieldError
from .._event import Event
from .conditions import (
    Condition,
    leaves,
)
from .fields import EVENT_FIELDS, FEATURES, FieldSpec, Kind

__all__ = ["Rule", "RuleSet", "is_test_file", "rule_files"]

MAX_RULES = 4000
MAX_LIST_VALUES = 100_000
MAX_REGEX = 1000
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
