"""Tools for people who write rules: the rule-test runner, the scenario runner and hypothesis strategies.

    from payguard.testing import run_rule_tests, run_scenarios
    report = run_rule_tests("rules/")
    assert not report.failed
    print(run_scenarios("rules/scenarios", rules="rules/").summary.to_dict())

``payguard.testing.strategies`` needs hypothesis (installed with the ``testing`` or ``dev`` extra).
"""

from __future__ import annotations

from ._runner import CaseResult, Invariant, RuleTestFile, TestCase, TestReport, load_test_file, run_rule_tests
from ._scenarios import (
    MoneyLetThrough,
    ScenarioReport,
    ScenarioSummary,
    StepResult,
    StoryResult,
    run_scenarios,
    run_story,
)
from ._stories import Story, StoryStep, load_stories, load_story

__all__ = [
    "CaseResult",
    "Invariant",
    "MoneyLetThrough",
    "RuleTestFile",
    "ScenarioReport",
    "ScenarioSummary",
    "StepResult",
    "Story",
    "StoryResult",
    "StoryStep",
    "TestCase",
    "TestReport",
    "load_stories",
    "load_story",
    "load_test_file",
    "run_rule_tests",
    "run_scenarios",
    "run_story",
]
