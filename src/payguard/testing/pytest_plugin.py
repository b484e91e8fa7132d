"""A pytest plugin that collects rule test files (``*_test.yaml``), so ``pytest rules/`` runs them.

Registered through the ``pytest11`` entry point; each case becomes a test item that fails with the
case's own message (file, line, expected and actual action, hits).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .._errors import RuleFileError
from .._rules.loader import load_rule_set
from .._rules.model import RuleSet
from ._runner import TestCase, is_rule_test_file, load_test_file, run_case, unknown_rules


class RuleCaseError(Exception):
    """A rule test case failed; its message is the report."""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # Only files that look like rule tests (a top-level cases: or invariants: key), so that a project's
    # unrelated *_test.yaml files are left alone.
    if is_rule_test_file(file_path) and _looks_like_rule_tests(file_path):
        return RuleTestYaml.from_parent(parent, path=file_path)
    return None


def _looks_like_rule_tests(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith(("cases:", "invariants:")) for line in text.splitlines())


class RuleTestYaml(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        test_file = load_test_file(self.path)
        ruleset = load_rule_set(test_file.rules_path)
        unknown = unknown_rules(test_file, ruleset)
        if unknown:
            raise RuleFileError(unknown)
        for case in test_file.cases:
            yield RuleCaseItem.from_parent(self, name=case.name, case=case, ruleset=ruleset)


class RuleCaseItem(pytest.Item):
    def __init__(self, *, case: TestCase, ruleset: RuleSet, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.ruleset = ruleset

    def runtest(self) -> None:
        if self.case.skipped:
            pytest.skip("todo")
        result = run_case(self.case, self.ruleset)
        if result.status == "failed":
            raise RuleCaseError(result.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, RuleCaseError | RuleFileError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"rule case: {self.name}"
