"""The canonical event: what is accepted, and how every bad field is named."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import payguard
from payguard import InvalidEventError, parse_event
from payguard._common.money import MAX_MINOR_UNITS, MoneyError, currency_exponent, to_minor_units

from .conftest import make_event


def test_a_canonical_event_parses_with_money_as_decimal() -> None:
    event = parse_event(make_event(amount="1234.50"))
    assert event.amount == Decimal("1234.50")
    assert event.payee is not None
    assert event.payee.account == "6222000033334444"


def test_json_numbers_become_exact_decimals_not_floats() -> None:
    assert parse_event(make_event(amount=0.1)).amount == Decimal("0.1")
    assert parse_event(make_event(amount=25000)).amount == Decimal(25000)


def test_every_bad_field_is_named_by_its_dotted_path() -> None:
    bad = make_event(timestamp="2026-03-02T10:00:00", channel="pigeon", payee={"account": ""}, memo=5)
    with pytest.raises(InvalidEventError) as caught:
        parse_event(bad)
    assert set(caught.value.fields) == {"timestamp", "channel", "payee.account", "memo"}
    assert "payee.account" in str(caught.value)
    assert caught.value.event_id == "evt-1"


def test_invalid_event_error_is_a_value_error_under_the_payguard_root() -> None:
    assert issubclass(InvalidEventError, ValueError)
    assert issubclass(InvalidEventError, payguard.PayguardError)


def test_unknown_fields_are_rejected_because_they_are_usually_typos() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(ammount="5", payer={"acount": "x"}))
    assert {(e.field, e.code) for e in caught.value.errors} >= {
        ("ammount", "unknown_field"),
        ("payer.acount", "unknown_field"),
    }


def test_anything_goes_under_attributes_as_long_as_it_is_scalar() -> None:
    event = parse_event(make_event(attributes={"mcc": "6051", "score": 0.4, "flag": True}))
    assert event.attributes["mcc"] == "6051"
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(attributes={"nested": {"a": 1}}))
    assert caught.value.fields[0].startswith("attributes.nested")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"amount": "0"}, "amount", "greater than 0"),
        ({"amount": "-5"}, "amount", "greater than 0"),
        ({"amount": "NaN"}, "amount", "finite"),
        ({"amount": "Infinity"}, "amount", "finite"),
        ({"amount": "1.001"}, "amount", "decimal places"),
        ({"amount": "1e30"}, "amount", "larger than"),
        ({"amount": "1e999999"}, "amount", "larger than"),  # scaling it would overflow the decimal context
        ({"amount": "1e-999999"}, "amount", "decimal places"),
        ({"amount": None}, "amount", "required"),
        ({"currency": None}, "currency", "required"),
        ({"currency": "cny"}, "currency", "pattern"),
        ({"payee": None}, "payee", "required"),
    ],
)
def test_money_events_need_a_positive_exact_amount_currency_and_payee(
    overrides: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(**overrides))
    assert caught.value.fields == (field,)
    assert message in caught.value.errors[0].message


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"timestamp": "1969-12-31T23:00:00Z"},
            "timestamp",
            "must be between 1970-01-02 and 9999-12-30 (UTC)",
        ),
        (
            {"timestamp": "9999-12-31T00:00:00+00:00"},
            "timestamp",
            "must be between 1970-01-02 and 9999-12-30",
        ),
        ({"amount": "twelve"}, "amount", "must be a decimal number"),
        ({"amount": True}, "amount", "must be a decimal number (a JSON string or number)"),
        (
            {"payer": {"account": "1", "balance_before": [1]}},
            "payer.balance_before",
            "must be a decimal number",
        ),
        (
            {"payer": {"account": "1", "balance_before": "-Infinity"}},
            "payer.balance_before",
            "must be a finite number",
        ),
        ({"payer": {"account": "1", "age": "old"}}, "payer.age", "must be a valid integer"),
    ],
)
def test_messages_say_what_a_field_must_be(overrides: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(**overrides))
    assert caught.value.fields == (field,)
    assert caught.value.errors[0].message.startswith(message)


def test_decimal_strings_may_carry_spaces_and_floats_keep_their_shortest_form() -> None:
    assert parse_event(make_event(amount=" 12.50 ")).amount == Decimal("12.50")
    assert parse_event(make_event(amount=1e3)).amount == Decimal("1000.0")
    assert parse_event(
        make_event(payer={"account": "1", "balance_before": 0.3})
    ).payer.balance_before == Decimal("0.3")


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None, min_value=-(10**17), max_value=10**17),
    st.sampled_from(["CNY", "JPY", "KWD", "CLF"]),
)
def test_minor_units_are_the_amount_scaled_exactly_or_refused(amount: Decimal, currency: str) -> None:
    scaled = amount.scaleb(currency_exponent(currency))
    exact = scaled == scaled.to_integral_value() and abs(scaled) <= MAX_MINOR_UNITS
    if exact:
        assert to_minor_units(amount, currency) == int(scaled)
    else:
        with pytest.raises(MoneyError):
            to_minor_units(amount, currency)


def test_minor_units_of_one_amount_follow_the_currency_of_each_call() -> None:
    # conversions are remembered by the Decimal object: the currency is part of what is remembered
    amount = Decimal("12.50")
    assert [to_minor_units(amount, c) for c in ("CNY", "KWD", "CLF", "CNY")] == [1250, 12500, 125000, 1250]
    for _ in range(2):  # a refusal is not remembered as a result
        with pytest.raises(MoneyError):
            to_minor_units(amount, "JPY")
    many = [Decimal(n) / 4 for n in range(200)]  # more amounts than are remembered
    assert [to_minor_units(a, "CNY") for a in many] == [n * 25 for n in range(200)]
    assert [to_minor_units(a, "CNY") for a in many] == [n * 25 for n in range(200)]


def test_yen_have_no_minor_unit_and_dinars_have_three() -> None:
    assert parse_event(make_event(currency="JPY", amount="500")).amount == Decimal(500)
    with pytest.raises(InvalidEventError):
        parse_event(make_event(currency="JPY", amount="500.5"))
    assert parse_event(make_event(currency="KWD", amount="1.125")).amount == Decimal("1.125")


def test_a_cash_withdrawal_has_no_payee_and_a_login_no_amount() -> None:
    assert parse_event(make_event(type="cash_withdrawal", payee=None)).payee is None
    login = make_event(type="login", amount=None, currency=None, payee=None)
    assert parse_event(login).amount is None
    with pytest.raises(InvalidEventError) as caught:
        parse_event({**login, "amount": "5"})
    assert caught.value.fields == ("amount",)


def test_texts_longer_than_payguard_matches_are_refused_not_cut() -> None:
    assert parse_event(make_event(memo="x" * 2048)).memo == "x" * 2048
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(memo="x" * 2049))
    assert caught.value.fields == ("memo",)


def test_a_time_zone_must_be_a_known_iana_name() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(make_event(payer={"timezone": "Mars/Olympus"}))
    assert caught.value.fields == ("payer.timezone",)


def test_a_non_object_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(["not", "an", "event"])
    assert caught.value.fields == ("event",)


def test_an_event_round_trips_through_its_canonical_dict() -> None:
    event = parse_event(make_event(session={"on_call": True}, label={"is_fraud": True, "typology": "T1"}))
    assert parse_event(event.to_dict()) == event
