"""Rule files: the format analysts write, and errors that say exactly where and what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payguard import Action, RuleFileError, RuleProblem, load_rule_set
from payguard._rules.conditions import AllOf, Compare, InSet, Not, Pred

from ..conftest import HEADER

WriteRules = Callable[..., Path]


def problems_of(path: Path) -> list[tuple[int, int, str, str | None]]:
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    return [(p.line, p.column, p.code, p.suggestion) for p in caught.value.problems]


def test_a_rule_set_loads_with_its_header_params_keywords_and_lists(write_rules: WriteRules) -> None:
    path = write_rules("""
        params:
          large: 20000
        keyword_sets:
          safe: [安全账户, "Safe Account"]
        lists:
          fraud_accounts: ["6222 0000-1111"]
        rules:
          - id: large_to_new_payee
            description: first large payment to someone new
            when:
              is_new_payee: true
              amount: {gte: $large}
            action: hold
            reason: large payment to a new payee
            tags: [T1]
    """)
    ruleset = load_rule_set(path)
    assert (ruleset.id, ruleset.version, ruleset.timezone, ruleset.currency) == (
        "test",
        "1",
        "Asia/Shanghai",
        "CNY",
    )
    assert ruleset.keyword_sets["safe"] == ("safeaccount", "安全账户")
    assert ruleset.lists["fraud_accounts"] == frozenset({"622200001111"})
    (rule,) = ruleset.rules
    assert rule.condition == AllOf(
        (Compare("is_new_payee", "eq", True), Compare("amount", "gte", 2000000, "CNY"))
    )
    assert rule.tags == ("T1",)
    assert ruleset.digest.startswith("sha256:")


def test_every_problem_of_a_file_is_reported_at_once_with_its_position(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: one
            description: misspelt field
            when:
              ammount: {gt: 5}
            action: hold
            reason: r
          - id: two
            description: misspelt operator and action
            when:
              amount: {gtee: 5}
            action: hodl
            reason: r
          - id: one
            description: duplicate id and a bad enum value
            when:
              channel: mobil_app
            action: review
            reason: r
    """)
    found = problems_of(path)
    assert (11, 7, "unknown_field", "amount") in found
    assert (17, 16, "unknown_operator", "gte") in found
    assert (18, 13, "invalid_value", "hold") in found
    assert (20, 9, "duplicate_rule", None) in found
    assert (23, 16, "invalid_value", "mobile_app") in found
    assert len(found) == 5


def test_errors_print_as_path_line_column_code_message_and_suggestion(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: r1
            description: d
            when: {is_new_paye: true}
            action: hold
            reason: r
    """)
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    assert (
        f"{path}:10:12: unknown_field: unknown field or feature 'is_new_paye' (did you mean 'is_new_payee'?)"
        in str(caught.value)
    )


def test_a_string_is_never_compared_with_a_number(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: r1
            description: d
            when: {payer.age: {gt: "99"}}
            action: hold
            reason: r
          - id: r2
            description: d
            when: {memo: {gt: 100}}
            action: hold
            reason: r
    """)
    codes = [code for _, _, code, _ in problems_of(path)]
    assert codes == ["type_mismatch", "invalid_operator"]


def test_money_thresholds_are_decimals_in_the_rule_currency(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: dollars
            description: d
            currency: USD
            when: {amount: {gt: "999.99"}}
            action: hold
            reason: r
          - id: too_precise
            description: d
            when: {amount: {gt: 0.001}}
            action: hold
            reason: r
    """)
    assert problems_of(path) == [(16, 25, "invalid_value", None)]
    path.write_text(path.read_text().replace("0.001", "0.01"))
    rules = load_rule_set(path).rules
    assert rules[0].condition == Compare("amount", "gt", 99999, "USD")
    assert rules[1].condition == Compare("amount", "gt", 1, "CNY")


def test_money_needs_a_currency(write_rules: WriteRules) -> None:
    path = write_rules(
        """
        rules:
          - id: r1
            description: d
            when: {amount: {gt: 5}}
            action: hold
            reason: r
        """,
        header="ruleset: {id: x, version: '1'}\n",
    )
    assert [code for _, _, code, _ in problems_of(path)] == ["missing_currency"]


def test_named_keyword_sets_and_lists_must_be_declared(write_rules: WriteRules) -> None:
    path = write_rules("""
        keyword_sets:
          safe_account: [安全账户]
        lists:
          fraud_accounts: []
        rules:
          - id: r1
            description: d
            when:
              memo: {contains_any: safe_acount}
              payee.account: {in_list: fraud_acounts}
            action: hold
            reason: r
    """)
    found = problems_of(path)
    assert [(code, hint) for _, _, code, hint in found] == [
        ("unknown_keyword_set", "safe_account"),
        ("unknown_list", "fraud_accounts"),
    ]


def test_lists_and_keyword_sets_can_live_in_plain_text_files(tmp_path: Path, write_rules: WriteRules) -> None:
    (tmp_path / "fraud.txt").write_text("# reported by police\n6222 0000 1111\n\nAB-12-34  # comment\n")
    (tmp_path / "safe.txt").write_text("安全账户\nsafe account\n")
    path = write_rules("""
        keyword_sets:
          safe: {file: safe.txt}
        lists:
          fraud_accounts: {file: fraud.txt}
          missing: {file: nowhere.txt}
    """)
    assert [code for _, _, code, _ in problems_of(path)] == ["file_not_found"]
    path.write_text(path.read_text().replace("  missing: {file: nowhere.txt}\n", ""))
    ruleset = load_rule_set(path)
    assert ruleset.lists["fraud_accounts"] == frozenset({"622200001111", "ab1234"})
    assert ruleset.keyword_sets["safe"] == ("safeaccount", "安全账户")


def test_negation_any_and_shorthands(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: r1
            description: d
            when:
              any:
                - channel: [atm, branch_counter]
                - not: {session.caller_in_contacts: true}
                - memo: {matches: "(?i)usdt|tether"}
            action: review
            reason: r
    """)
    (rule,) = load_rule_set(path).rules
    assert rule.condition.children == (  # type: ignore[union-attr]
        InSet("channel", ("atm", "branch_counter")),
        Not(Compare("session.caller_in_contacts", "eq", True)),
        Pred("memo", "matches", "(?i)usdt|tether"),
    )


def test_regular_expressions_are_re2_so_they_cannot_backtrack_forever(write_rules: WriteRules) -> None:
    path = write_rules(r"""
        rules:
          - id: r1
            description: backreferences need backtracking and are refused
            when: {memo: {matches: '(a+)\1'}}
            action: hold
            reason: r
    """)
    assert [code for _, _, code, _ in problems_of(path)] == ["invalid_regex"]


def test_a_rule_that_expands_to_too_many_alternatives_is_refused(write_rules: WriteRules) -> None:
    anys = "\n".join(
        f"                - any: [{{payer.age: {{gt: {i}}}}}, {{payer.age: {{lt: {i}}}}}, {{amount: {{gt: {i}}}}}]"
        for i in range(4)
    )
    path = write_rules(f"""
        rules:
          - id: r1
            description: 3 x 3 x 3 x 3 = 81 alternatives
            when:
              all:
{anys}
            action: hold
            reason: r
    """)
    assert [code for _, _, code, _ in problems_of(path)] == ["too_complex"]


def test_long_in_lists_become_predicates_not_engine_alternatives(write_rules: WriteRules) -> None:
    values = ", ".join(f'"M{i:04d}"' for i in range(500))
    path = write_rules(f"""
        attributes:
          mcc: string
        rules:
          - id: r1
            description: d
            when: {{attributes.mcc: {{in: [{values}]}}}}
            action: review
            reason: r
    """)
    (rule,) = load_rule_set(path).rules
    assert isinstance(rule.condition, Pred)
    assert rule.condition.kind == "set_in"


def test_yaml_syntax_errors_point_at_the_line(write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - id: r1
            description: [unclosed
    """)
    ((line, _column, code, _),) = problems_of(path)
    assert code == "yaml_syntax"
    assert 8 <= line <= 10


def test_a_mapping_written_where_a_key_goes_is_a_problem_at_that_key_not_a_crash(
    write_rules: WriteRules,
) -> None:
    # a stray brace turns the condition into a key; ruamel cannot hash it (a list inside)
    path = write_rules("""
        rules:
          - {id: r1, description: d, action: hold, reason: r,
             when: { {contains_any: [safe]}}}
    """)
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    (problem,) = caught.value.problems
    lines = path.read_text().split("\n")
    assert (problem.code, lines[problem.line - 1][problem.column - 1 :]) == (
        "yaml_syntax",
        "{contains_any: [safe]}}}",
    )
    assert "a key must be a plain value" in problem.message


def test_a_rule_set_needs_exactly_one_header(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEADER)
    (tmp_path / "b.yaml").write_text(HEADER)
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(tmp_path)
    assert [p.code for p in caught.value.problems] == ["duplicate_header"]
    (tmp_path / "b.yaml").write_text("rules: []\n")
    (tmp_path / "a.yaml").write_text("params: {}\n")
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(tmp_path)
    assert [p.code for p in caught.value.problems] == ["missing_header"]


def test_a_directory_is_one_rule_set_and_test_files_are_not_rules(tmp_path: Path) -> None:
    (tmp_path / "00_header.yaml").write_text(HEADER + "keyword_sets:\n  safe: [安全账户]\n")
    (tmp_path / "memo.yaml").write_text(
        "rules:\n  - {id: r1, description: d, when: {memo: {contains_any: safe}}, action: interrupt, reason: r}\n"
    )
    (tmp_path / "memo_test.yaml").write_text("not: [a rule file\n")
    ruleset = load_rule_set(tmp_path)
    assert [r.id for r in ruleset.rules] == ["r1"]
    assert len(ruleset.files) == 2


def test_the_digest_changes_when_any_file_changes(write_rules: WriteRules) -> None:
    path = write_rules("rules: []\n")
    first = load_rule_set(path).digest
    path.write_text(path.read_text() + "# a comment\n")
    assert load_rule_set(path).digest != first


_VALID = (
    HEADER
    + """\
params: {large: 20000}
keyword_sets:
  safe: [安全账户, safe account]
rules:
  - id: r1
    description: a large payment to a new payee
    when:
      is_new_payee: true
      amount: {gte: $large}
      not: {payee.type: business}
    action: hold
    reason: large to new payee
  - id: r2
    description: safe account language
    when: {memo: {contains_any: [safe]}}
    action: interrupt
    reason: safe account
"""
)


@given(st.data())
def test_every_reported_position_lies_inside_its_file(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    text = _VALID
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text)))
        replacement = data.draw(
            st.sampled_from(["", "x", ":", "- ", "\n", "  ", "{", "]", "$", "gte", "all:", "\t"])
        )
        cut = data.draw(st.integers(0, 5))
        text = text[:position] + replacement + text[position + cut :]
    path = tmp_path_factory.mktemp("mutated") / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    problems: tuple[RuleProblem, ...] = ()
    try:
        load_rule_set(path)
    except RuleFileError as exc:
        problems = exc.problems
    lines = text.split("\n")
    for problem in problems:
        assert problem.path == str(path)
        assert 1 <= problem.line <= len(lines), problem
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1, problem


SCORING = (
    "ruleset:\n  id: s\n  version: '1'\n  currency: CNY\n  scoring: {review: 20, hold: 50, interrupt: 80}\n"
)


def test_scoring_thresholds_and_scores_load(write_rules: WriteRules) -> None:
    ruleset = load_rule_set(
        write_rules(
            """
            rules:
              - {id: a, description: d, when: {is_new_payee: true}, score: 30, reason: r}
              - {id: b, description: d, when: {cop_result: match}, score: -15, reason: r}
              - {id: c, description: d, when: {amount: {gte: 5}}, action: hold, score: 5, reason: r}
            """,
            header=SCORING,
        )
    )
    assert ruleset.scoring == ((80, Action.INTERRUPT), (50, Action.HOLD), (20, Action.REVIEW))
    assert [(r.id, r.action, r.score) for r in ruleset.rules] == [
        ("a", None, 30),
        ("b", None, -15),
        ("c", Action.HOLD, 5),
    ]


def test_check_refuses_scores_it_cannot_add_up_each_at_its_position(write_rules: WriteRules) -> None:
    no_scoring = write_rules("""
        rules:
          - {id: a, description: d, when: {is_new_payee: true}, score: 30, reason: r}
        """)
    assert [p[2] for p in problems_of(no_scoring)] == ["score_without_scoring"]
    assert problems_of(no_scoring)[0][:2] == (8, 64)

    bad = write_rules(
        """
        rules:
          - {id: a, description: d, when: {is_new_payee: true}, score: 1.5, reason: r}
          - {id: b, description: d, when: {is_new_payee: true}, score: true, reason: r}
          - {id: c, description: d, when: {is_new_payee: true}, reason: neither action nor score}
        """,
        header=SCORING,
    )
    found = problems_of(bad)
    assert [(line, code) for line, _column, code, _ in found] == [
        (8, "invalid_type"),
        (9, "invalid_type"),
        (10, "missing_field"),
    ]
    with pytest.raises(RuleFileError, match="neither 'action' nor 'score'"):
        load_rule_set(bad)


@pytest.mark.parametrize(
    ("scoring", "message"),
    [
        ("{review: 50, hold: 20}", "must increase with severity: hold is 20, not above review's 50"),
        ("{hold: 30, interrupt: 30}", "must increase with severity"),
        ("{review: 0}", "must be a positive integer"),
        ("{review: 2.5}", "must be a positive integer"),
        ("{block: 10}", "unknown"),
        ("[20, 50]", "scoring maps actions"),
    ],
)
def test_scoring_thresholds_are_positive_integers_that_increase_with_severity(
    write_rules: WriteRules, scoring: str, message: str
) -> None:
    header = f"ruleset:\n  id: s\n  version: '1'\n  currency: CNY\n  scoring: {scoring}\n"
    path = write_rules(
        "rules:\n  - {id: a, description: d, when: {amount: {gte: 1}}, action: hold, reason: r}\n",
        header=header,
    )
    with pytest.raises(RuleFileError, match=message) as caught:
        load_rule_set(path)
    assert {p.line for p in caught.value.problems} == {5}


def test_the_confirmed_fraud_list_must_be_a_declared_list(write_rules: WriteRules) -> None:
    header = "ruleset: {id: s, version: '1', currency: CNY, confirmed_fraud_list: confirmd}\n"
    path = write_rules("lists:\n  confirmed: []\nrules: []\n", header=header)
    with pytest.raises(RuleFileError, match="confirmed_fraud_list names 'confirmd'") as caught:
        load_rule_set(path)
    assert caught.value.problems[0].suggestion == "confirmed"
    assert load_rule_set(write_rules("rules: []\n")).confirmed_fraud_list == "fraud_accounts"


def _nested(depth: int) -> str:
    return "{not: " * depth + "{type: transfer_out}" + "}" * depth


@pytest.mark.parametrize("depth", [33, 1000])
def test_a_condition_nested_beyond_the_documented_depth_is_a_rule_file_error(
    write_rules: WriteRules, depth: int
) -> None:
    # before: `not:` nested 1,000 deep crashed the loader with a RecursionError traceback
    path = write_rules(
        f"rules:\n  - {{id: deep, description: d, action: hold, reason: r, when: {_nested(depth)}}}\n"
    )
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    assert [p.code for p in caught.value.problems] == ["too_deep"]
    assert "at most 32" in caught.value.problems[0].message


def test_a_condition_at_the_documented_depth_loads_and_decides(write_rules: WriteRules) -> None:
    from payguard import Guard

    from ..conftest import make_event

    path = write_rules(
        f"rules:\n  - {{id: deep, description: d, action: hold, reason: r, when: {_nested(32)}}}\n"
    )
    for engine in ("python", "auto"):
        guard = Guard.from_path(path, engine=engine)
        assert guard.evaluate(make_event(id=f"e-{engine}")).rule_ids == ("deep",)  # 32 nots: an even count
