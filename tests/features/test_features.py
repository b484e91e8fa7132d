"""Stateful features: what only the customer's history can tell, always in event time."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from array import array
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payguard import Action, Guard, SQLiteStore
from payguard._common.time import epoch_seconds, local_hour
from payguard._features.calculator import _MONEY
from payguard._features.catalogue import FUNCTIONS
from payguard._rules.fields import FEATURES, Kind
from payguard._stores.history import (
    COUNT,
    DAY,
    EMPTY,
    OUT_WIDTH,
    PAYEE_WIDTH,
    SAMPLE_WIDTH,
    AccountHistory,
    pack_payee,
    rows_in,
    unpack_payee,
)

from ..conftest import ROOT, make_event

WriteRules = Callable[..., Path]
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def reads_every_feature() -> str:
    tests = "\n".join(f"        - {{{name}: {{exists: true}}}}" for name in FEATURES)
    return f"""
keyword_sets:
  safe_account: [安全账户, safe account]
  task: [刷单, 佣金]
lists:
  fraud_accounts: []
rules:
  - id: reads_everything
    description: a rule that reads every feature, so that decisions show them all
    mode: shadow
    when:
      any:
{tests}
    action: review
    reason: r
  - id: big_to_new
    description: hold large payments to new payees
    when: {{is_new_payee: true, amount: {{gte: 10000}}}}
    action: hold
    reason: r
  - id: listed
    description: interrupt payments to listed accounts
    when: {{payee.account: {{in_list: fraud_accounts}}}}
    action: interrupt
    reason: r
"""


@pytest.fixture
def guard(write_rules: WriteRules) -> Guard:
    return Guard.from_path(write_rules(reads_every_feature()), on_error="raise")


def pay(guard: Guard, n: int, hours: float, amount: str = "100", payee: str = "B-1", **extra: Any) -> Any:
    event = make_event(id=f"e{n}", timestamp=at(hours), amount=amount, payee={"account": payee}, **extra)
    return guard.evaluate(event)


def credit(guard: Guard, n: int, hours: float, payer: str, amount: str = "1100", **party: Any) -> None:
    """Money from ``payer`` (a person unless ``type`` says otherwise) into the customer's account."""
    guard.evaluate(
        make_event(
            id=f"in{n}",
            type="transfer_in",
            timestamp=at(hours),
            amount=amount,
            payer={"account": payer, "type": "personal"} | party,
            payee={"account": make_event()["payer"]["account"]},
        )
    )


def test_every_declared_feature_is_computed_by_the_function_registered_under_its_name(guard: Guard) -> None:
    assert set(FUNCTIONS) == set(FEATURES)
    assert all(function.__name__ == name for name, function in FUNCTIONS.items())
    for n in range(6):
        pay(guard, n, n * 0.5, amount=str(100 * (n + 1)), payee=f"B-{n % 3}", memo="请转入安全账户 刷单")
    pipeline = guard.pipeline
    admitted = pipeline.validate(make_event(id="probe", timestamp=at(3), amount="900", memo="刷单 佣金"))
    with guard.store.transaction() as txn:
        context = pipeline.features.context(admitted, txn)
        values = pipeline.features.compute(context, frozenset(FUNCTIONS))
        for name, function in FUNCTIONS.items():
            expected = function(context)
            if name in values:
                assert values[name] == (str(Decimal(expected).scaleb(-2)) if name in _MONEY else expected)
            else:
                assert expected is None, name


def test_every_feature_has_a_value_or_is_left_out_when_it_does_not_apply(guard: Guard) -> None:
    decision = pay(guard, 1, 0, memo="请转入 安全 账户")
    kinds = {Kind.MONEY: str, Kind.BOOL: bool, Kind.INT: int, Kind.FLOAT: float, Kind.LIST: list}
    assert decision.features
    for name, value in decision.features.items():
        assert isinstance(value, kinds[FEATURES[name].kind]), (name, value)
    assert decision.features["memo_categories"] == ["safe_account"]
    assert decision.features["local_hour"] == 10


def test_a_payee_is_new_until_a_payment_to_it_is_executed(guard: Guard) -> None:
    first = pay(guard, 1, 0, amount="50000")
    assert (first.action, first.features["is_new_payee"]) == (Action.HOLD, True)
    second = pay(guard, 2, 1)
    assert second.features["is_new_payee"] is True, "a held payment is only an attempt"
    assert second.action is Action.ALLOW
    third = pay(guard, 3, 2)
    assert third.features["is_new_payee"] is False
    assert third.features["payee_payment_count"] == 1
    assert third.features["payee_first_paid_days"] == pytest.approx(1 / 24)


def test_velocity_windows_use_event_time_and_include_the_current_attempt(guard: Guard) -> None:
    for n, hours in enumerate([0, 0.2, 0.4, 5, 23.9]):
        decision = pay(guard, n, hours, amount="100", payee=f"B-{n}")
    assert decision.features["outbound_count_1h"] == 1
    assert decision.features["outbound_count_24h"] == 5
    assert decision.features["out_sum_24h"] == "500.00"
    assert decision.features["new_payee_count_24h"] == 5
    late = pay(guard, 9, 24.3, payee="B-0")
    assert late.features["outbound_count_24h"] == 4  # the payments at 0:00 and 0:12 left the window
    assert late.features["is_new_payee"] is False


def test_drain_ratio_counts_money_that_left_against_what_the_account_had(guard: Guard) -> None:
    pay(guard, 1, 0, amount="9000", payer={"balance_before": "100000"})
    held = pay(guard, 2, 0.5, amount="30000", payer={"balance_before": "91000"}, payee="B-2")
    assert held.action is Action.HOLD
    decision = pay(guard, 3, 1, amount="21000", payer={"balance_before": "91000"}, payee="B-1")
    # 9,000 and this 21,000 left; the held 30,000 did not: 30,000 of the 100,000 the day started with
    assert decision.features["drain_ratio_24h"] == pytest.approx(0.3)


def test_drain_ratio_counts_credits_after_the_days_first_payment_as_money_to_spend(guard: Guard) -> None:
    pay(guard, 1, 1, amount="9000", payer={"balance_before": "40000"})
    guard.evaluate(
        make_event(
            id="salary",
            type="transfer_in",
            timestamp=at(1.5),
            amount="20000",
            payer={"account": "EMPLOYER-1", "type": "business"},
            payee={"account": "6222000011112222"},
        )
    )
    decision = pay(guard, 2, 2, amount="9000", payer={"balance_before": "51000"})
    # the balance the day's first payment saw, plus the salary that came in after it
    assert decision.features["drain_ratio_24h"] == pytest.approx(18000 / 60000)


def test_amounts_are_measured_against_the_customer_s_own_history(guard: Guard) -> None:
    assert pay(guard, 0, 0, amount="300").features["is_first_large_transfer"] is True
    for n in range(1, 20):
        pay(guard, n, n, amount=str(100 + n))
    decision = pay(guard, 50, 30, amount="1190")
    assert decision.features["max_amount_365d"] == "300.00"
    assert decision.features["is_first_large_transfer"] is True
    assert decision.features["amount_to_p95_90d"] == pytest.approx(
        1190 / 119
    )  # p95 of 20 amounts is the 19th
    assert pay(guard, 51, 31, amount="1000").features["is_first_large_transfer"] is False


def test_mule_signals_for_the_account_being_evaluated(guard: Guard) -> None:
    mule = "M-1"
    for n in range(5):
        incoming = make_event(
            id=f"in{n}",
            type="transfer_in",
            timestamp=at(n * 0.1),
            amount="1000",
            payer={"account": f"V-{n}"},
            payee={"account": mule},
        )
        decision = guard.evaluate(incoming)
    assert decision.features["inbound_distinct_payers_24h"] == 5
    out = make_event(
        id="out",
        timestamp=at(1),
        amount="4500",
        payer={"account": mule, "account_opened": "2026-02-25"},
        payee={"account": "CRYPTO-1", "type": "vasp"},
    )
    features = guard.evaluate(out).features
    assert features["passthrough_ratio_24h"] == pytest.approx(0.9)
    assert features["account_age_days"] == 5
    into_mule = pay(guard, 7, 2, payee=mule)
    assert into_mule.features["payee_inbound_distinct_payers_24h"] == 6


def test_a_rebate_is_a_stranger_s_credit_just_after_a_payment_to_a_new_person(guard: Guard) -> None:
    credit(guard, 0, 0, "MOTHER", "20000")  # before any payment: a parent's money, no rebate
    pay(guard, 1, 1, amount="100", payee="ORDER-1")
    credit(guard, 1, 1.1, "REBATE-1", "106")  # minutes after, a little more than the order
    credit(guard, 2, 1.2, "BUYER-1", "500")  # five times the order: a sale, not a rebate
    assert pay(guard, 2, 1.5, amount="500", payee="ORDER-2").features["rebates_24h"] == 1
    assert pay(guard, 3, 30, amount="500", payee="ORDER-3").features["rebates_24h"] == 0


def test_a_new_sender_is_a_person_never_paid_whose_first_credit_is_within_7_days(guard: Guard) -> None:
    def new_senders(n: int, hours: float) -> Any:
        out = pay(guard, n, hours, amount="50", payee=f"SHOP-{n}").features
        return out["new_sender_inbound_7d"], out["unseen_inbound_7d"]

    credit(guard, 0, 0, "PARENTS")  # a month's allowance: the parents' first credit
    assert new_senders(1, 1) == (1, 1)  # within a week of it, the parents are as new as a stranger
    credit(guard, 1, 24 * 30, "PARENTS")  # next month's allowance, from a sender known for a month
    credit(guard, 2, 24 * 30 + 1, "EMPLOYER", type="business")  # institutions' credits count in neither
    assert new_senders(2, 24 * 30 + 2) == (0, 1)
    credit(guard, 3, 24 * 30 + 3, "STRANGER")  # a "profit" from someone who never sent money before
    assert new_senders(3, 24 * 30 + 4) == (1, 2)
    pay(guard, 4, 24 * 30 + 5, amount="50", payee="STRANGER")  # paid back: no longer a stranger
    assert new_senders(5, 24 * 30 + 6) == (0, 1)
    credit(
        guard, 6, 24 * 30 + 7, "OWN-SAVINGS", own_account=True
    )  # her own savings at another bank, first time
    assert new_senders(7, 24 * 30 + 8) == (0, 2)


def test_a_return_to_sender_sends_back_no_more_than_the_payee_sent_in_7_days(guard: Guard) -> None:
    credit(guard, 0, 0, "CLIENT", "1500")
    credit(guard, 1, 1, "CLIENT", "500")  # two retainers: 2,000 in all
    assert pay(guard, 1, 2, amount="2000", payee="CLIENT").features["is_return_to_sender"] is True
    assert pay(guard, 2, 3, amount="2000.01", payee="CLIENT").features["is_return_to_sender"] is False
    assert pay(guard, 3, 4, amount="100", payee="NEVER-SENT").features["is_return_to_sender"] is False
    # the credits were more than 7 days ago: what is sent now is no refund of them
    assert pay(guard, 4, 24 * 7 + 2, amount="100", payee="CLIENT").features["is_return_to_sender"] is False


def test_a_payee_name_paid_at_another_account_is_what_invoice_redirection_looks_like(guard: Guard) -> None:
    def to(n: int, hours: float, account: str, name: str | None, amount: str = "100") -> Any:
        event = make_event(id=f"n{n}", timestamp=at(hours), amount=amount)
        event["payee"] = {"account": account, "type": "business"} | ({"name": name} if name else {})
        return guard.evaluate(event)

    first = to(1, 0, "SUPPLIER-OLD", "Brennan Timber Supplies Ltd")
    assert first.features["payee_name_paid_elsewhere"] is False  # nobody was paid under the name before
    # the same supplier at the account it was always paid at
    assert (
        to(2, 1, "SUPPLIER-OLD", "Brennan Timber Supplies Ltd").features["payee_name_paid_elsewhere"] is False
    )
    # new bank details under the known name: case, spaces and the legal form do not tell them apart
    redirected = to(3, 2, "LT60-NEW", "BRENNAN TIMBER SUPPLIES LIMITED")
    assert redirected.features["payee_name_paid_elsewhere"] is True
    assert to(4, 3, "OTHER-CO", "Munster Fixings Ltd").features["payee_name_paid_elsewhere"] is False
    assert "payee_name_paid_elsewhere" not in to(5, 4, "NO-NAME", None).features
    assert "payee_name_paid_elsewhere" not in to(6, 5, "SHORT", "A Ltd").features  # too short to tell
    # a stopped payment teaches no name: only an executed one does
    held = to(7, 6, "HELD-CO", "Shannon Steel Ltd", amount="50000")
    assert held.action is Action.HOLD
    assert to(8, 7, "HELD-CO-2", "Shannon Steel Ltd").features["payee_name_paid_elsewhere"] is False
    guard.resolve(held.decision_id, "legitimate")
    assert to(9, 8, "HELD-CO-3", "Shannon Steel").features["payee_name_paid_elsewhere"] is True


def test_loans_and_broken_deposits_that_just_arrived(guard: Guard) -> None:
    customer = make_event()["payer"]["account"]
    for n, lender in enumerate(["L-1", "L-2"]):
        guard.evaluate(
            make_event(
                id=f"loan{n}",
                type="loan_disbursement",
                timestamp=at(n),
                amount="20000",
                payer={"account": lender, "type": "lender"},
                payee={"account": customer},
            )
        )
    guard.evaluate(
        make_event(
            id="dep",
            type="deposit_redemption",
            timestamp=at(2),
            amount="50000",
            payer={"account": f"{customer}-TD"},
            payee={"account": customer},
        )
    )
    features = pay(guard, 1, 3).features
    assert (features["loan_inflow_24h"], features["distinct_lenders_24h"]) == ("40000.00", 2)
    assert features["deposit_redeemed_24h"] == "50000.00"
    assert pay(guard, 2, 30).features["loan_inflow_24h"] == "0.00"


def test_a_loan_sent_on_counts_against_the_loan_whoever_receives_it_but_not_when_stopped(
    guard: Guard,
) -> None:
    customer = make_event()["payer"]["account"]
    loan = make_event(
        id="loan",
        type="loan_disbursement",
        timestamp=at(0),
        amount="20000",
        payer={"account": "L-1", "type": "lender"},
        payee={"account": customer},
    )
    guard.evaluate(loan)
    guard.set_list("fraud_accounts", ["BAD-1"])
    assert pay(guard, 1, 0.5, amount="15000", payee="BAD-1").action is Action.INTERRUPT  # never left
    own = pay(guard, 2, 1, amount="6000", payee="OWN-ELSEWHERE")
    # the stopped 15,000 did not leave; 6,000 to the customer's own account elsewhere did, known payee or not
    assert own.features["out_to_loans_24h"] == pytest.approx(0.3)
    # the new-payee share counts attempts: the stopped one is there
    assert own.features["new_payee_out_to_loans_24h"] == pytest.approx(1.05)
    assert pay(guard, 3, 2, amount="4000", payee="OWN-ELSEWHERE").features[
        "out_to_loans_24h"
    ] == pytest.approx(0.5), "a payee paid before counts too"
    assert "out_to_loans_24h" not in pay(guard, 4, 30, amount="100").features, "no loan in the last day"


def test_cash_asked_for_in_a_day_adds_up_withdrawals_only(guard: Guard) -> None:
    def cash(n: int, hours: float, amount: str, **extra: Any) -> Any:
        event = make_event(id=f"c{n}", type="cash_withdrawal", timestamp=at(hours), amount=amount, **extra)
        return guard.evaluate(event)

    assert cash(1, 0, "15000", payee=None).features["cash_out_24h"] == "15000.00"
    pay(guard, 1, 1, amount="9000")  # a transfer is not cash
    # a bank may name the ATM as the payee: still cash
    assert cash(2, 16, "10000", payee={"account": "ATM-0042"}).features["cash_out_24h"] == "25000.00"
    assert cash(3, 30, "2000", payee=None).features["cash_out_24h"] == "12000.00", "the first is a day old"
    assert "cash_out_24h" not in pay(guard, 2, 31).features, "a transfer has no cash total"


def test_stops_are_remembered_to_catch_retries_to_another_payee(guard: Guard) -> None:
    guard.set_list("fraud_accounts", ["BAD-1"])
    assert pay(guard, 1, 0, payee="BAD-1").action is Action.INTERRUPT
    retry = pay(guard, 2, 0.5, payee="B-2")
    assert (retry.features["recent_stops_60m"], retry.features["last_stop_other_payee"]) == (1, True)
    later = pay(guard, 3, 48, payee="B-2")
    assert (later.features["recent_stops_60m"], later.features["recent_stops_30d"]) == (0, 1)


def test_hours_since_a_new_device_come_from_events_or_the_session(guard: Guard) -> None:
    guard.evaluate(
        make_event(id="bind", type="device_bound", timestamp=at(0), amount=None, currency=None, payee=None)
    )
    assert pay(guard, 1, 3).features["hours_since_new_device"] == pytest.approx(3)
    assert pay(guard, 2, 4, session={"device_age_hours": 0.5}).features["hours_since_new_device"] == 0.5


def test_local_hour_uses_the_payer_zone_else_the_rule_set_zone(guard: Guard) -> None:
    assert pay(guard, 1, 16).features["is_night"] is True  # 02:00 in Shanghai
    london = pay(guard, 2, 17, payer={"timezone": "Europe/London"})
    assert (london.features["local_hour"], london.features["is_night"]) == (19, False)


def test_memo_keywords_match_after_normalising_width_case_spaces_and_punctuation(guard: Guard) -> None:
    assert pay(guard, 1, 0, memo="ＳＡＦＥ－ACCOUNT!!").features["memo_categories"] == ["safe_account"]
    assert pay(guard, 2, 0, memo="做任务 刷 单，佣金").features["memo_categories"] == ["task"]
    assert pay(guard, 3, 0, memo="rent for March").features["memo_categories"] == []


def test_a_late_event_sees_the_history_it_would_have_seen_in_order(guard: Guard) -> None:
    pay(guard, 1, 0, payee="B-1")
    pay(guard, 2, 10, payee="B-2")
    late = pay(guard, 3, 5, payee="B-2")
    assert late.features["is_new_payee"] is True
    assert late.features["outbound_count_24h"] == 2


def test_record_feeds_history_without_deciding_or_auditing(write_rules: WriteRules, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(reads_every_feature()), audit=audit) as guard:
        count = guard.record(
            make_event(id=f"h{n}", timestamp=at(n), payee={"account": "B-1"}) for n in range(3)
        )
        assert count == 3
        assert audit.read_text() == ""
        decision = pay(guard, 9, 4, payee="B-1")
    assert (decision.features["is_new_payee"], decision.features["payee_payment_count"]) == (False, 3)


def test_lists_compare_normalised_account_numbers(guard: Guard) -> None:
    guard.set_list("fraud_accounts", ["6222 0000-1111 2222"])
    assert guard.list_entries("fraud_accounts") == frozenset({"6222000011112222"})
    assert pay(guard, 1, 0, payee="62220000 11112222").action is Action.INTERRUPT


def test_history_stays_bounded(guard: Guard) -> None:
    for n in range(300):
        pay(guard, n, n * 2, payee=f"B-{n}")
    store = guard.store
    history = store.accounts[make_event()["payer"]["account"]]  # type: ignore[attr-defined]
    assert len(history.out) // OUT_WIDTH <= 14  # about a day of attempts, one every two hours, and the grace
    assert len(history.sample) // SAMPLE_WIDTH <= 100
    assert len(history.maxima) // SAMPLE_WIDTH <= 5
    assert len(EMPTY) == 0  # the shared empty list every new history starts from was never written


def test_sqlite_store_continues_in_a_new_process_exactly_where_it_was(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    rules = write_rules(reads_every_feature())
    database = tmp_path / "payguard.db"
    guard = Guard.from_path(rules, store=SQLiteStore(database))
    pay(guard, 1, 0, payee="B-1")
    pay(guard, 2, 0.5, payee="B-2")
    guard.close()
    script = textwrap.dedent(f"""
        import json, payguard
        guard = payguard.Guard.from_path({str(rules)!r}, store=payguard.SQLiteStore({str(database)!r}))
        event = {make_event(id="e3", timestamp=at(0.75), payee={"account": "B-1"})!r}
        d = guard.evaluate(event)
        again = guard.evaluate({make_event(id="e1", timestamp=at(0), amount="100", payee={"account": "B-1"})!r})
        print(json.dumps([d.features["is_new_payee"], d.features["outbound_count_1h"], again.event_id]))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[false, 3, "e1"]'


@given(
    st.tuples(
        st.integers(0, 2**38 - 1),
        st.integers(0, 2**20 - 1),
        st.integers(0, 2**38 - 1),
        st.integers(1, 10**15),
        st.integers(1, 10**15),
        st.integers(0, 1),
    )
)
def test_payee_statistics_pack_into_one_int_and_back(stats: tuple[int, int, int, int, int, int]) -> None:
    assert unpack_payee(pack_payee(stats)) == stats


@given(
    st.lists(st.integers(0, 2**63 - 1), max_size=40, unique=True),
    st.integers(0, 2**63 - 1),
    st.randoms(use_true_random=False),
)
def test_a_known_payee_is_found_by_its_hash_and_never_by_a_statistic_equal_to_it(
    payees: list[int], wanted: int, rng: random.Random
) -> None:
    history, clock = AccountHistory(), 10 * DAY
    for payee in payees:
        clock += rng.randint(1, DAY)
        history.add_executed(clock, rng.choice([wanted, rng.randint(1, 10**15)]) or 1, payee)
    # The wanted hash may equal a statistic word (an amount) or sit across two words; only a hash column
    # counts, as a linear scan of the rows sees it.
    rows = [history.payees[at] for at in range(0, len(history.payees), PAYEE_WIDTH)]
    assert history.knows(wanted) == (wanted in rows)
    for payee in payees:
        assert history.knows(payee)
        stats = history.payee(payee)
        assert stats is not None
        assert stats[COUNT] == 1


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 10**6)), max_size=30))
def test_passing_the_row_just_looked_up_records_the_same_history_as_searching_again(
    payments: list[tuple[int, int]],
) -> None:
    searched, hinted = AccountHistory(), AccountHistory()
    for step, (payee, amount) in enumerate(payments):
        searched.add_executed(step * 60, amount, payee)
        hinted.add_executed(step * 60, amount, payee, hinted.payee_row(payee))
    assert hinted.to_json() == searched.to_json()


@given(
    st.lists(st.integers(0, 50), max_size=30).map(sorted),
    st.integers(-5, 55),
    st.integers(0, 30),
    st.sampled_from([1, 2, 5]),
)
def test_a_window_holds_exactly_the_rows_after_its_start_up_to_its_end(
    times: list[int], start: int, length: int, width: int
) -> None:
    entries = array("q", [value for t in times for value in (t, *range(width - 1))])
    low, high = rows_in(entries, width, start, start + length)
    assert [entries[row * width] for row in range(low, high)] == [
        t for t in times if start < t <= start + length
    ]


@given(
    st.integers(86_400, 4_102_444_800),  # 1970-01-02 to 2100
    st.sampled_from(
        [
            "Asia/Shanghai",
            "Europe/London",
            "America/New_York",
            "Australia/Lord_Howe",  # half-hour daylight saving
            "Asia/Kathmandu",  # +05:45
            "Africa/Monrovia",  # -00:44:30 until 1972
            "Pacific/Apia",  # skipped a whole day in 2011
        ]
    ),
)
def test_the_local_hour_is_the_hour_on_the_zones_clock(time: int, zone_name: str) -> None:
    for moment in (time, time - time % 3600, time - time % 3600 + 3599):  # inside an hour and at its edges
        expected = datetime.fromtimestamp(moment, ZoneInfo(zone_name)).hour
        assert local_hour(moment, zone_name) == expected
        assert local_hour(moment, zone_name) == expected  # again, from the remembered offset


@pytest.mark.parametrize(
    ("zone_name", "year"),
    [
        ("Europe/London", 2026),
        ("America/New_York", 2026),
        ("Australia/Lord_Howe", 2026),
        ("Asia/Kathmandu", 1986),  # +05:30 to +05:45
        ("Africa/Monrovia", 1972),  # -00:44:30 to 00:00
        ("Pacific/Apia", 2011),  # across the date line
        ("Asia/Shanghai", 1991),  # China's last summer time
    ],
)
def test_every_hour_of_a_year_with_clock_changes_reads_like_the_zone(zone_name: str, year: int) -> None:
    zone = ZoneInfo(zone_name)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    for hour_start in range(start, start + 366 * 86_400, 3600):
        for moment in (hour_start, hour_start + 1799, hour_start + 3599):
            assert local_hour(moment, zone_name) == datetime.fromtimestamp(moment, zone).hour, moment


def test_a_hash_whose_bytes_straddle_two_statistic_words_is_not_a_known_payee() -> None:
    wanted = 0x0102030405060708
    row = (7).to_bytes(8, sys.byteorder) + bytes(4) + wanted.to_bytes(8, sys.byteorder) + bytes(20)
    history = AccountHistory(payees=array("q", row))
    assert history.knows(7)
    assert not history.knows(wanted)


def _brute_p95(payments: list[tuple[int, int]], start: int, end: int) -> int | None:
    """The nearest-rank 95th percentile, computed the slow, obvious way."""
    amounts = sorted(a for t, a in payments if start <= t < end)
    if len(amounts) < 3:
        return None
    return amounts[max(0, -(-95 * len(amounts) // 100) - 1)]


@given(st.randoms(use_true_random=False), st.integers(1, 250), st.sampled_from([DAY // 4, 3 * DAY, 40 * DAY]))
def test_the_95th_percentile_read_off_the_ranked_sample_equals_the_sorted_window(
    rng: random.Random, count: int, spacing: int
) -> None:
    # payments at random gaps (some late, up to two days), enough to fill, trim and prune the sample
    steps = [(rng.randint(-2 * DAY, spacing), rng.randint(1, 10**6)) for _ in range(count)]
    history, clock, kept = AccountHistory(), 200 * DAY, []
    for step, amount in steps:
        clock += step
        history.touch(clock)
        history.add_executed(clock, amount, None)
        kept = sorted([*kept, (clock, amount)])[-100:]  # the sample keeps the latest 100 payments
        if history.pruned:  # pruning last ran at event time ``pruned`` and kept 90 days and an hour
            kept = [(t, a) for t, a in kept if t >= history.pruned - 90 * DAY - 3600]
        assert sorted(history.sample[1::SAMPLE_WIDTH]) == list(history.ranked)
        for now in (clock + 1, history.seen + 1):
            assert history.percentile_95(now - 90 * DAY, now, 3) == _brute_p95(kept, now - 90 * DAY, now)
    restored = AccountHistory.from_json(history.to_json())
    assert list(restored.ranked) == list(history.ranked)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 3),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(9999, 12, 29),  # noqa: DTZ001
        timezones=st.just(UTC)
        | st.timezones()
        | st.timedeltas(timedelta(hours=-23), timedelta(hours=23)).map(timezone),
    )
)
def test_event_times_become_whole_epoch_seconds_exactly(moment: datetime) -> None:
    # integer arithmetic, exact where a float timestamp of a far-future time would round
    offset = moment.utcoffset()
    assert offset is not None
    assert epoch_seconds(moment, offset) == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        seconds=1
    )


def test_new_personal_payees_are_counted_apart_from_businesses_and_merchants(guard: Guard) -> None:
    kinds = ["business", "merchant", "government", "personal", None]
    for n, kind in enumerate(kinds):
        payee: dict[str, Any] = {"account": f"NEW-{n}"}
        if kind:
            payee["type"] = kind
        decision = guard.evaluate(make_event(id=f"p{n}", timestamp=at(n / 10), amount="100", payee=payee))
    assert decision.features["new_payee_count_24h"] == 5
    assert decision.features["new_personal_payee_count_24h"] == 2, "the person and the payee of unknown type"


def test_a_payee_stopped_recently_is_remembered_until_the_stop_is_resolved_as_legitimate(
    guard: Guard,
) -> None:
    held = pay(guard, 1, 0, amount="50000", payee="SELLER-1")
    assert held.action is Action.HOLD
    resent = pay(guard, 2, 2, amount="4000", payee="SELLER-1")
    assert resent.features["payee_recent_stops_30d"] == 1, "the same payee, without the wording, still shows"
    assert pay(guard, 3, 3, amount="40", payee="OTHER").features["payee_recent_stops_30d"] == 0
    guard.resolve(held.decision_id, "legitimate")
    assert pay(guard, 4, 4, amount="40", payee="SELLER-1").features["payee_recent_stops_30d"] == 0


def test_dormant_days_say_how_long_an_account_slept_before_it_woke_this_week(guard: Guard) -> None:
    pay(guard, 1, 0, amount="50")
    woke = pay(guard, 2, 24 * 200, amount="50")
    assert woke.features["dormant_days"] == 200, "this event wakes it"
    assert pay(guard, 3, 24 * 203, amount="50").features["dormant_days"] == 200
    assert pay(guard, 4, 24 * 208, amount="50").features["dormant_days"] == 0, "awake for more than a week"
    assert pay(guard, 5, 24 * 208.5, amount="50", payer={"account": "FRESH"}).features["dormant_days"] == 0
