"""Every error payguard raises.

The tree::

    PayguardError
    ├── InvalidEventError (also ValueError)  an event failed validation; ``.errors`` names every bad field
    │   └── DuplicateEventError              an event id decided before came again with other content
    ├── RuleFileError (also ValueError)      a rule file has problems; ``.problems`` lists every one
    ├── EngineError                          the matching engine failed; the cause is chained
    ├── StoreError                           the feature store failed or was misused
    ├── AuditError                           an audit record could not be handed to its sink
    └── UnknownDecisionError (also KeyError) ``release`` named a decision that is unknown or not held
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuditError",
    "DuplicateEventError",
    "EngineError",
    "FieldError",
    "InvalidEventError",
    "PayguardError",
    "RuleFileError",
    "RuleProblem",
    "StoreError",
    "UnknownDecisionError",
]


class PayguardError(Exception):
    """The root of every error payguard raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an event, named by its dotted path (``payee.account``)."""

    field: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidEventError(PayguardError, ValueError):
    """An event is not in the canonical form. ``errors`` holds every bad field, not just the first."""

    def __init__(self, errors: Sequence[FieldError], event_id: str | None = None) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.event_id = event_id
        where = f"event {event_id!r}" if event_id else "event"
        detail = "; ".join(str(e) for e in self.errors)
        super().__init__(f"invalid {where}: {detail}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The dotted paths of the bad fields, in the order found."""
        return tuple(e.field for e in self.errors)


class DuplicateEventError(InvalidEventError):
    """An event id that was decided before came again with other content (``decision_id``: the first
    decision). An id names one event: a repeat with the same content gets the first decision back."""

    def __init__(self, event_id: str, decision_id: str) -> None:
        self.decision_id = decision_id
        message = (
            f"was decided before (decision {decision_id}) for an event with other content; "
            "a repeated event id must carry the same event"
        )
        super().__init__([FieldError("id", message, "duplicate_id")], event_id)


@dataclass(frozen=True)
class RuleProblem:
    """One problem in a rule file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    code: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{self.path}:{self.line}:{self.column}: {self.code}: {self.message}{hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "suggestion": self.suggestion,
        }


class RuleFileError(PayguardError, ValueError):
    """A rule set could not be loaded. ``problems`` lists every problem found, each with its position."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems: tuple[RuleProblem, ...] = tuple(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in rule files"
        super().__init__(header + ":\n" + "\n".join(str(p) for p in self.problems))


class EngineError(PayguardError):
    """The matching engine failed. The original exception is chained as ``__cause__``."""


class StoreError(PayguardError):
    """The feature store failed, or was used in a way it does not allow."""


class AuditError(PayguardError):
    """An audit record could not be written. The decision must not be acted on."""


class UnknownDecisionError(PayguardError, KeyError):
    """``Guard.release`` named a decision that is unknown or was not a hold."""
