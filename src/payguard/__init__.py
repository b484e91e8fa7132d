"""payguard: stop scam payments before the money leaves the victim's bank.

import payguard
guard = payguard.Guard.from_path("rules/")
decision = guard.evaluate(event)      # decision.action: allow < review < hold < interrupt
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._audit.trail import AuditTrail
from ._audit.verify import VerifyReport, verify_file
from ._decision import Action, Decision, Hit, RulesetRef
from ._errors import (
    AuditError,
    EngineError,
    FieldError,
    InvalidEventError,
    PayguardError,
    RuleFileError,
    RuleProblem,
    StoreError,
    UnknownDecisionError,
)
from ._event import Event, parse_event
from ._guard import Guard
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet
from ._stores.interface import Store
from ._stores.memory import MemoryStore
from ._stores.sqlite import SQLiteStore

try:
    __version__ = version("payguard")
except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "Action",
    "AuditError",
    "AuditTrail",
    "Decision",
    "EngineError",
    "Event",
    "FieldError",
    "Guard",
    "Hit",
    "InvalidEventError",
    "MemoryStore",
    "PayguardError",
    "RuleFileError",
    "RuleProblem",
    "RuleSet",
    "RulesetRef",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UnknownDecisionError",
    "VerifyReport",
    "__version__",
    "load_rule_set",
    "parse_event",
    "verify_file",
]
