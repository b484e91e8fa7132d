"""The scenario runner: story files validated with a position for every problem, each story run on a fresh
guard, each step judged against its expectation, resolutions applied, and the summary a rule set gets."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from payguard import Action, RuleFileError
from payguard._cli import main
from payguard.testing import (
    MoneyLetThrough,
    ScenarioSummary,
    StepResult,
    load_stories,
    load_story,
    run_scenarios,
)

from ..conftest import HEADER

# A listed payee is interrupted, a new payee during a call is held, a large payment is reviewed.
RULES = HEADER + textwrap.dedent("""
    lists:
      fraud_accounts: []
    rules:
      - {id: listed, description: d, when: {payee.account: {in_list: fraud_accounts}}, action: interrupt, reason: L.}
      - {id: call_new, description: d, when: {session.on_call: true, is_new_payee: true}, action: hold, reason: C.}
      - {id: large, description: d, when: {amount: {gte: 5000}}, action: review, reason: Large.}
""")

PAYER = '{account: "6222 0001", name: 王芳, type: personal}'
FRIEND = '{account: "6222 0002", name: 李雷, type: personal}'
SCAMMER = '{account: "6222 9999", name: 张伟, type: personal}'
LANDLORD = '{account: "6222 0003", name: 陈静, type: personal}'
MOVER = '{account: "6222 0004", name: 刘洋, type: personal}'

# The "police" call: held and confirmed as fraud, the payee then interrupted, and a payment to a friend
# during the call that no rule here stops.
SCAM = f"""\
id: scam-police
kind: scam
typology: impersonation_officials
title: A caller posing as police moves the savings
source: written for the test
story: She pays a "safe account", then again, then a friend's account the caller names.
defaults:
  currency: CNY
  channel: mobile_app
history:
  - {{id: h1, type: transfer_out, timestamp: "2026-02-01T10:00:00+08:00", amount: "200", payer: {PAYER}, payee: {FRIEND}}}
steps:
  - event: {{id: s1, timestamp: "2026-03-02T10:00:00+08:00", amount: "8000", payer: {PAYER}, payee: {SCAMMER}, session: {{on_call: true}}}}
    expect: stop
    resolve: fraud
  - event: {{id: s2, timestamp: "2026-03-02T10:20:00+08:00", amount: "3000", payer: {PAYER}, payee: {SCAMMER}}}
    expect: interrupt
  - event: {{id: s3, timestamp: "2026-03-02T10:40:00+08:00", amount: "1500", payer: {PAYER}, payee: {FRIEND}, session: {{on_call: true}}}}
    expect: stop
  - event: {{id: s4, type: login, timestamp: "2026-03-02T11:00:00+08:00", payer: {PAYER}}}
    expect: any
"""

# Moving home: the landlord's deposit is held and confirmed, the rent to her then passes; the mover is held.
ORDINARY = f"""\
id: ord-moving
kind: ordinary
title: Moving into a new flat while on the phone with the agent
source: written for the test
story: She pays the new landlord, then the first rent, then the mover, on a call with the agent.
defaults:
  currency: CNY
  channel: mobile_app
  session: {{on_call: true}}
steps:
  - event: {{id: s1, timestamp: "2026-03-02T19:00:00+08:00", amount: "2000", payer: {PAYER}, payee: {LANDLORD}}}
    expect: any
    resolve: legitimate
  - event: {{id: s2, timestamp: "2026-03-02T19:10:00+08:00", amount: "2000", payer: {PAYER}, payee: {LANDLORD}}}
    expect: pass
  - event: {{id: s3, timestamp: "2026-03-02T19:30:00+08:00", amount: "300", payer: {PAYER}, payee: {MOVER}}}
    expect: pass
  - event: {{id: s4, timestamp: "2026-03-02T19:40:00+08:00", amount: "50", payer: {PAYER}, payee: {FRIEND}, session: {{on_call: false}}}}
    expect: any
    resolve: cancelled
"""

ABROAD = f"""\
id: scam-abroad
kind: scam
title: A new payee during a call, in dollars
source: written for the test
story: One payment.
defaults:
  currency: USD
steps:
  - event: {{id: s1, timestamp: "2026-03-02T10:00:00+08:00", amount: "1000", payer: {PAYER}, payee: {SCAMMER}, session: {{on_call: true}}}}
    expect: stop
"""


def write(root: Path, kind: str, text: str, name: str | None = None) -> Path:
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or text.split()[1]}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    write(tmp_path / "stories", "scam", SCAM)
    write(tmp_path / "stories", "ordinary", ORDINARY)
    write(tmp_path / "stories", "scam", ABROAD)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES, encoding="utf-8")
    return tmp_path


# -- judging --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "met"),
    [
        ("pass", {"allow": True, "review": True, "hold": False, "interrupt": False}),
        ("stop", {"allow": False, "review": False, "hold": True, "interrupt": True}),
        ("interrupt", {"allow": False, "review": False, "hold": False, "interrupt": True}),
        ("any", {"allow": None, "review": None, "hold": None, "interrupt": None}),
    ],
)
def test_pass_is_allow_or_review_stop_is_hold_or_interrupt_and_any_is_not_judged(
    expect: str, met: dict[str, bool | None]
) -> None:
    for action, expected in met.items():
        step = StepResult("s", 1, "e1", 1, expect, Action(action), (), (), 0, None, None)
        assert step.met is expected, (expect, action)


def test_each_step_is_judged_with_the_rules_that_fired(library: Path) -> None:
    report = run_scenarios(library / "stories", rules=library / "rules", engine="python")
    by_id = {story.id: story for story in report.stories}
    scam = by_id["scam-police"]
    assert [(s.event_id, s.action.value, s.met) for s in scam.steps] == [
        ("s1", "hold", True),
        ("s2", "interrupt", True),
        ("s3", "allow", False),
        ("s4", "allow", None),
    ]
    assert scam.steps[0].rules == ("call_new", "large")
    assert [s.event_id for s in scam.failing] == ["s3"]
    ordinary = by_id["ord-moving"]
    assert [(s.event_id, s.action.value, s.met) for s in ordinary.steps] == [
        ("s1", "hold", None),
        ("s2", "allow", True),
        ("s3", "hold", False),
        ("s4", "allow", None),
    ]
    assert not report.ok


def test_the_summary_counts_stops_misses_money_per_currency_and_ordinary_payments_stopped(
    library: Path,
) -> None:
    summary = run_scenarios(library / "stories", rules=library / "rules", engine="python").summary
    assert summary.to_dict() == {
        "stories": 3,
        "steps": 9,
        "judged": 6,
        "unmet": 2,
        "must_stop": {"steps": 4, "stopped": 3, "missed": 1},
        "must_interrupt": {"steps": 1, "interrupted": 1},
        "must_pass": {"steps": 2, "stopped": 1, "stopped_percent": "50.00", "interrupted": 0},
        "money_let_through": {
            "CNY": {"must_stop": "12500", "let_through": "1500", "percent": "12.00"},
            "USD": {"must_stop": "1000", "let_through": "0", "percent": "0.00"},
        },
        # the rule set has no reference rate for USD: the combined figure is the CNY one, and says so
        "money_let_through_combined": {
            "must_stop": "12500",
            "let_through": "1500",
            "percent": "12.00",
            "currency": "CNY",
            "not_converted": ["USD"],
        },
        "resolves_ignored": 1,
    }
    assert summary.unmet_targets() == [
        "1 of 4 must-stop steps were let through",
        "1 of 2 must-pass steps were stopped",
        "12.00 % of the must-stop money in CNY was let through (at most 3.00 %)",
    ]


def test_the_combined_money_converts_each_currency_at_the_rule_sets_reference_rates(library: Path) -> None:
    rules = library / "rules" / "rules.yaml"
    rules.write_text(
        RULES.replace("  currency: CNY\n", "  currency: CNY\n  fx: {USD: 7}\n"), encoding="utf-8"
    )
    summary = run_scenarios(library / "stories", rules=library / "rules", engine="python").summary
    # CNY 1,500 of 12,500 let through, and USD 0 of 1,000 (7,000 CNY): 1,500 of 19,500
    assert summary.combined == MoneyLetThrough(Decimal(19500), Decimal(1500))
    assert summary.unconverted == ()
    assert summary.to_dict()["money_let_through_combined"]["percent"] == "7.69"


def test_an_ordinary_payment_stopped_is_counted_then_released_as_the_call_back_would(library: Path) -> None:
    report = run_scenarios(library / "stories", rules=library / "rules", engine="python")
    mover = next(story for story in report.stories if story.id == "ord-moving").steps[2]
    assert (mover.expect, mover.action.value, mover.met) == ("pass", "hold", False)
    assert (mover.resolve, mover.resolved) == ("legitimate", True)
    assert report.summary.pass_stopped == 1, "the false stop still counts"


def test_a_summary_of_no_stories_meets_every_target() -> None:
    summary = ScenarioSummary.of([])
    assert (summary.must_stop, summary.missed, summary.money) == (0, 0, {})
    assert summary.unmet_targets() == []


# -- resolutions ------------------------------------------------------------------------------------------


def test_a_fraud_resolution_lists_the_payee_so_the_next_payment_to_it_is_interrupted(library: Path) -> None:
    without = write(library / "other", "scam", SCAM.replace("    resolve: fraud\n", ""))
    stories = {s.id: s for s in run_scenarios(library / "stories", rules=library / "rules").stories}
    assert stories["scam-police"].steps[0].resolved
    assert stories["scam-police"].steps[1].action is Action.INTERRUPT
    unresolved = run_scenarios(without, rules=library / "rules").stories[0]
    assert unresolved.steps[1].action is Action.ALLOW, "without the resolution the payee is not listed"


def test_a_legitimate_resolution_after_an_any_step_executes_the_payment_so_the_payee_is_known(
    library: Path,
) -> None:
    without = write(library / "other", "ordinary", ORDINARY.replace("    resolve: legitimate\n", ""))
    resolved = {s.id: s for s in run_scenarios(library / "stories", rules=library / "rules").stories}
    assert resolved["ord-moving"].steps[1].action is Action.ALLOW
    unresolved = run_scenarios(without, rules=library / "rules").stories[0]
    assert unresolved.steps[1].action is Action.HOLD, (
        "a held payment never executed: the landlord is still new"
    )


def test_a_resolve_after_a_step_that_was_not_stopped_is_ignored_and_reported(library: Path) -> None:
    report = run_scenarios(library / "stories", rules=library / "rules")
    ordinary = next(s for s in report.stories if s.id == "ord-moving")
    assert not ordinary.steps[3].resolved
    assert ordinary.notes == ("step 4 (event 's4'): resolve: cancelled ignored, the step was allow",)


# -- the format -----------------------------------------------------------------------------------------

BROKEN = f"""\
id: scam-wrong-name
kind: fraud
tittle: A title
source: s
story: s
defaults:
  currency: CNY
steps:
  - event: {{id: s1, timestamp: "2026-03-02T10:00:00+08:00", amount: "-5", payer: {PAYER}, payee: {FRIEND}}}
    expect: stop
  - event: {{id: s2, timestamp: "2026-03-02T10:05:00+08:00", amount: "5", payer: {PAYER}, payee: {FRIEND}}}
    expect: maybe
    resolve: released
  - event: {{id: s3, timestamp: "2026-03-02T10:06:00+08:00", amount: "5", payer: {PAYER}, payee: {FRIEND}}}
    expect: pass
    resolve: legitimate
    expected: pass
  - event: {{id: s3, timestamp: "2026-03-02T10:07:00+08:00", amount: "5", payer: {PAYER}, payee: {FRIEND}}}
    expect: any
  - event: {{id: s5, timestamp: "2026-03-01T10:07:00+08:00", amount: "5", payer: {PAYER}, payee: {FRIEND}}}
    expect: any
  - event: {{id: s6, timestamp: "2026-03-02T10:08:00", amount: "5", payer: {PAYER}, payee: {FRIEND}}}
    expect: any
"""


def test_every_problem_of_a_story_file_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "scam", BROKEN, name="scam-broken")
    with pytest.raises(RuleFileError) as caught:
        load_story(path)
    assert [str(p).replace(str(path), "F") for p in caught.value.problems] == [
        (
            "F:3:1: unknown_key: unknown story key 'tittle'; expected id, kind, typology, title, source, story, "
            "defaults, history, steps (did you mean 'title'?)"
        ),
        "F:1:1: missing_field: a story needs 'title'",
        "F:1:1: invalid_value: the id must be the file's name 'scam-broken', not 'scam-wrong-name'",
        "F:2:1: invalid_value: kind must be one of scam, ordinary, not 'fraud'",
        "F:9:61: invalid_event: story 'scam-wrong-name' step 1 (event 's1'): amount: must be greater than 0",
        "F:12:5: invalid_value: expect must be one of pass, stop, interrupt, any, not 'maybe'",
        "F:13:5: invalid_value: resolve must be one of legitimate, fraud, cancelled, not 'released'",
        "F:17:5: unknown_key: unknown step key 'expected'; expected event, expect, resolve, why (did you mean 'expect'?)",
        "F:16:5: invalid_value: resolve follows a step that must stop, not one that must pass",
        (
            "F:18:13: duplicate_id: story 'scam-wrong-name' step 4 (event 's3'): event id 's3' is used twice in "
            "this story"
        ),
        (
            "F:20:21: out_of_order: story 'scam-wrong-name' step 5 (event 's5'): 2026-03-01T10:07:00+08:00 is "
            "before event 's3' (2026-03-02T10:06:00+08:00); history and steps run in time order"
        ),
        (
            "F:22:21: invalid_event: story 'scam-wrong-name' step 6 (event 's6'): timestamp: Input should have "
            "timezone info"
        ),
    ]


def test_a_resolve_on_a_step_that_must_pass_is_refused(tmp_path: Path) -> None:
    text = ORDINARY.replace(
        "    expect: any\n    resolve: legitimate", "    expect: pass\n    resolve: legitimate"
    )
    path = write(tmp_path, "ordinary", text)
    with pytest.raises(RuleFileError) as caught:
        load_story(path)
    assert [str(p).replace(str(path), "F") for p in caught.value.problems] == [
        "F:13:5: invalid_value: resolve follows a step that must stop, not one that must pass"
    ]


def test_a_bad_default_is_reported_where_the_defaults_write_it(tmp_path: Path) -> None:
    path = write(tmp_path, "scam", ABROAD.replace("currency: USD", "currency: dollars"))
    with pytest.raises(RuleFileError) as caught:
        load_story(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.column, problem.code) == (7, 3, "invalid_event")
    assert problem.message.startswith(
        "story 'scam-abroad' step 1 (event 's1'): currency: String should match"
    )


def test_two_stories_may_not_share_an_id_and_every_file_problem_is_collected(tmp_path: Path) -> None:
    write(tmp_path, "scam", ABROAD)
    write(tmp_path, "ordinary", ABROAD.replace("kind: scam", "kind: ordinary"))
    write(tmp_path, "ordinary", "id: [unclosed\n", name="ord-bad-yaml")
    with pytest.raises(RuleFileError) as caught:
        load_stories(tmp_path)
    assert [
        (Path(p.path).relative_to(tmp_path).as_posix(), p.line, p.code) for p in caught.value.problems
    ] == [
        ("ordinary/ord-bad-yaml.yaml", 2, "yaml_syntax"),
        ("scam/scam-abroad.yaml", 1, "duplicate_id"),
    ]
    assert "is also " + str(tmp_path / "ordinary" / "scam-abroad.yaml") in caught.value.problems[1].message


def test_a_missing_path_is_a_problem_too(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="file_not_found"):
        load_stories(tmp_path / "nowhere")


def test_an_event_the_rule_set_refuses_is_reported_at_its_step(library: Path) -> None:
    declared = RULES.replace("lists:", "attributes: {segment: string}\nlists:")
    (library / "rules" / "rules.yaml").write_text(declared, encoding="utf-8")
    path = write(
        library / "other", "scam", ABROAD.replace("session: {on_call: true}", "attributes: {segment: 3}")
    )
    with pytest.raises(RuleFileError) as caught:
        run_scenarios(path, rules=library / "rules")
    [problem] = caught.value.problems
    assert (problem.line, problem.code) == (9, "invalid_event")
    assert problem.message.startswith("story 'scam-abroad' step 1: invalid event 's1': attributes.segment")


# -- the command ------------------------------------------------------------------------------------------


def test_the_command_prints_the_summary_and_the_failing_steps_and_exits_1_when_a_step_fails(
    library: Path,
) -> None:
    out = library / "summary.json"
    result = CliRunner().invoke(
        main, ["scenarios", str(library / "stories"), "--rules", str(library / "rules"), "--json", str(out)]
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[1:7] == [
        "  stories 3, steps 9, judged 6, unmet 2",
        "  must stop           4   stopped 3, missed 1",
        "  must interrupt      1   interrupted 1",
        "  must pass           2   stopped 1 (50.00 %), interrupted 0",
        "  scam money let through (of the must-stop steps' amounts, per currency):",
        "    CNY           1500 of          12500    12.00 %",
    ]
    assert "    step 3 (s3, line 16): expected pass, got hold; fired: call_new" in lines
    assert "    step 3 (s3, line 18): expected stop, got allow; fired: no rule" in lines
    data = json.loads(out.read_text(encoding="utf-8"))
    [rule_set] = data["rule_sets"]
    assert rule_set["path"] == str(library / "rules")
    assert rule_set["summary"]["must_stop"] == {"steps": 4, "stopped": 3, "missed": 1}
    assert [s["id"] for s in rule_set["stories"]] == ["ord-moving", "scam-abroad", "scam-police"]


def test_the_command_exits_0_when_every_judged_step_meets_its_expectation(library: Path) -> None:
    stories = library / "stories" / "scam" / "scam-abroad.yaml"
    result = CliRunner().invoke(main, ["scenarios", str(stories), "--rules", str(library / "rules")])
    assert result.exit_code == 0, result.output
    assert "stories with failing steps" not in result.stdout


def test_the_command_exits_2_for_a_story_or_rule_set_that_does_not_load(library: Path) -> None:
    write(library / "stories", "scam", ABROAD.replace("expect: stop", "expect: halt"))
    result = CliRunner().invoke(
        main, ["scenarios", str(library / "stories"), "--rules", str(library / "rules")]
    )
    assert result.exit_code == 2
    assert "scam-abroad.yaml:10:5: invalid_value: expect must be one of" in result.stderr
    missing = CliRunner().invoke(
        main, ["scenarios", str(library / "stories" / "ordinary"), "--rules", "nowhere/"]
    )
    assert missing.exit_code == 2, missing.output


def test_the_command_compares_rule_sets_each_with_its_summary(library: Path) -> None:
    (library / "strict").mkdir()
    (library / "strict" / "rules.yaml").write_text(
        RULES.replace("when: {session.on_call: true, is_new_payee: true}", "when: {session.on_call: true}"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main,
        [
            "scenarios",
            str(library / "stories"),
            "--rules",
            str(library / "rules"),
            "--rules",
            str(library / "strict"),
            "--json",
            "-",
        ],
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [r["summary"]["must_stop"]["missed"] for r in data["rule_sets"]] == [0 + 1, 0]
    assert "must stop" in result.stderr, "with --json - the text goes to stderr"
