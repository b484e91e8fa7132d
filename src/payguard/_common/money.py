"""Money: ``Decimal`` amounts and their integer minor units, never floats.

The matching engines compare money as integers in the minor unit of the currency (fen, cents), so a
threshold of ``20000`` CNY is ``2000000`` and ``"99" > 100``-style surprises cannot happen.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = [
    "MAX_MINOR_UNITS",
    "MoneyError",
    "checked_minor_units",
    "currency_exponent",
    "event_minor_units",
    "parse_decimal",
    "to_minor_units",
]

# ISO 4217 currencies whose minor unit is not 1/100. Every other code uses two decimals.
_EXPONENTS: Final[dict[str, int]] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

_POWERS_OF_TEN: Final = (1, 10, 100, 1000, 10000)  # indexed by a currency's exponent (0 to 4)

# Far below int64 (9.2e18) so that sums over a window can never overflow or saturate in the C engine.
MAX_MINOR_UNITS: Final = 10**15


class MoneyError(ValueError):
    """An amount that cannot be represented exactly in its currency. ``without_value`` says why without
    the amount, for messages about an event (a balance is the customer's business)."""

    def __init__(self, message: str, without_value: str | None = None) -> None:
        super().__init__(message)
        self.without_value = without_value or message


def currency_exponent(currency: str) -> int:
    """How many decimals the minor unit of ``currency`` has (2 unless ISO 4217 says otherwise)."""
    return _EXPONENTS.get(currency, 2)


def parse_decimal(value: object) -> Decimal:
    """A finite ``Decimal`` from a JSON string or number; floats go through their shortest repr."""
    if isinstance(value, bool):
        raise MoneyError("expected a decimal number, got a boolean")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise MoneyError(f"not a decimal number: {str(value)[:40]!r}") from None
    else:
        raise MoneyError(f"expected a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError("must be a finite number")
    return result


_TOO_LARGE: Final = "is larger than payguard handles"


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` in integer minor units of ``currency``; refuses sub-minor-unit precision.

    Exact integer arithmetic on the amount's ratio, without the decimal context that ``scaleb``,
    ``int()`` and comparisons with a ``Decimal`` fetch from the thread on every call."""
    exponent = _EXPONENTS.get(currency, 2)
    adjusted = amount.adjusted()  # the power of ten of the leading digit
    if adjusted + exponent > 15:  # at least 10**16 minor units: refused before its ratio is built
        raise MoneyError(f"{amount} {currency} is larger than payguard handles", _TOO_LARGE)
    if adjusted < -exponent and amount:  # below one minor unit: refused before its ratio (up to 1/10**999999)
        raise _too_precise(amount, currency)
    numerator, denominator = amount.as_integer_ratio()
    scale = _POWERS_OF_TEN[exponent]
    minor, rest = divmod(numerator * scale, denominator)
    if rest:
        raise _too_precise(amount, currency)
    if -MAX_MINOR_UNITS <= minor <= MAX_MINOR_UNITS:
        return minor
    raise MoneyError(f"{amount} {currency} is larger than payguard handles", _TOO_LARGE)


def event_minor_units(
    currency: str, amount: Decimal | None, payer_balance: Decimal | None, payee_balance: Decimal | None
) -> tuple[int | None, int | None, list[tuple[str, str]]]:
    """An event's amount and payer balance in minor units of ``currency``, and the (field, message) pairs
    of the amount and balances ``currency`` cannot represent."""
    problems: list[tuple[str, str]] = []
    found: list[int | None] = []
    for field, value in (
        ("amount", amount),
        ("payer.balance_before", payer_balance),
        ("payee.balance_before", payee_balance),
    ):
        minor = None
        if value is not None:
            try:
                minor = to_minor_units(value, currency)
            except MoneyError as exc:
                problems.append((field, exc.without_value))
        found.append(minor)
    return found[0], found[1], problems


def _too_precise(amount: Decimal, currency: str) -> MoneyError:
    allowed = f"more decimal places than {currency} allows ({currency_exponent(currency)})"
    return MoneyError(f"{amount} has {allowed}", f"has {allowed}")


def checked_minor_units(minor: int, currency: str) -> int:
    """``minor`` (already in minor units of ``currency``) if payguard handles it; a sum can exceed it."""
    if -MAX_MINOR_UNITS <= minor <= MAX_MINOR_UNITS:
        return minor
    raise MoneyError(f"{minor} minor units of {currency} is larger than payguard handles")
