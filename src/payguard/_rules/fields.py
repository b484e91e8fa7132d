"""The names a rule can read: event fields by dotted path, and named features.

One namespace: ``amount``, ``payee.type``, ``session.on_call`` are event fields; ``is_new_payee`` or
``outbound_count_1h`` are features payguard computes before matching; ``attributes.NAME`` are the bank's own
scalars, declared with a type in the rule set. Event fields and features never share a name.

Every name has a kind, and the kind decides which operators a rule may use on it. That check at load time
is what keeps a string from ever being compared with a number in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .._event import Channel, CopResult, Event, EventType, Party, PartyType, RiskLevel

__all__ = ["EVENT_FIELDS", "FEATURES", "OPERATORS_BY_KIND", "FieldSpec", "Kind", "attribute_field"]


class Kind(StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    MONEY = "money"
    STRING = "string"
    ENUM = "enum"
    LIST = "list"


_COMPARE = ("eq", "ne", "gt", "gte", "lt", "lte", "exists")
OPERATORS_BY_KIND: Mapping[Kind, tuple[str, ...]] = {
    Kind.BOOL: ("eq", "ne", "exists"),
    Kind.INT: (*_COMPARE, "in", "not_in"),
    Kind.FLOAT: _COMPARE,
    Kind.MONEY: _COMPARE,
    Kind.STRING: ("eq", "ne", "in", "not_in", "exists", "matches", "contains_any", "in_list"),
    Kind.ENUM: ("eq", "ne", "in", "not_in", "exists"),
    # A list field holds several strings: ``eq`` means "contains", ``in`` "contains any of",
    # ``not_in`` "contains none of", ``exists`` "is not empty".
    Kind.LIST: ("eq", "in", "not_in", "exists"),
}


@dataclass(frozen=True)
class FieldSpec:
    """What a rule may know about a name: its kind, allowed values and where its value comes from."""

    name: str
    kind: Kind
    description: str
    is_feature: bool = False
    values: tuple[str, ...] = ()
    getter: Callable[[Event], Any] | None = None
    # the values a number can take (inclusive; money in major units), for the lint's range check
    bounds: tuple[float | None, float | None] = (None, None)

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS_BY_KIND[self.kind]


def _attr(*path: str) -> Callable[[Event], Any]:
    """A getter following ``path`` through the event; enum members become their string values."""

    def get(event: Event) -> Any:
        value: Any = event
        for part in path:
            value = getattr(value, part, None)
            if value is None:
                return None
        if isinstance(value, StrEnum):
            return value.value
        return value

    return get


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


def _party_fields(role: str) -> list[FieldSpec]:
    who = "payer (the customer whose account is debited)" if role == "payer" else "payee (the beneficiary)"
    return [
        FieldSpec(
            f"{role}.account", Kind.STRING, f"account number of the {who}", getter=_attr(role, "account")
        ),
        FieldSpec(f"{role}.name", Kind.STRING, f"name of the {who}", getter=_attr(role, "name")),
        FieldSpec(f"{role}.bank", Kind.STRING, f"bank of the {who}", getter=_attr(role, "bank")),
        FieldSpec(
            f"{role}.customer_id", Kind.STRING, f"customer id of the {who}", getter=_attr(role, "customer_id")
        ),
        FieldSpec(
            f"{role}.type",
            Kind.ENUM,
            f"kind of account of the {who}",
            values=_values(PartyType),
            getter=_attr(role, "type"),
        ),
        FieldSpec(
            f"{role}.age", Kind.INT, f"age in years of the {who}", getter=_attr(role, "age"), bounds=(0, None)
        ),
        FieldSpec(
            f"{role}.balance_before",
            Kind.MONEY,
            f"balance of the {who} before the event",
            getter=_attr(role, "balance_before"),
        ),
        FieldSpec(
            f"{role}.vulnerability",
            Kind.LIST,
            f"vulnerability flags of the {who} (elderly, minor...)",
            getter=_vulnerability(role),
        ),
        FieldSpec(
            f"{role}.own_account",
            Kind.BOOL,
            "the payee account belongs to the payer",
            getter=_attr(role, "own_account"),
        ),
        FieldSpec(
            f"{role}.timezone", Kind.STRING, f"IANA time zone of the {who}", getter=_attr(role, "timezone")
        ),
    ]


def _vulnerability(role: str) -> Callable[[Event], Any]:
    def get(event: Event) -> Any:
        party: Party | None = getattr(event, role)
        return party.vulnerability if party is not None else None

    return get


_EVENT_FIELD_LIST: list[FieldSpec] = [
    FieldSpec("id", Kind.STRING, "unique event id", getter=_attr("id")),
    FieldSpec("type", Kind.ENUM, "event type", values=_values(EventType), getter=_attr("type")),
    FieldSpec(
        "amount",
        Kind.MONEY,
        "amount moved, in the event's currency",
        getter=_attr("amount"),
        bounds=(0, None),
    ),
    FieldSpec("currency", Kind.STRING, "ISO 4217 code", getter=_attr("currency")),
    FieldSpec(
        "channel",
        Kind.ENUM,
        "channel the payment was made on",
        values=_values(Channel),
        getter=_attr("channel"),
    ),
    *_party_fields("payer"),
    *_party_fields("payee"),
    FieldSpec("memo", Kind.STRING, "free-text remittance information", getter=_attr("memo")),
    FieldSpec("purpose", Kind.STRING, "purpose the customer declared", getter=_attr("purpose")),
    FieldSpec(
        "cop_result",
        Kind.ENUM,
        "confirmation-of-payee result",
        values=_values(CopResult),
        getter=_attr("cop_result"),
    ),
    FieldSpec(
        "at_maturity",
        Kind.BOOL,
        "a deposit redemption at the deposit's term (absent or false: broken early)",
        getter=_attr("at_maturity"),
    ),
    FieldSpec(
        "session.device_id", Kind.STRING, "device of the session", getter=_attr("session", "device_id")
    ),
    FieldSpec("session.ip", Kind.STRING, "IP address of the session", getter=_attr("session", "ip")),
    FieldSpec(
        "session.on_call", Kind.BOOL, "customer is on a phone call", getter=_attr("session", "on_call")
    ),
    FieldSpec(
        "session.caller_in_contacts",
        Kind.BOOL,
        "the caller is in the customer's contacts",
        getter=_attr("session", "caller_in_contacts"),
    ),
    FieldSpec(
        "session.screen_sharing",
        Kind.BOOL,
        "the screen is being shared",
        getter=_attr("session", "screen_sharing"),
    ),
    FieldSpec(
        "session.remote_access",
        Kind.BOOL,
        "a remote-access app is active",
        getter=_attr("session", "remote_access"),
    ),
    FieldSpec(
        "session.device_age_hours",
        Kind.FLOAT,
        "hours since the device was first seen",
        getter=_attr("session", "device_age_hours"),
        bounds=(0, None),
    ),
    FieldSpec(
        "intel.payee_risk_level",
        Kind.ENUM,
        "risk level the bank knows for the payee",
        values=_values(RiskLevel),
        getter=_attr("intel", "payee_risk_level"),
    ),
    FieldSpec(
        "intel.payee_reported_scam_count",
        Kind.INT,
        "scam reports against the payee",
        getter=_attr("intel", "payee_reported_scam_count"),
        bounds=(0, None),
    ),
    FieldSpec(
        "intel.payee_mule_score",
        Kind.FLOAT,
        "mule score of the payee, 0 to 1",
        getter=_attr("intel", "payee_mule_score"),
        bounds=(0, 1),
    ),
]

EVENT_FIELDS: Mapping[str, FieldSpec] = {spec.name: spec for spec in _EVENT_FIELD_LIST}


# features that may be negative or have another range than "0 or more" (counts, ratios, sums, ages)
_FEATURE_BOUNDS: Mapping[str, tuple[float | None, float | None]] = {
    "local_hour": (0, 23),
    "balance_start_24h": (None, None),  # a balance may be overdrawn
    "account_age_days": (None, None),  # an opening date after the event is bad data a rule may look for
    "payee_account_age_days": (None, None),
}


def _feature(name: str, kind: Kind, description: str) -> FieldSpec:
    numeric = kind in (Kind.INT, Kind.FLOAT, Kind.MONEY)
    bounds = _FEATURE_BOUNDS.get(name, (0, None) if numeric else (None, None))
    return FieldSpec(name, kind, description, is_feature=True, bounds=bounds)


_FEATURE_LIST: list[FieldSpec] = [
    _feature(
        "is_new_payee", Kind.BOOL, "no executed payment from this payer account to this payee account before"
    ),
    _feature("payee_payment_count", Kind.INT, "executed payments from the payer to this payee so far"),
    _feature(
        "payee_first_paid_days", Kind.FLOAT, "days since the payer first paid this payee (absent if never)"
    ),
    _feature("outbound_count_1h", Kind.INT, "payer's outgoing attempts in the last hour, this one included"),
    _feature("outbound_count_24h", Kind.INT, "payer's outgoing attempts in the last 24 h, this one included"),
    _feature("out_sum_24h", Kind.MONEY, "sum of the payer's outgoing attempts in 24 h, this one included"),
    _feature(
        "new_payee_count_24h", Kind.INT, "distinct new payees the payer attempted in 24 h, this one included"
    ),
    _feature(
        "new_personal_payee_count_24h",
        Kind.INT,
        "distinct new payees that are persons (or of unknown type) in 24 h, this one included",
    ),
    _feature(
        "new_stranger_count_24h",
        Kind.INT,
        "new persons paid in 24 h (this one included) who sent the payer no money in 7 days",
    ),
    _feature(
        "stranger_share_24h",
        Kind.FLOAT,
        "new_stranger_count_24h over the distinct persons paid in 24 h, known or new, this one included",
    ),
    _feature(
        "drain_ratio_24h",
        Kind.FLOAT,
        "executed outgoing in 24 h (this one included) over the balance at the window's start plus credits",
    ),
    _feature(
        "cash_out_24h", Kind.MONEY, "cash asked for in 24 h, this withdrawal included (cash withdrawals only)"
    ),
    _feature("balance_start_24h", Kind.MONEY, "balance before the payer's first outgoing attempt in 24 h"),
    _feature(
        "payee_amounts_increasing",
        Kind.BOOL,
        "every payment to this payee was larger than the one before, this one included",
    ),
    _feature("amount_to_first_payee_amount", Kind.FLOAT, "amount over the first amount paid to this payee"),
    _feature(
        "new_payee_out_to_loans_24h",
        Kind.FLOAT,
        "sent to new payees in 24 h (this payment included) over loans received in 24 h",
    ),
    _feature(
        "out_to_loans_24h",
        Kind.FLOAT,
        "executed outgoing to any payee in 24 h (this payment included) over loans received in 24 h",
    ),
    _feature(
        "new_payee_out_to_deposits_24h",
        Kind.FLOAT,
        "sent to new payees in 24 h (this payment included) over deposits broken in 24 h",
    ),
    _feature("unseen_inbound_7d", Kind.INT, "credits in 7 days from people the customer never paid"),
    _feature(
        "new_sender_inbound_7d",
        Kind.INT,
        "credits in 7 days from people the customer never paid who first sent it money within those 7 days"
        " (its own accounts elsewhere excepted)",
    ),
    _feature(
        "is_return_to_sender",
        Kind.BOOL,
        "the payee sent the customer at least this amount in 7 days (a refund, or money sent back)",
    ),
    _feature(
        "rebates_24h",
        Kind.INT,
        "credits in 24 h from persons never paid, each within an hour after a payment to a new person and"
        " worth 1 to 1.5 times it",
    ),
    _feature("is_first_vasp_payment", Kind.BOOL, "a payment to a VASP (crypto platform), none in 365 days"),
    _feature(
        "amount_to_p95_90d", Kind.FLOAT, "amount over the 95th percentile of the payer's 90-day outgoing"
    ),
    _feature(
        "max_amount_365d", Kind.MONEY, "largest outgoing amount of the payer in 365 days before this one"
    ),
    _feature(
        "is_first_large_transfer", Kind.BOOL, "amount exceeds every outgoing amount of the payer in 365 days"
    ),
    _feature("inbound_distinct_payers_24h", Kind.INT, "distinct payers who sent money to the payer in 24 h"),
    _feature(
        "passthrough_ratio_24h", Kind.FLOAT, "payer's outgoing sum in 24 h over its incoming sum in 24 h"
    ),
    _feature("account_age_days", Kind.INT, "days since payer.account_opened"),
    _feature(
        "payee_name_paid_elsewhere",
        Kind.BOOL,
        "another account was paid under this payee's name (normalised, legal form such as Ltd dropped)",
    ),
    _feature("payee_account_age_days", Kind.INT, "days since payee.account_opened, when the bank knows it"),
    _feature(
        "payee_inbound_distinct_payers_24h", Kind.INT, "distinct payers who sent money to the payee in 24 h"
    ),
    _feature("loan_inflow_24h", Kind.MONEY, "loan disbursements credited to the payer in 24 h"),
    _feature("distinct_lenders_24h", Kind.INT, "distinct lenders that credited the payer in 24 h"),
    _feature("deposit_redeemed_24h", Kind.MONEY, "deposits the payer broke early in 24 h"),
    _feature(
        "recent_stops_60m", Kind.INT, "hold or interrupt decisions the payer got in the last 60 minutes"
    ),
    _feature("recent_stops_30d", Kind.INT, "hold or interrupt decisions the payer got in the last 30 days"),
    _feature("last_stop_other_payee", Kind.BOOL, "the payer's last stop in 60 minutes was for another payee"),
    _feature(
        "payee_recent_stops_30d",
        Kind.INT,
        "stopped payments to this payee in 30 days (those resolved as legitimate no longer count)",
    ),
    _feature(
        "dormant_days", Kind.INT, "days the account was inactive before it woke in the last 7 days (0: never)"
    ),
    _feature("hours_since_new_device", Kind.FLOAT, "hours since a device was bound or credentials changed"),
    _feature("local_hour", Kind.INT, "hour of day (0-23) in the payer's time zone, else the rule set's"),
    _feature("is_night", Kind.BOOL, "local_hour is between 0 and 5"),
    _feature("memo_categories", Kind.LIST, "keyword sets whose phrases occur in the normalised memo"),
]

FEATURES: Mapping[str, FieldSpec] = {spec.name: spec for spec in _FEATURE_LIST}

assert not set(FEATURES) & set(EVENT_FIELDS), "event fields and features must not share a name"


def attribute_field(name: str, kind: Kind) -> FieldSpec:
    """The spec of ``attributes.NAME``, declared with ``kind`` in the rule set."""
    key = name

    def get(event: Event) -> Any:
        return event.attributes.get(key)

    return FieldSpec(f"attributes.{name}", kind, f"bank attribute {name!r}", getter=get)
