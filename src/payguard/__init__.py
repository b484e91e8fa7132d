"""payguard: stop scam payments before the money leaves the victim's bank.

import payguard
guard = payguard.Guard.from_path("rules/")
decision = guard.evaluate(event)      # decision.action: allow < review < hold < interrupt
"""

from __future__ import annotations

from ._audit.trail import AuditTrail
from ._audit.verify import VerifyReport, verify_file
from ._common.version import PAYGUARD_VERSION
from ._decision import Action, Decision, Hit, RulesetRef
from ._errors import (
    AuditError,
    DuplicateEventError,
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
from ._stores.redis import RedisStore
from ._stores.sqlite import SQLiteStore

__version__ = PAYGUARD_VERSION

__all__ = [
    "Action",
    "AuditError",
    "AuditTrail",
    "Decision",
    "DuplicateEventError",
    "EngineError",
    "Event",
    "FieldError",
    "Guard",
    "Hit",
    "InvalidEventError",
    "MemoryStore",
    "PayguardError",
    "RedisStore",
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
