"""The lint: conditions that load but can never be true are reported by ``payguard check`` at their position."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from payguard import RuleFileError, load_rule_set
from payguard._cli import main

WriteRules = Callable[..., Path]


def rule(when: str, rule_id: str = "r1") -> str:
    return f"""
rules:
  - id: {rule_id}
    description: d
    when: {when}
    action: hold
    reason: r
"""


@pytest.mark.parametrize(
    ("when", "at", "message"),
    [
        # "after 22:00 and before 06:00" written as one range (GoRules' fraud example ships this)
        (
            "{local_hour: {gte: 22, lt: 6}}",
            "6}",
            "local_hour: gte 22 and lt 6 can never all hold: the rule can never fire (hours across midnight",
        ),
        (
            "{all: [{payee.bank: A}, {payee.bank: B}]}",
            "B}",
            "payee.bank: eq 'A' and eq 'B' can never all hold",
        ),
        (
            "{all: [{type: transfer_out}, {type: transfer_in}]}",
            "transfer_in}",
            "type: eq 'transfer_out' and eq 'transfer_in' can never all hold",
        ),
        ("{local_hour: {gte: 24}}", "24}", "local_hour gte 24 is outside the values it can take (0..23)"),
        (
            "{intel.payee_mule_score: {gt: 1}}",
            "1}}",
            "intel.payee_mule_score gt 1 is outside the values it can take",
        ),
        ("{outbound_count_1h: {gt: 3, lt: 4}}", "4}}", "outbound_count_1h: gt 3 and lt 4 can never all hold"),
        (
            "{type: transfer_out, not: {type: transfer_out}}",
            "transfer_out}}",
            "type: eq 'transfer_out' and not (eq",
        ),
        (
            "{payer.age: {exists: false, gte: 65}}",
            "65}}",
            "payer.age: exists false and gte 65 can never all hold",
        ),
    ],
)
def test_a_condition_that_can_never_be_true_is_a_positioned_problem(
    write_rules: WriteRules, when: str, at: str, message: str
) -> None:
    path = write_rules(rule(when))
    ruleset = load_rule_set(path)  # it loads: a dead rule is harmless at run time, and check says so
    [problem] = ruleset.lint
    column = path.read_text().splitlines()[9].rindex(at) + 1  # at the last of the tests involved
    assert (problem.path, problem.line, problem.column, problem.code) == (str(path), 10, column, "never_true")
    assert problem.message.startswith("rule 'r1': ")
    assert message in problem.message


def test_one_dead_alternative_is_reported_without_saying_the_rule_never_fires(
    write_rules: WriteRules,
) -> None:
    ruleset = load_rule_set(
        write_rules(rule("{any: [{payer.age: {gt: 80, lt: 70}}, {session.on_call: true}]}"))
    )
    [problem] = ruleset.lint
    assert "payer.age: gt 80 and lt 70 can never all hold" in problem.message
    assert "never fire" not in problem.message


@pytest.mark.parametrize(
    "when",
    [
        "{any: [{local_hour: {gte: 22}}, {local_hour: {lt: 6}}]}",
        "{not: {type: transfer_out}, amount: {gt: 1}}",
        "{outbound_count_1h: {gte: 3, lte: 3}}",
        "{not: {amount: {gte: 100}}, amount: {gte: 50}}",
        "{type: [transfer_out, transfer_in], not: {type: transfer_in}}",
    ],
)
def test_conditions_that_can_be_true_are_not_reported(write_rules: WriteRules, when: str) -> None:
    assert load_rule_set(write_rules(rule(when))).lint == ()


def test_the_shipped_rules_have_no_dead_conditions() -> None:
    assert load_rule_set(Path(__file__).parents[2] / "rules").lint == ()


def test_check_exits_3_and_prints_each_finding(write_rules: WriteRules) -> None:
    path = write_rules(rule("{local_hour: {gte: 22, lt: 6}}") + rule("{type: transfer_in}", "r2")[8:])
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"{path}:10:38: never_true: rule 'r1': local_hour: gte 22 and lt 6")
    assert "ok:" not in result.stdout


@pytest.mark.parametrize(("op", "outcome"), [("eq", "never true"), ("ne", "always true")])
def test_a_string_compared_with_a_list_is_refused_with_the_membership_operator_to_use(
    write_rules: WriteRules, op: str, outcome: str
) -> None:
    path = write_rules(rule(f"{{payee.bank: {{{op}: [ICBC, BOC]}}}}"))
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.code) == (10, "list_operand")
    assert (
        f"payee.bank (string) is compared with a list by {op}: one value against a list is {outcome}"
        in str(problem)
    )
    assert "write in: [...]" in problem.message
