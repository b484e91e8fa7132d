"""The rule-test toolkit: cases beside the rules, coverage, invariants and the pytest plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given

from payguard import RuleFileError, parse_event
from payguard._cli import main
from payguard.testing import run_rule_tests
from payguard.testing import strategies as pgst

from ..conftest import HEADER

RULES = HEADER + textwrap.dedent("""
    lists:
      fraud_accounts: []
    rules:
      - {id: fraud_payee, description: d, when: {payee.account: {in_list: fraud_accounts}}, action: hold, reason: Listed.}
      - {id: call_new, description: d, when: {session.on_call: true, is_new_payee: true}, action: hold, reason: Call.}
      - {id: never_tested, description: d, when: {amount: {gt: 999999}}, action: review, reason: Huge.}
""")

TESTS = textwrap.dedent("""
    defaults:
      timestamp: "2026-03-02T10:00:00+08:00"
      amount: "100"
      currency: CNY
      payer: {account: "6222-0001"}
      payee: {account: "6222-0002", type: personal}
    cases:
      - name: a call with a new payee is held
        events:
          - event: {session: {on_call: true}}
            expect: {action: hold, fires: [call_new], not_fires: [fraud_payee]}
      - name: a call with a known payee is allowed
        history:
          - {timestamp: "2026-02-01T10:00:00+08:00"}
        events:
          - event: {session: {on_call: true}, timestamp: "+1h"}
            expect: {action: allow}
      - name: listed payees are stopped
        lists: {fraud_accounts: ["6222 0002"]}
        events:
          - event: {}
            expect: {action: hold, fires: [fraud_payee]}
      - name: todo_ screen sharing
        events:
          - event: {}
""")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "rules_test.yaml").write_text(TESTS, encoding="utf-8")
    return tmp_path


def test_cases_pass_and_todo_cases_are_skipped(suite: Path) -> None:
    report = run_rule_tests(suite)
    assert [(r.name, r.status) for r in report.results] == [
        ("a call with a new payee is held", "passed"),
        ("a call with a known payee is allowed", "passed"),
        ("listed payees are stopped", "passed"),
        ("todo_ screen sharing", "skipped"),
    ]


def test_the_command_prints_pass_fail_and_a_summary(suite: Path) -> None:
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "PASS a call with a new payee is held"
    assert "SKIP todo_ screen sharing" in result.stdout
    assert "3 passed, 0 failed, 1 skipped" in result.stdout


def test_a_failing_case_names_its_line_and_shows_expected_and_actual(suite: Path) -> None:
    path = suite / "rules_test.yaml"
    path.write_text(
        TESTS.replace("expect: {action: allow}", "expect: {action: interrupt, fires: [never_tested]}")
    )
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 1
    assert "FAIL a call with a known payee is allowed" in result.stdout
    assert (
        f"{path}:17: event 1: expected action interrupt, got allow; expected never_tested to fire; hits: none"
        in result.stdout
    )


def test_broken_rule_or_test_files_exit_3_with_positions(suite: Path) -> None:
    (suite / "rules_test.yaml").write_text(
        TESTS.replace("expect: {action: hold, fires: [fraud_payee]}", "expect: {acton: hold}")
    )
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 3
    assert "rules_test.yaml:23:18: unknown_key: unknown expect key 'acton'" in result.stderr
    (suite / "rules_test.yaml").write_text(TESTS)
    (suite / "rules.yaml").write_text(RULES.replace("is_new_payee", "is_new_paye"))
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 3
    assert "rules.yaml:11:66: unknown_field" in result.stderr
    assert "did you mean 'is_new_payee'" in result.stderr


def test_k_selects_cases_and_json_is_machine_readable(suite: Path) -> None:
    result = CliRunner().invoke(main, ["test", str(suite), "-k", "listed", "--format", "json"])
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["results"]] == ["listed payees are stopped"]
    assert data["summary"] == {"passed": 1, "failed": 0, "skipped": 0}


def test_coverage_counts_exactly_the_rules_no_case_fired(suite: Path) -> None:
    report = run_rule_tests(suite)
    assert report.unfired() == ["never_tested"]
    assert report.coverage() == pytest.approx(200 / 3)
    result = CliRunner().invoke(main, ["test", str(suite), "--coverage", "--fail-under", "100"])
    assert result.exit_code == 1
    assert "rule coverage: 66.7%" in result.stdout
    assert "not fired by any case: never_tested" in result.stdout
    assert CliRunner().invoke(main, ["test", str(suite), "--fail-under", "60"]).exit_code == 0


def test_an_invariant_with_a_planted_counterexample_is_found(suite: Path) -> None:
    path = suite / "rules_test.yaml"
    path.write_text(
        TESTS
        + textwrap.dedent("""
        invariants:
          - name: payments to fraud accounts are interrupted
            when: {payee.account: {in_list: fraud_accounts}}
            at_least: interrupt
            lists: {fraud_accounts: ["6222-9999"]}
          - name: small payments to listed accounts are at least held
            when: {payee.account: {in_list: fraud_accounts}, amount: {lt: 50}}
            at_least: hold
            lists: {fraud_accounts: ["6222-9999"]}
    """)
    )
    report = run_rule_tests(suite, fuzz=60)
    broken, holding = (r for r in report.results if r.kind == "invariant")
    assert broken.status == "failed"
    assert (
        "invariant broken: expected at least interrupt, got hold (hits: fraud_payee (hold))" in broken.message
    )
    assert "6222-9999" in broken.message
    assert holding.status == "passed", holding.message


def test_rule_test_files_run_under_pytest(suite: Path) -> None:
    (suite / "settings_test.yaml").write_text("database: sqlite\n")  # a project's own YAML: not collected
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-rs"],
        capture_output=True,
        text=True,
        cwd=suite,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 1 skipped" in result.stdout
    (suite / "rules_test.yaml").write_text(TESTS.replace("expect: {action: allow}", "expect: {action: hold}"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=suite,
        check=False,
    )
    assert result.returncode == 1
    assert "expected action hold, got allow" in result.stdout


@given(pgst.events(types=["transfer_out", "transfer_in", "cash_withdrawal", "login"], amounts=(1, 500)))
def test_the_event_strategy_draws_valid_canonical_events(event: dict[str, object]) -> None:
    parsed = parse_event(event)
    assert parsed.amount is None or parsed.amount <= 500


LIFECYCLE_RULES = textwrap.dedent("""
    ruleset:
      id: lifecycle
      version: "1"
      currency: CNY
      scoring: {review: 20, hold: 50}
    lists:
      fraud_accounts: []
    rules:
      - {id: new_payee, description: d, when: {is_new_payee: true}, score: 30, reason: New payee.}
      - {id: on_call, description: d, when: {session.on_call: true}, score: 30, reason: On a call.}
      - {id: contact, description: d, when: {session.caller_in_contacts: true}, score: -40, reason: Contact.}
      - {id: listed, description: d, when: {payee.account: {in_list: fraud_accounts}}, action: interrupt, reason: Listed.}
""")

LIFECYCLE_TESTS = textwrap.dedent("""
    defaults:
      timestamp: "2026-03-02T10:00:00+08:00"
      amount: "3000"
      currency: CNY
      payer: {account: "6222-0001"}
      payee: {account: "6222-0002", type: personal}
    cases:
      - name: a hold resolved as legitimate makes the payee known
        events:
          - event: {session: {on_call: true}}
            expect: {action: hold, score: 60}
            resolve: legitimate
          - event: {session: {on_call: true}, timestamp: "+10m"}
            expect: {action: review, score: 30}
      - name: a hold resolved as fraud lists the payee
        events:
          - event: {session: {on_call: true}}
            expect: {action: hold}
            resolve: fraud
          - event: {timestamp: "+1h"}
            expect: {action: interrupt, fires: [listed]}
      - name: a contact on the call lowers the score
        events:
          - event: {session: {on_call: true, caller_in_contacts: true}}
            expect: {action: review, score: 20}
""")


def test_rule_tests_resolve_stops_and_check_scores(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(LIFECYCLE_RULES, encoding="utf-8")
    (tmp_path / "rules_test.yaml").write_text(LIFECYCLE_TESTS, encoding="utf-8")
    report = run_rule_tests(tmp_path)
    assert [(r.name, r.status) for r in report.results] == [
        ("a hold resolved as legitimate makes the payee known", "passed"),
        ("a hold resolved as fraud lists the payee", "passed"),
        ("a contact on the call lowers the score", "passed"),
    ], [r.message for r in report.results]


def test_a_wrong_score_or_a_resolve_without_a_stop_fails_the_case(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(LIFECYCLE_RULES, encoding="utf-8")
    (tmp_path / "rules_test.yaml").write_text(
        textwrap.dedent("""
            defaults: {timestamp: "2026-03-02T10:00:00+08:00", amount: "3000", currency: CNY,
                       payer: {account: "6222-0001"}, payee: {account: "6222-0002"}}
            cases:
              - name: wrong
                events:
                  - event: {}
                    expect: {score: 45}
                    resolve: legitimate
        """),
        encoding="utf-8",
    )
    message = run_rule_tests(tmp_path).results[0].message or ""
    assert "expected score 45, got 30" in message
    assert "resolve: legitimate needs a stop, got review" in message


def test_a_resolve_that_is_not_an_outcome_is_a_positioned_problem(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(LIFECYCLE_RULES, encoding="utf-8")
    (tmp_path / "rules_test.yaml").write_text(
        "cases:\n  - name: n\n    events:\n      - event: {}\n        resolve: released\n", encoding="utf-8"
    )
    with pytest.raises(RuleFileError, match=r"rules_test.yaml:5:9: .*resolve must be one of legitimate"):
        run_rule_tests(tmp_path)


def test_a_misspelled_rule_id_under_not_fires_or_fires_is_refused_with_a_suggestion(suite: Path) -> None:
    path = suite / "rules_test.yaml"
    path.write_text(TESTS.replace("not_fires: [fraud_payee]", "not_fires: [fraud_paye]"))
    result = CliRunner().invoke(main, ["test", str(suite)])
    assert result.exit_code == 3  # it would otherwise always pass: the misspelled rule never fires
    assert (
        f"{path}:12:63: unknown_rule: case 'a call with a new payee is held' expects rule 'fraud_paye', which "
        "the rule set 'test' does not have (did you mean 'fraud_payee'?)"
    ) in result.stderr
    path.write_text(TESTS.replace("fires: [call_new]", "fires: [cal_new]"))
    with pytest.raises(RuleFileError) as caught:
        run_rule_tests(suite)
    assert [(p.code, p.suggestion) for p in caught.value.problems] == [("unknown_rule", "call_new")]
