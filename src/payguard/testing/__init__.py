"""Tools for people who write rules: the rule-test runner and hypothesis strategies for events.

    from payguard.testing import run_rule_tests
    report = run_rule_tests("rules/")
    assert not report.failed

``payguard.testing.strategies`` needs hypothesis (installed with the ``testing`` or ``dev`` extra).
"""

from __future__ import annotations

from ._runner import CaseResult, Invariant, RuleTestFile, TestCase, TestReport, load_test_file, run_rule_tests

__all__ = [
    "CaseResult",
    "Invariant",
    "RuleTestFile",
    "TestCase",
    "TestReport",
    "load_test_file",
    "run_rule_tests",
]
