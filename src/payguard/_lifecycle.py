"""What happens to a stopped payment after the decision: the bank calls the customer, then resolves it.

A ``hold`` or ``interrupt`` is resolved once, with an ``Outcome``:

- ``legitimate``: the bank verified it with the customer and executes it. It counts as executed at its
  original time (the payee becomes known, the amount enters the history) and no longer as a stop.
- ``fraud``: a confirmed scam, not executed. The payee account joins the rule set's
  ``confirmed_fraud_list`` in the store, for every later payment; the stop keeps counting.
- ``cancelled``: the customer abandoned it; nothing is executed and the stop keeps counting.

Snoozes are the other lifecycle tool: an analyst who cleared a rule for one customer (and payee) keeps it
from firing for them until a date, with a reason; an interrupt that reads a list can never be snoozed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ._common.time import isoformat
from ._decision import Action, Decision
from ._errors import PayguardError, UnknownDecisionError

__all__ = ["Outcome", "Resolution", "check_note", "check_snooze_terms", "not_stopped", "outcome_of"]

MAX_NOTE = 2048


class Outcome(StrEnum):
    """How the bank resolved a stopped payment."""

    LEGITIMATE = "legitimate"
    FRAUD = "fraud"
    CANCELLED = "cancelled"


def outcome_of(value: str) -> Outcome:
    """``value`` as an ``Outcome``; ``PayguardError`` naming the three otherwise."""
    try:
        return Outcome(value)
    except ValueError:
        raise PayguardError(f"outcome must be one of legitimate, fraud, cancelled, not {value!r}") from None


@dataclass(frozen=True)
class Resolution:
    """A stopped payment's resolution: which decision, which outcome, and when the bank resolved it."""

    decision_id: str
    event_id: str
    action: Action  # the stop resolved: hold or interrupt
    outcome: Outcome
    resolved_at: datetime
    note: str | None = None

    @property
    def executed(self) -> bool:
        """Whether the payment goes ahead."""
        return self.outcome is Outcome.LEGITIMATE

    def again(self, outcome: Outcome) -> Resolution:
        """This resolution for a second call with ``outcome``: itself if the outcome is the same, else
        ``PayguardError`` (a stop is resolved once)."""
        if self.outcome is outcome:
            return self
        raise PayguardError(
            f"decision {self.decision_id!r} was resolved as {self.outcome.value} at "
            f"{self.resolved_at.isoformat()}; it cannot be resolved as {outcome.value} as well"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "event_id": self.event_id,
            "action": self.action.value,
            "outcome": self.outcome.value,
            "resolved_at": isoformat(self.resolved_at),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resolution:
        return cls(
            decision_id=data["decision_id"],
            event_id=data["event_id"],
            action=Action(data["action"]),
            outcome=Outcome(data["outcome"]),
            resolved_at=datetime.fromisoformat(data["resolved_at"]),
            note=data.get("note"),
        )


def check_note(note: str | None) -> None:
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise PayguardError(f"a resolution's note must be a string of at most {MAX_NOTE} characters")


def check_snooze_terms(until: datetime, reason: str) -> None:
    """``PayguardError`` unless ``until`` is an aware datetime and ``reason`` says why."""
    if not isinstance(until, datetime) or until.utcoffset() is None:
        raise PayguardError(f"until must be a datetime with a time zone, not {until!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise PayguardError("a snooze needs a reason: say who cleared the rule for this customer and why")


def not_stopped(decision_id: str, decision: Decision | None) -> PayguardError:
    """Why ``decision_id`` (stored as ``decision``, or None) has no stopped payment to resolve."""
    if decision is None:
        return UnknownDecisionError(f"no stopped payment with decision id {decision_id!r}")
    if decision.error is not None:
        return PayguardError(
            f"decision {decision_id!r} is a hold because payguard could not evaluate the payment "
            f"({decision.error}); nothing was recorded to resolve: send the event again once fixed"
        )
    return PayguardError(
        f"decision {decision_id!r} was {decision.action.value}, and only hold and interrupt decisions "
        "are resolved (the payment already went ahead)"
    )
