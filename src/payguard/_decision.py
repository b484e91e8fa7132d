"""Decisions: what payguard answers for one event, as a frozen value with a stable JSON form.

Combining policy: the decision's action is the most severe action among the *enforced* rules that matched
(``allow`` when none did). Shadow rules are evaluated and reported in ``shadow_hits`` but never change the
action, so a new rule can be watched in production before it is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

__all__ = ["Action", "Decision", "Hit", "RulesetRef", "isoformat", "most_severe", "utcoffset"]


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


_TWO_DIGITS: Final = tuple(f"{n:02d}" for n in range(100))
# "+08:00" for a UTC offset of 28,800 seconds; filled as offsets are seen (a handful of zones in practice)
_OFFSET_TEXT: Final[dict[int, str]] = {}


# The UTC offset of the datetime asked last, kept with it: the feature engine turns an event's time into
# epoch seconds and the audit record writes the same datetime as text a moment later, and pydantic's time
# zone answers ``utcoffset`` through a C-API call with a format string (3,500 instructions). The entry holds
# the datetime, so its identity cannot be reused while the entry lives; a tuple is replaced whole, so a
# thread never reads one datetime's offset with another's.
_last_offset: tuple[datetime | None, timedelta | None] = (None, None)


def utcoffset(moment: datetime) -> timedelta | None:
    """``moment.utcoffset()``, remembered for the datetime asked last."""
    global _last_offset  # noqa: PLW0603 (a one-entry cache, replaced whole)
    last = _last_offset
    if last[0] is moment:
        return last[1]
    offset = moment.utcoffset()
    _last_offset = (moment, offset)
    return offset


def isoformat(moment: datetime) -> str:
    """``moment.isoformat()``, for the aware datetimes of decisions and audit records, assembled from
    two-digit strings: CPython 3.11 formats through ``PyUnicode_FromFormat`` and ``sprintf``, about 11,000
    instructions a call, and every audit record writes two. Anything unusual (a naive datetime, a year
    before 1000, an offset with seconds) goes to ``isoformat`` itself."""
    year = moment.year
    if year < 1000:
        return moment.isoformat()
    if moment.tzinfo is UTC:  # evaluated_at
        suffix = "+00:00"
    else:
        offset = utcoffset(moment)
        if offset is None:
            return moment.isoformat()
        seconds = offset.days * 86400 + offset.seconds
        found = _OFFSET_TEXT.get(seconds)
        if found is None:
            if seconds % 60 or offset.microseconds:
                return moment.isoformat()
            minutes = abs(seconds) // 60
            found = f"{'-' if seconds < 0 else '+'}{_TWO_DIGITS[minutes // 60]}:{_TWO_DIGITS[minutes % 60]}"
            _OFFSET_TEXT[seconds] = found
        suffix = found
    two = _TWO_DIGITS
    micro = moment.microsecond
    fraction = f".{two[micro // 10000]}{two[micro // 100 % 100]}{two[micro % 100]}" if micro else ""
    return (
        f"{year}-{two[moment.month]}-{two[moment.day]}T{two[moment.hour]}:{two[moment.minute]}:"
        f"{two[moment.second]}{fraction}{suffix}"
    )


def most_severe(actions: Iterable[Action]) -> Action:
    """The most severe of ``actions``; ``allow`` for none."""
    return max(actions, key=_SEVERITY.__getitem__, default=Action.ALLOW)


@dataclass(frozen=True)
class Hit:
    """One rule that matched: its id, its action and the reason shown to the analyst and the customer."""

    rule_id: str
    action: Action
    reason: str
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule_id": self.rule_id, "action": self.action._value_, "reason": self.reason}
        if self.tags:
            data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        return cls(data["rule_id"], Action(data["action"]), data["reason"], tuple(data.get("tags", ())))


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
    ) -> None:
        # Written out rather than generated by dataclasses: compiled, these are direct stores, where the
        # generated __init__ of a frozen dataclass calls object.__setattr__ field by field (1.5 us a
        # decision). Assignment from outside still raises FrozenInstanceError.
        self.decision_id = decision_id  # type: ignore[misc]
        self.event_id = event_id  # type: ignore[misc]
        self.action = action  # type: ignore[misc]
        self.hits = hits  # type: ignore[misc]
        self.shadow_hits = shadow_hits  # type: ignore[misc]
        self.ruleset = ruleset  # type: ignore[misc]
        self.engine = engine  # type: ignore[misc]
        self.evaluated_at = evaluated_at  # type: ignore[misc]
        self.event_time = event_time  # type: ignore[misc]
        self.features = MappingProxyType(dict(features or {}))  # type: ignore[misc]
        self.error = error  # type: ignore[misc]

    @property
    def stopped(self) -> bool:
        """Whether the payment is stopped (hold or interrupt)."""
        return self.action.stops

    @property
    def reason(self) -> str | None:
        """The reason to show: that of the first enforced hit with the decision's action (None for allow)."""
        return next((hit.reason for hit in self.hits if hit.action is self.action), None)

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
        }
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
        )
