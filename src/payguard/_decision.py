"""Decisions: what payguard answers for one event, as a frozen value with a stable JSON form.

Combining policy: the decision's action is the most severe of the actions of the *enforced* rules that
matched and, when the rule set scores, the action whose threshold the sum of their scores reaches
(``allow`` when neither gives one). Shadow rules are evaluated and reported in ``shadow_hits`` (with their
scores) but never change the action or the score, so a new rule can be watched before it is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from ._common.time import isoformat

__all__ = ["Action", "Decision", "Hit", "RulesetRef", "json_value", "most_severe"]


class Action(StrEnum):
    """What to do with a payment, from least to most severe: allow < review < hold < interrupt."""

    ALLOW = "allow"
    REVIEW = "review"
    HOLD = "hold"
    INTERRUPT = "interrupt"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Action):
            return self.severity < other.severity
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Action):
            return self.severity <= other.severity
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Action):
            return self.severity > other.severity
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Action):
            return self.severity >= other.severity
        return NotImplemented

    @property
    def stops(self) -> bool:
        """Whether the payment is stopped (hold or interrupt) rather than executed."""
        return self.severity >= 2


_SEVERITY: Final = {Action.ALLOW: 0, Action.REVIEW: 1, Action.HOLD: 2, Action.INTERRUPT: 3}


def json_value(value: Any) -> Any:
    """A feature's or field's value as JSON shows it (money as decimal text, lists as lists)."""
    kind = type(value)
    if kind is Decimal:
        return str(value)
    if kind is tuple:
        return list(value)
    return value


def most_severe(actions: Iterable[Action]) -> Action:
    """The most severe of ``actions``; ``allow`` for none."""
    return max(actions, key=_SEVERITY.__getitem__, default=Action.ALLOW)


@dataclass(frozen=True)
class Hit:
    """One rule that matched: its id, its action and score (either may be None, not both), and the reason
    shown to the analyst and the customer."""

    rule_id: str
    action: Action | None
    reason: str
    tags: tuple[str, ...] = ()
    score: int | None = None

    @property
    def effect(self) -> str:
        """What the hit does, as people read it: ``hold``, ``score +30``, ``hold, score -10``."""
        parts = [] if self.action is None else [self.action._value_]
        if self.score is not None:
            parts.append(f"score {self.score:+d}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        action = self.action
        data: dict[str, Any] = {
            "rule_id": self.rule_id,
            "action": None if action is None else action._value_,
            "reason": self.reason,
        }
        if self.score is not None:
            data["score"] = self.score
        if self.tags:
            data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        action = data["action"]
        return cls(
            data["rule_id"],
            None if action is None else Action(action),
            data["reason"],
            tuple(data.get("tags", ())),
            data.get("score"),
        )


@dataclass(frozen=True)
class RulesetRef:
    """Which rule set made a decision: its id, version and the digest of the files it was loaded from."""

    id: str
    version: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "digest": self.digest}


@dataclass(frozen=True, init=False)
class Decision:
    """The answer for one event. Frozen; ``to_dict``/``from_dict`` round-trip through JSON."""

    decision_id: str
    event_id: str
    action: Action
    hits: tuple[Hit, ...]
    shadow_hits: tuple[Hit, ...]
    ruleset: RulesetRef
    engine: str
    evaluated_at: datetime
    event_time: datetime | None = None
    features: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    # the sum of the enforced hits' scores, and the rules a snooze kept from firing
    score: int = 0
    snoozed: tuple[str, ...] = ()
    # the versions of the lists it read, beside the rule set's digest (which covers the lists as loaded):
    # of each list set at run time (``Guard.set_list``), and of the accounts resolutions listed in the store
    lists: Mapping[str, int] = field(default_factory=dict)
    listed: int = 0

    def __init__(  # noqa: PLR0917 (the signature dataclasses would generate, positional fields included)
        self,
        decision_id: str,
        event_id: str,
        action: Action,
        hits: tuple[Hit, ...],
        shadow_hits: tuple[Hit, ...],
        ruleset: RulesetRef,
        engine: str,
        evaluated_at: datetime,
        event_time: datetime | None = None,
        features: Mapping[str, Any] | None = None,
        error: str | None = None,
        score: int = 0,
        snoozed: tuple[str, ...] = (),
        lists: Mapping[str, int] | None = None,
        listed: int = 0,
    ) -> None:
        # As dataclasses' own __init__ does (frozen); mypyc 1.19+ compiles each call to a direct store.
        object.__setattr__(self, "decision_id", decision_id)
        object.__setattr__(self, "event_id", event_id)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "hits", hits)
        object.__setattr__(self, "shadow_hits", shadow_hits)
        object.__setattr__(self, "ruleset", ruleset)
        object.__setattr__(self, "engine", engine)
        object.__setattr__(self, "evaluated_at", evaluated_at)
        object.__setattr__(self, "event_time", event_time)
        object.__setattr__(self, "features", MappingProxyType(dict(features or {})))
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "snoozed", snoozed)
        object.__setattr__(self, "lists", MappingProxyType(dict(lists or {})))
        object.__setattr__(self, "listed", listed)

    @property
    def stopped(self) -> bool:
        """Whether the payment is stopped (hold or interrupt)."""
        return self.action.stops

    @property
    def reason(self) -> str | None:
        """The reason to show: that of the first enforced hit with the decision's action, else (the score
        reached the action's threshold) that of the hit that scored most; None for allow."""
        found = next((hit.reason for hit in self.hits if hit.action is self.action), None)
        if found is None and self.action is not Action.ALLOW:
            scored = [hit for hit in self.hits if hit.score is not None and hit.score > 0]
            if scored:
                found = max(scored, key=lambda hit: hit.score or 0).reason
        return found

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(hit.rule_id for hit in self.hits)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "decision_id": self.decision_id,
            "event_id": self.event_id,
            "action": self.action._value_,
            "hits": [hit.to_dict() for hit in self.hits],
            "shadow_hits": [hit.to_dict() for hit in self.shadow_hits],
            "ruleset": self.ruleset.to_dict(),
            "engine": self.engine,
            "evaluated_at": isoformat(self.evaluated_at),
            "event_time": isoformat(self.event_time) if self.event_time else None,
            "features": dict(self.features),
            "score": self.score,
        }
        if self.snoozed:
            data["snoozed"] = list(self.snoozed)
        if self.lists:
            data["lists"] = dict(self.lists)
        if self.listed:
            data["listed"] = self.listed
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        event_time = data.get("event_time")
        return cls(
            decision_id=data["decision_id"],
            event_id=data["event_id"],
            action=Action(data["action"]),
            hits=tuple(Hit.from_dict(h) for h in data["hits"]),
            shadow_hits=tuple(Hit.from_dict(h) for h in data["shadow_hits"]),
            ruleset=RulesetRef(**data["ruleset"]),
            engine=data["engine"],
            evaluated_at=datetime.fromisoformat(data["evaluated_at"]),
            event_time=datetime.fromisoformat(event_time) if event_time else None,
            features=dict(data.get("features", {})),
            error=data.get("error"),
            score=data.get("score", 0),
            snoozed=tuple(data.get("snoozed", ())),
            lists=data.get("lists"),
            listed=data.get("listed", 0),
        )
