"""The library hooks a partitioned replay is built on: a decision in subject-only mode with the
payee-side features supplied, the payee-side features computed where the payee's history lives, and
only the payee side (or only the subject side) of an executed payment applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from payguard import Guard, PayguardError, load_rule_set
from payguard._backtest.memory import copied
from payguard._event import parse_event
from payguard._features.catalogue import PAYEE_SIDE
from payguard._features.context import accounts
from payguard._stores.history import AccountHistory, party

from ..conftest import make_event

RULES = """\
ruleset: {id: hooks, version: "1", timezone: UTC, currency: CNY}
rules:
  - id: fan_in
    description: the payee was paid by three or more today
    when: {type: transfer_out, payee_inbound_distinct_payers_24h: {gte: 3}}
    action: hold
    reason: r
  - id: received
    description: the payer received money today
    mode: shadow
    when: {inbound_distinct_payers_24h: {gte: 1}}
    action: review
    reason: r
"""
MULE = "6222000099990000"


def payment(n: int, payer: str, payee: str = MULE) -> dict[str, object]:
    return make_event(
        id=f"h{n}",
        timestamp=f"2026-03-02T1{n}:00:00+00:00",
        payer={"account": payer},
        payee={"account": payee},
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def guard(rules: Path) -> Guard:
    return Guard(load_rule_set(rules), max_future=None, on_error="raise")


def test_split_across_two_guards_a_payment_is_decided_as_in_one(rules: Path) -> None:
    earlier = [payment(n, f"622200001111000{n}") for n in range(4)]
    last = payment(5, "6222000022220000")
    whole = guard(rules)
    payees, payers = guard(rules), guard(rules)  # where the payee's history lives, and the payer's
    for event in earlier:
        if not whole.evaluate(event).stopped:  # from the third payer on, held: they credit no one
            payees.record([event], side="payee")
    expected = whole.evaluate(last)
    supplied = payees.payee_features(last)
    assert supplied == {"payee_inbound_distinct_payers_24h": 3}  # the two credited payers and this one
    decision, fresh = payers.evaluate_subject(last, supplied)
    assert fresh
    assert (decision.action, decision.rule_ids, dict(decision.features)) == (
        expected.action,
        expected.rule_ids,
        dict(expected.features),
    )
    assert decision.rule_ids == ("fan_in",)


def test_a_subject_only_decision_does_not_credit_the_payee_and_the_payee_side_does_not_touch_the_payer(
    rules: Path,
) -> None:
    payer = "6222000011110001"
    subject_only = guard(rules)
    subject_only.evaluate_subject(payment(1, payer), {"payee_inbound_distinct_payers_24h": 1})
    with subject_only.store.transaction() as txn:
        assert txn.account(party(MULE)[0]).inbound_rows(0, 1 << 40).count() == 0
        assert txn.account(party(payer)[0]).out_rows(0, 1 << 40).count() == 1
    payee_only = guard(rules)
    payee_only.record([payment(1, payer)], side="payee")
    with payee_only.store.transaction() as txn:
        assert txn.account(party(MULE)[0]).inbound_rows(0, 1 << 40).count() == 1
        assert txn.account(party(payer)[0]).out_rows(0, 1 << 40).count() == 0
    subject = guard(rules)
    subject.record([payment(1, payer)], side="subject")
    with subject.store.transaction() as txn:
        assert txn.account(party(MULE)[0]).inbound_rows(0, 1 << 40).count() == 0
        assert txn.account(party(payer)[0]).out_rows(0, 1 << 40).count() == 1


def test_payee_features_are_empty_for_a_payment_to_oneself_or_a_rule_set_that_reads_none(rules: Path) -> None:
    assert guard(rules).payee_features(payment(1, MULE)) == {}
    shipped = Guard.from_path(
        Path(__file__).parents[2] / "examples" / "handbook" / "rules.yaml", max_future=None
    )
    assert shipped.payee_features(payment(1, "6222000011110001")) == {}


def test_record_refuses_an_unknown_side(rules: Path) -> None:
    with pytest.raises(PayguardError, match="side must be"):
        guard(rules).record([payment(1, "6222000011110001")], side="neither")  # type: ignore[arg-type]


def test_the_accounts_an_event_touches_are_its_subject_and_a_credited_payee() -> None:
    out = parse_event(payment(1, "6222000011110001"))
    assert accounts(out) == (party("6222000011110001")[0], party(MULE)[0])
    incoming = parse_event(make_event(type="transfer_in", payee={"account": MULE}))
    assert accounts(incoming) == (party(MULE)[0], None)
    to_self = parse_event(payment(1, MULE))
    assert accounts(to_self) == (party(MULE)[0], None)
    assert {"payee_inbound_distinct_payers_24h"} == PAYEE_SIDE


def test_a_copied_history_shares_no_array_with_its_original() -> None:
    history = AccountHistory()
    history.add_executed(1_000, 500, 42)
    history.add_inbound(1_000, 300, 7)
    copy = copied(history)
    assert copy == history
    copy.add_executed(2_000, 700, 43)
    copy.add_inbound(2_000, 100, 8)
    assert copy != history
    assert all(getattr(copy, name) is not getattr(history, name) for name in ("out", "sample", "inbound"))
    assert copied(history) == history  # the original did not change with its copy
