"""Reference rates (``ruleset.fx``): one rule set in CNY judges a payment in GBP at the rate its header
declares, on both engines, and says so wherever an analyst looks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from payguard import Guard, RuleFileError, load_rule_set, parse_event
from payguard._cli import main

from ..conftest import HEADER, ROOT, make_event
from ..engine.test_engines import ENGINES

WriteRules = Callable[..., Path]
FX_HEADER = HEADER + "  fx: {GBP: 9.5, JPY: 0.048}\n"
RULES = """
rules:
  - {id: large, description: large, when: {amount: {gte: 20000}}, action: hold, reason: r}
  - {id: gbp_small, description: a rule written in GBP, currency: GBP, when: {amount: {gte: 100}},
     action: review, reason: r}
"""
ONLY_CNY = """
rules:
  - {id: large, description: large, when: {amount: {gte: 20000}}, action: hold, reason: r}
"""


def pay(event_id: str, amount: str, currency: str) -> dict[str, object]:
    return make_event(id=event_id, amount=amount, currency=currency)


def gbp_and_cny_guard(write_rules: WriteRules, engine: str) -> Guard:
    """A guard with a CNY rule and a GBP rule, and rates for GBP and JPY."""
    return Guard(load_rule_set(write_rules(RULES, header=FX_HEADER)), engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_payment_in_another_currency_meets_the_thresholds_at_the_reference_rate(
    write_rules: WriteRules, engine: str
) -> None:
    guard = Guard(load_rule_set(write_rules(ONLY_CNY, header=FX_HEADER)), engine=engine)
    # 2,106 GBP is 20,007 CNY at 9.5; 2,105 GBP is 19,997.50
    assert guard.evaluate(pay("e1", "2106.00", "GBP")).action == "hold"
    assert guard.evaluate(pay("e2", "2105.00", "GBP")).action == "allow"
    # a currency without decimals: 416,700 JPY is 20,001.60 CNY at 0.048
    assert guard.evaluate(pay("e3", "416700", "JPY")).action == "hold"
    assert guard.evaluate(pay("e4", "416600", "JPY")).action == "allow"
    # a currency the table does not name meets no money test: it fails closed, reviewed whatever its amount
    unrated = guard.evaluate(pay("e5", "999999.00", "EUR"))
    assert (unrated.action, unrated.rule_ids) == ("review", ("payguard.unrated_currency",))


@pytest.mark.parametrize("engine", ENGINES)
def test_rates_far_below_one_meet_the_thresholds_in_currencies_of_zero_and_three_decimals(
    write_rules: WriteRules, engine: str
) -> None:
    header = HEADER + "  fx: {KRW: 0.0051, VND: 0.00028, KWD: 23.4}\n"
    guard = Guard(load_rule_set(write_rules(ONLY_CNY, header=header)), engine=engine)
    # 3,921,600 KRW is 20,000.16 CNY; 3,921,500 is 19,999.65
    assert guard.evaluate(pay("k1", "3921600", "KRW")).action == "hold"
    assert guard.evaluate(pay("k2", "3921500", "KRW")).action == "allow"
    # 71,428,600 VND is 20,000.008 CNY; 71,428,500 is 19,999.98
    assert guard.evaluate(pay("v1", "71428600", "VND")).action == "hold"
    assert guard.evaluate(pay("v2", "71428500", "VND")).action == "allow"
    # a dinar has 1,000 fils: 854.701 KWD is 20,000.0034 CNY; 854.700 is 19,999.98
    assert guard.evaluate(pay("d1", "854.701", "KWD")).action == "hold"
    assert guard.evaluate(pay("d2", "854.700", "KWD")).action == "allow"


# The G20's currencies (the EU's euro for its members), ASEAN's and South Asia's: the payments of a
# Chinese bank's customers abroad, and of the scams that reach them from there
WORLD = [
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CAD",
    "AUD",
    "KRW",
    "INR",
    "IDR",
    "BRL",
    "MXN",
    "ARS",
    "ZAR",
    "TRY",
    "SAR",
    "RUB",
    "HKD",
    "MOP",
    "TWD",
    "SGD",
    "MYR",
    "THB",
    "PHP",
    "VND",
    "BND",
    "KHR",
    "LAK",
    "MMK",
    "PKR",
    "BDT",
    "LKR",
    "NPR",
    "AED",
]


def test_the_shipped_rule_set_rates_the_currencies_its_customers_pay_in() -> None:
    ruleset = load_rule_set(ROOT / "rules")
    assert ruleset.currency == "CNY"
    assert [code for code in WORLD if code not in ruleset.fx] == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_currency_a_rule_is_written_in_is_compared_as_it_is_never_converted(
    write_rules: WriteRules, engine: str
) -> None:
    guard = gbp_and_cny_guard(write_rules, engine)
    # GBP has its own rule, so the CNY rule never sees GBP payments: 2,500 GBP is not 23,750 CNY here
    decision = guard.evaluate(pay("e1", "2500.00", "GBP"))
    assert [hit.rule_id for hit in decision.hits] == ["gbp_small"]
    assert guard.evaluate(pay("e2", "20000.00", "CNY")).action == "hold"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_payment_no_money_test_can_read_is_reviewed_with_a_reason_that_says_why(
    write_rules: WriteRules, engine: str
) -> None:
    guard = gbp_and_cny_guard(write_rules, engine)
    decision = guard.evaluate(pay("e1", "1000000.00", "KRW"))
    assert decision.action == "review"
    assert [(hit.rule_id, hit.reason) for hit in decision.hits] == [
        (
            "payguard.unrated_currency",
            "no reference rate for this payment's currency: no amount limit could be applied",
        )
    ]
    # the rule set's own currency, a rated one and one a rule is written in read their money tests
    assert guard.evaluate(pay("e2", "10.00", "CNY")).action == "allow"
    assert guard.evaluate(pay("e3", "10.00", "JPY")).action == "allow"
    assert guard.evaluate(pay("e4", "10.00", "GBP")).action == "allow"
    # an event that moves no money has no amount to test
    assert guard.evaluate(make_event(id="e5", type="login", amount=None, currency=None)).action == "allow"


@pytest.mark.parametrize(
    ("setting", "action"), [("hold", "hold"), ("interrupt", "interrupt"), ("allow", "allow")]
)
def test_the_header_says_what_a_payment_without_a_rate_gets_at_least(
    write_rules: WriteRules, setting: str, action: str
) -> None:
    header = HEADER + f"  unrated_currency: {setting}\n"
    guard = Guard(load_rule_set(write_rules(ONLY_CNY, header=header)), engine="python")
    assert guard.evaluate(pay("e1", "5.00", "THB")).action == action
    assert guard.evaluate(pay("e2", "30000.00", "CNY")).action == "hold"


def test_a_rule_set_without_money_tests_has_nothing_to_miss_in_any_currency(write_rules: WriteRules) -> None:
    memo = """
rules:
  - {id: scam_memo, description: d, when: {memo: {matches: "safe account"}}, action: hold, reason: r}
"""
    guard = Guard(load_rule_set(write_rules(memo)), engine="python")
    assert guard.evaluate(pay("e1", "30000.00", "KRW")).action == "allow"


def test_an_unknown_unrated_currency_action_names_the_line(write_rules: WriteRules) -> None:
    header = HEADER + "  unrated_currency: block\n"
    with pytest.raises(RuleFileError, match="allow, review, hold or interrupt, got 'block'") as caught:
        load_rule_set(write_rules(ONLY_CNY, header=header))
    assert (caught.value.problems[0].line, caught.value.problems[0].code) == (6, "invalid_value")


def test_serial_and_partitioned_replay_review_a_payment_without_a_rate_alike(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = tmp_path / "e.jsonl"
    rows = [pay(f"e{n}", "900.00", currency) for n, currency in enumerate(["KRW", "CNY", "GBP", "THB"])]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rules = str(write_rules(ONLY_CNY, header=FX_HEADER))
    runs = {}
    for run, extra in (("serial", []), ("parted", ["--partitions", "2"])):
        out = tmp_path / f"{run}.jsonl"
        result = CliRunner().invoke(
            main, ["replay", str(events), "--rules", rules, "--out", str(out), *extra]
        )
        assert result.exit_code == 0, result.stderr
        runs[run] = {
            row["event_id"]: (row["action"], row["hits"])
            for row in map(json.loads, out.read_text().splitlines())
        }
    unrated = ("review", ["payguard.unrated_currency"])
    assert runs["serial"] == {"e0": unrated, "e1": ("allow", []), "e2": ("allow", []), "e3": unrated}
    assert runs["parted"] == runs["serial"]


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ("{GBP: 0}", "ruleset.fx.GBP must be a positive number, got 0"),
        ("{GBP: lots}", "ruleset.fx.GBP must be a positive number, got 'lots'"),
        ("{pounds: 9.5}", "'pounds' is not an ISO 4217 code other than the rule set's CNY"),
        ("{CNY: 1}", "'CNY' is not an ISO 4217 code other than the rule set's CNY"),
        ("[GBP, 9.5]", "ruleset.fx maps ISO 4217 codes to rates"),
    ],
)
def test_a_bad_rate_table_names_the_entry(write_rules: WriteRules, table: str, says: str) -> None:
    with pytest.raises(RuleFileError, match=says.replace("(", r"\(").replace(".", r"\.")) as caught:
        load_rule_set(write_rules(ONLY_CNY, header=HEADER + f"  fx: {table}\n"))
    assert caught.value.problems[0].line == 6


def test_rates_without_a_currency_to_convert_to_are_refused(write_rules: WriteRules) -> None:
    header = 'ruleset:\n  id: test\n  version: "1"\n  fx: {GBP: 9.5}\n'
    with pytest.raises(RuleFileError, match=r"ruleset\.fx needs the header's currency"):
        load_rule_set(write_rules("rules: []\n", header=header))


def test_the_rates_are_part_of_the_rule_set_digest(write_rules: WriteRules, tmp_path: Path) -> None:
    first = load_rule_set(write_rules(ONLY_CNY, name="a.yaml", header=FX_HEADER)).digest
    other = HEADER + "  fx: {GBP: 9.4, JPY: 0.048}\n"
    assert load_rule_set(write_rules(ONLY_CNY, name="b.yaml", header=other)).digest != first


def test_replay_does_not_warn_of_a_converted_currency_and_explain_shows_the_conversion(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = tmp_path / "e.jsonl"
    rows = [pay("e1", "2200.00", "GBP"), pay("e2", "50.00", "EUR")]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rules = str(write_rules(ONLY_CNY, header=FX_HEADER))
    replayed = CliRunner().invoke(main, ["replay", str(events), "--rules", rules])
    assert replayed.exit_code == 0, replayed.stderr
    assert "money events are in EUR but the rule set's money tests are in CNY" in replayed.stderr
    assert "GBP" not in replayed.stderr.split("warning:")[1]
    explained = CliRunner().invoke(
        main, ["explain", "--rules", rules, "--event-id", "e1", "--why-not", "large", str(events)]
    )
    assert explained.exit_code == 0, explained.stderr
    assert "2200.00 GBP is 20900.00 CNY at the reference rate" in explained.stdout
    assert parse_event(rows[0]).currency == "GBP", "the event itself keeps its currency"
