"""The canonical transaction event, validated with pydantic v2.

Field names are a public contract. Unknown fields outside ``attributes`` are rejected because they are
nearly always typos (``ammount``) that would otherwise make a rule silently never fire.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, Self
from zoneinfo import ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ._common.money import event_minor_units
from ._common.time import epoch_seconds, zone
from ._errors import FieldError, InvalidEventError

__all__ = [
    "MONEY_EVENT_TYPES",
    "Admitted",
    "Channel",
    "CopResult",
    "Event",
    "EventType",
    "Intel",
    "Label",
    "Party",
    "PartyType",
    "RiskLevel",
    "Session",
    "admit",
    "digest",
    "parse_event",
]

# Longest texts payguard accepts. Payment rails carry far less (ISO 20022 Ustrd: 140 characters), and a
# bound keeps keyword matching and the C engine (65,535 bytes per string) safe. Longer input is refused.
MAX_MEMO = 2048
MAX_TEXT = 256
MAX_ATTRIBUTES = 64


_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


class EventType(StrEnum):
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    CASH_WITHDRAWAL = "cash_withdrawal"
    DEPOSIT_REDEMPTION = "deposit_redemption"
    LOAN_DISBURSEMENT = "loan_disbursement"
    LOGIN = "login"
    DEVICE_BOUND = "device_bound"
    CREDENTIAL_CHANGE = "credential_change"


MONEY_EVENT_TYPES = frozenset(
    {
        EventType.TRANSFER_OUT,
        EventType.TRANSFER_IN,
        EventType.CASH_WITHDRAWAL,
        EventType.DEPOSIT_REDEMPTION,
        EventType.LOAN_DISBURSEMENT,
    }
)


class Channel(StrEnum):
    MOBILE_APP = "mobile_app"
    INTERNET_BANKING = "internet_banking"
    ATM = "atm"
    BRANCH_COUNTER = "branch_counter"
    PHONE_BANKING = "phone_banking"
    WALLET = "wallet"
    OPEN_BANKING_API = "open_banking_api"
    OTHER = "other"


class CopResult(StrEnum):
    MATCH = "match"
    CLOSE_MATCH = "close_match"
    NO_MATCH = "no_match"
    UNAVAILABLE = "unavailable"
    NOT_CHECKED = "not_checked"


class PartyType(StrEnum):
    PERSONAL = "personal"
    BUSINESS = "business"
    MERCHANT = "merchant"
    VASP = "vasp"
    GOVERNMENT = "government"
    LENDER = "lender"
    UNKNOWN = "unknown"


class RiskLevel(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# pydantic-core parses decimals natively (strings, ints, and floats through their shortest repr, as
# ``parse_decimal`` does for rule files) and refuses booleans, NaN and infinities.
Money = Annotated[Decimal, Field(allow_inf_nan=False)]
ShortText = Annotated[str, Field(max_length=MAX_TEXT)]
Scalar = str | bool | int | float | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Party(_Model):
    account: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    name: ShortText | None = None
    bank: ShortText | None = None
    customer_id: ShortText | None = None
    type: PartyType | None = None
    age: Annotated[int, Field(ge=0, le=150)] | None = None
    account_opened: date | None = None
    balance_before: Money | None = None
    vulnerability: Annotated[tuple[ShortText, ...], Field(max_length=16)] = ()
    own_account: bool | None = None
    timezone: ShortText | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zone(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("not a known IANA time zone") from None
        return value


class Session(_Model):
    device_id: ShortText | None = None
    ip: ShortText | None = None
    on_call: bool | None = None
    caller_in_contacts: bool | None = None
    screen_sharing: bool | None = None
    remote_access: bool | None = None
    device_age_hours: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class Intel(_Model):
    payee_risk_level: RiskLevel | None = None
    payee_reported_scam_count: Annotated[int, Field(ge=0, le=10**9)] | None = None
    payee_mule_score: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class Label(_Model):
    is_fraud: bool
    typology: ShortText | None = None


class Event(_Model):
    """A transaction event in payguard's canonical form."""

    id: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    type: EventType = EventType.TRANSFER_OUT
    # A day of slack at both ends, so that converting to any time zone cannot overflow.
    timestamp: Annotated[AwareDatetime, Field(ge=_EARLIEST, le=_LATEST)]
    amount: Annotated[Money, Field(gt=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    channel: Channel | None = None
    payer: Party
    payee: Party | None = None
    memo: Annotated[str, Field(max_length=MAX_MEMO)] | None = None
    purpose: ShortText | None = None
    cop_result: CopResult | None = None
    # deposit_redemption only: True when the deposit reached its term (a maturity), False or absent when it
    # was broken early, which is what the deposit features count (absent: broken early, as before the field)
    at_maturity: bool | None = None
    session: Session | None = None
    intel: Intel | None = None
    attributes: Annotated[
        dict[Annotated[str, Field(max_length=64)], Scalar], Field(max_length=MAX_ATTRIBUTES)
    ] = Field(default_factory=dict)
    label: Label | None = None

    @field_validator("attributes")
    @classmethod
    def _finite_attributes(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"attribute {key!r} must be a finite number")
            if isinstance(item, str) and len(item) > MAX_TEXT:
                raise ValueError(f"attribute {key!r} is longer than {MAX_TEXT} characters")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53:
                raise ValueError(f"attribute {key!r} is larger than 2**53")
        keys = list(value)
        # in name order: the canonical event (its JSON, its digest) does not depend on the input's order
        return value if keys == sorted(keys) else dict(sorted(value.items()))

    @model_validator(mode="after")
    def _money_rules(self) -> Self:
        errors: list[tuple[str, str]] = []
        kind, amount, currency = self.type, self.amount, self.currency  # read once: model attributes are slow
        if kind in MONEY_EVENT_TYPES:
            if amount is None:
                errors.append(("amount", f"required for {kind.value} events"))
            if currency is None:
                errors.append(("currency", f"required for {kind.value} events"))
            if self.payee is None and kind is not EventType.CASH_WITHDRAWAL:
                errors.append(("payee", f"required for {kind.value} events"))
        elif amount is not None:
            errors.append(("amount", f"{kind.value} events carry no amount"))
        if self.at_maturity is not None and kind is not EventType.DEPOSIT_REDEMPTION:
            errors.append(("at_maturity", "only for deposit_redemption events"))
        if errors:
            raise _CrossFieldError(errors)
        return self

    @property
    def is_money(self) -> bool:
        return self.type in MONEY_EVENT_TYPES

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form (Decimal as string, times in RFC 3339)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


class _CrossFieldError(ValueError):
    """Raised inside the model validator so each cross-field problem keeps its own path."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "event"


# pydantic's wording for the checks it makes natively, in payguard's voice ("must be ...").
_MESSAGES = {
    "decimal_parsing": "must be a decimal number",
    "decimal_type": "must be a decimal number (a JSON string or number)",
    "greater_than_equal": "must be between 1970-01-02 and 9999-12-30 (UTC)",
    "less_than_equal": "must be between 1970-01-02 and 9999-12-30 (UTC)",
}


def _message(error: Any) -> str:
    if error["loc"] == ("timestamp",) or error["type"].startswith("decimal_"):
        known = _MESSAGES.get(error["type"])
        if known is not None:
            return known
    text = str(error["msg"])
    for prefix, replacement in (
        ("Value error, ", ""),
        ("Assertion failed, ", ""),
        ("Input should be ", "must be "),
    ):
        if text.startswith(prefix):
            text = replacement + text[len(prefix) :]
    return text


# The model's compiled serialiser: the canonical JSON of an event, without a Python layer per call
_to_json: Callable[..., bytes] = Event.__pydantic_serializer__.to_json


def digest(event: Event) -> bytes:
    """16 bytes that differ for any two events whose canonical JSON differs (BLAKE2b of it), equal for
    equal events however their input was written (key order, absent or null fields, attribute order)."""
    return hashlib.blake2b(_to_json(event, exclude_none=True), digest_size=16).digest()


# The model's compiled validator, called directly: ``Event.model_validate`` adds a Python layer per event.
_validate: Callable[[object], Event] = Event.__pydantic_validator__.validate_python


class Admitted(NamedTuple):
    """An event that passed validation, with what validation computed, handed to the stages after it."""

    event: Event
    time: int  # epoch seconds of ``event.timestamp``, rounded down
    offset: timedelta  # the UTC offset of ``event.timestamp``
    amount: int | None  # in minor units of the event's currency
    balance: int | None  # ``payer.balance_before`` in minor units


def admit(data: object) -> Admitted:
    """Validate ``data`` (a dict in the canonical form, or an ``Event``): the one validation of an event.

    Raises ``InvalidEventError`` naming every bad field by its dotted path.
    """
    event = data if isinstance(data, Event) else _parse(data)
    amount = balance = None
    currency = event.currency
    if currency is not None:
        payer, payee = event.payer, event.payee
        amount, balance, problems = event_minor_units(
            currency, event.amount, payer.balance_before, None if payee is None else payee.balance_before
        )
        if problems:
            raise InvalidEventError([FieldError(field, message) for field, message in problems], event.id)
    moment = event.timestamp
    offset = moment.utcoffset()
    assert offset is not None  # an AwareDatetime
    return Admitted(event, epoch_seconds(moment, offset), offset, amount, balance)


def parse_event(data: object) -> Event:
    """Validate ``data`` (a dict in the canonical form, or an ``Event``) into an ``Event``.

    Raises ``InvalidEventError`` naming every bad field by its dotted path.
    """
    return admit(data).event


def _parse(data: object) -> Event:
    event_id = None
    if isinstance(data, dict):
        raw_id = data.get("id")
        event_id = raw_id if isinstance(raw_id, str) else None
    else:
        raise InvalidEventError([FieldError("event", f"expected a JSON object, got {type(data).__name__}")])
    try:
        return _validate(data)
    except ValidationError as exc:
        found: list[FieldError] = []
        for error in exc.errors(include_url=False):
            ctx = error.get("ctx") or {}
            inner = ctx.get("error")
            if isinstance(inner, _CrossFieldError):
                found.extend(FieldError(field, message) for field, message in inner.errors)
                continue
            code = "unknown_field" if error["type"] == "extra_forbidden" else str(error["type"])
            message = "unknown field" if code == "unknown_field" else _message(error)
            found.append(FieldError(_path(error["loc"]), message, code))
        raise InvalidEventError(found, event_id) from None
