"""Validation is one stage: it refuses an invalid event once, and hands what it computed to the stages after it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payguard import Action, Event, Guard, InvalidEventError
from payguard._event import admit

from .conftest import make_event

WriteRules = Callable[..., Path]

ATTRIBUTE_RULES = """
attributes:
  mcc: string
  risk_band: int
rules:
  - id: gambling_merchant
    description: card payments to gambling merchants are reviewed
    when: {attributes.mcc: "7995"}
    action: review
    reason: gambling merchant
"""


@pytest.fixture
def audited(write_rules: WriteRules, tmp_path: Path) -> Iterator[tuple[Guard, Path]]:
    """A guard on ``ATTRIBUTE_RULES`` auditing to a file, and the file."""
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(ATTRIBUTE_RULES), audit=audit) as guard:
        yield guard, audit


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_attribute_of_another_type_than_declared_is_refused_at_validation_and_audited(
    audited: tuple[Guard, Path],
) -> None:
    guard, audit = audited
    with pytest.raises(InvalidEventError) as caught:
        guard.evaluate(make_event(id="bad-mcc", attributes={"mcc": 7995}))
    assert caught.value.fields == ("attributes.mcc",)
    assert "declares it string, got int" in str(caught.value)
    # declared but read by no rule: the rule set's declaration is the schema, checked all the same
    with pytest.raises(InvalidEventError) as band:
        guard.evaluate(make_event(id="bad-band", attributes={"mcc": "5411", "risk_band": "high"}))
    assert band.value.fields == ("attributes.risk_band",)
    written = records(audit)
    assert [r["record"] for r in written] == ["rejected", "rejected"]
    assert written[0]["errors"][0]["field"] == "attributes.mcc"
    # nothing of the refused events reached the store: the same ids decide normally once valid
    assert guard.evaluate(make_event(id="bad-mcc", attributes={"mcc": "7995"})).action is Action.REVIEW
    assert guard.evaluate(make_event(id="bad-band", attributes={"risk_band": 3})).action is Action.ALLOW


def test_validation_hands_on_the_event_time_and_its_money_in_minor_units() -> None:
    admitted = admit(
        make_event(timestamp="2026-03-02T10:00:00.5+08:00", amount="100.05", payer={"balance_before": "2500"})
    )
    assert admitted.time == 1772416800  # 2026-03-02T02:00:00Z, the half second rounded down
    assert admitted.offset == timedelta(hours=8)
    assert (admitted.amount, admitted.balance) == (10005, 250000)
    yen = admit(make_event(amount="1500", currency="JPY"))
    assert (yen.amount, yen.balance) == (1500, None)
    login = admit(make_event(type="login", amount=None, currency=None, payee=None))
    assert (login.amount, login.balance) == (None, None)


def test_an_event_built_directly_is_still_refused_for_money_its_currency_cannot_hold(
    audited: tuple[Guard, Path],
) -> None:
    # Event(...) checks the fields; the money check is validation's, which every evaluation runs
    event = Event.model_validate(make_event(id="tenth-of-a-fen", amount="0.001"))
    guard, audit = audited
    with pytest.raises(InvalidEventError) as caught:
        guard.evaluate(event)
    assert caught.value.fields == ("amount",)
    assert "more decimal places than CNY allows" in str(caught.value)
    assert records(audit)[0]["record"] == "rejected"


def test_evaluate_fresh_tells_a_new_decision_from_the_repeat_of_an_event_id(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(ATTRIBUTE_RULES))
    first, fresh = guard.evaluate_fresh(make_event(id="once"))
    again, fresh_again = guard.evaluate_fresh(make_event(id="once"))
    assert (fresh, fresh_again) == (True, False)
    assert again == first


def test_guard_validate_refuses_as_evaluate_does_and_audits_the_rejection(
    audited: tuple[Guard, Path],
) -> None:
    guard, audit = audited
    assert guard.validate(make_event(id="fine")).id == "fine"
    with pytest.raises(InvalidEventError):
        guard.validate(make_event(id="no-payer", payer=None))
    assert [r["record"] for r in records(audit)] == ["rejected"]


def test_record_refuses_an_attribute_of_another_type_than_declared_naming_it_and_auditing_nothing(
    audited: tuple[Guard, Path],
) -> None:
    guard, audit = audited
    past = [make_event(id="h1"), make_event(id="h2", attributes={"risk_band": "high"}), make_event(id="h3")]
    with pytest.raises(InvalidEventError) as caught:
        guard.record(past)
    assert caught.value.fields == ("attributes.risk_band",)
    assert (
        str(caught.value) == "invalid event 'h2': attributes.risk_band: the rule set declares it int, got str"
    )
    assert audit.read_text(encoding="utf-8") == ""  # recording history audits nothing, refusals included
