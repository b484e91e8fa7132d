"""The public API is exactly payguard.__all__; changing it must be deliberate."""

from __future__ import annotations

import payguard

EXPECTED = [
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


def test_the_export_list_is_sorted_and_unchanged() -> None:
    assert payguard.__all__ == EXPECTED
    assert sorted(EXPECTED) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in payguard.__all__:
        assert hasattr(payguard, name), name


def test_every_error_derives_from_the_one_root() -> None:
    errors = [getattr(payguard, n) for n in payguard.__all__ if n.endswith("Error") and n != "FieldError"]
    assert errors
    for error in errors:
        assert issubclass(error, payguard.PayguardError), error
