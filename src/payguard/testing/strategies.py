"""Hypothesis strategies for payguard events, for property-testing rule sets in a bank's own suite.

    from hypothesis import given
    from payguard.testing import strategies as pgst

    @given(pgst.events(amounts=(1, 100), payees=["ACME-001"]))
    def test_small_payments_to_acme_are_never_stopped(event): ...

Every event drawn is valid in the canonical form (``payguard.parse_event`` accepts it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

__all__ = ["accounts", "amounts", "events", "sessions"]

_START = datetime(2026, 1, 1, tzinfo=UTC)
_END = datetime(2026, 12, 31, tzinfo=UTC)
_MEMOS = [
    "",
    "rent",
    "dinner",
    "房租",
    "生活费",
    "invoice 42",
    "安全账户",
    "safe account",
    "刷单 佣金",
    "USDT 投资",
    "unfreeze fee",
    "解冻费",
    "refund",
    "急用 帮忙转",
]


def accounts(prefix: str = "ACC") -> st.SearchStrategy[str]:
    """Account numbers such as ``ACC-000123``."""
    return st.integers(0, 999_999).map(lambda n: f"{prefix}-{n:06d}")


def amounts(low: Decimal | int | str = 1, high: Decimal | int | str = 1_000_000) -> st.SearchStrategy[str]:
    """Decimal amounts with two places, as strings, between ``low`` and ``high``."""
    lo, hi = int(Decimal(low) * 100), int(Decimal(high) * 100)
    return st.integers(max(lo, 1), hi).map(lambda cents: str(Decimal(cents).scaleb(-2)))


_amounts = amounts  # ``events`` has a parameter of the same name


def sessions() -> st.SearchStrategy[dict[str, Any]]:
    """App session signals: calls, screen sharing, remote access, device age."""
    return st.fixed_dictionaries(
        {},
        optional={
            "on_call": st.booleans(),
            "caller_in_contacts": st.booleans(),
            "screen_sharing": st.booleans(),
            "remote_access": st.booleans(),
            "device_age_hours": st.floats(0, 10_000, allow_nan=False),
        },
    )


def _choose(options: Sequence[str] | None, default: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(list(options)) if options else default


@st.composite
def events(
    draw: st.DrawFn,
    *,
    payers: Sequence[str] | None = None,
    payees: Sequence[str] | None = None,
    amounts: tuple[Decimal | int | str, Decimal | int | str] = (1, 1_000_000),
    start: datetime = _START,
    end: datetime = _END,
    currency: str = "CNY",
    types: Sequence[str] = ("transfer_out",),
    memos: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A canonical event dict. ``payers``/``payees`` pick accounts from a list (default: random ones),
    ``amounts`` bounds the amount, ``start``/``end`` the timestamp, ``types`` the event type."""
    seconds = int((end - start).total_seconds())
    kind = draw(st.sampled_from(list(types)))
    event: dict[str, Any] = {
        "id": draw(st.uuids()).hex,
        "type": kind,
        "timestamp": (start + timedelta(seconds=draw(st.integers(0, max(seconds, 0))))).isoformat(),
        "payer": {"account": draw(_choose(payers, accounts("P")))},
    }
    money = kind in (
        "transfer_out",
        "transfer_in",
        "cash_withdrawal",
        "deposit_redemption",
        "loan_disbursement",
    )
    if money:
        low, high = amounts
        event["amount"] = draw(_amounts(low, high))
        event["currency"] = currency
        if kind != "cash_withdrawal":
            payee: dict[str, Any] = {"account": draw(_choose(payees, accounts("Q")))}
            payee_type = draw(st.none() | st.sampled_from(["personal", "business", "merchant", "vasp"]))
            if payee_type:
                payee["type"] = payee_type
            event["payee"] = payee
        memo = draw(st.none() | st.sampled_from(memos or _MEMOS))
        if memo:
            event["memo"] = memo
    age = draw(st.none() | st.integers(10, 95))
    if age is not None:
        event["payer"]["age"] = age
    session = draw(st.none() | sessions())
    if session:
        event["session"] = session
    return event
