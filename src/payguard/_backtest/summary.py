"""A replay summary in parts: each partition counts its own decisions, the driver adds the parts up.

Parts travel between processes as plain data (``freeze``): a ``ReplaySummary`` holds default factories
that do not pickle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._replay import Backtest, ReplaySummary

__all__ = ["absorb", "absorb_backtest", "add_money", "freeze", "freeze_backtest"]

# the counters of a summary and of its backtest, and their tables of money by key then currency
_COUNTS = ("events_by_type", "actions", "rule_counts", "shadow_counts", "score_counts", "snoozed_counts")
_MONEY = ("action_money", "rule_money")
_BACKTEST_COUNTS = ("tp", "fp", "fn", "tn", "legit_interrupted")
_BACKTEST_COUNTERS = ("rule_fraud", "rule_legit")
_BACKTEST_MONEY = ("fraud_money", "fraud_money_stopped")


def freeze(summary: ReplaySummary) -> dict[str, Any]:
    """What ``summary`` counted from its decisions, as plain dicts (``evaluated``, counters, money)."""
    backtest = summary.backtest
    return {
        "evaluated": summary.evaluated,
        **{name: dict(getattr(summary, name)) for name in _COUNTS},
        **{name: {key: dict(table) for key, table in getattr(summary, name).items()} for name in _MONEY},
        "backtest": freeze_backtest(backtest),
        "currencies": dict(summary.currencies.mismatched) if summary.currencies is not None else {},
    }


def absorb(summary: ReplaySummary, part: dict[str, Any]) -> None:
    """Add a frozen part to ``summary``."""
    summary.evaluated += part["evaluated"]
    for name in _COUNTS:
        getattr(summary, name).update(part[name])
    for name in _MONEY:
        tables = getattr(summary, name)
        for key, table in part[name].items():
            add_money(tables[key], table)
    absorb_backtest(summary.backtest, part["backtest"])
    if summary.currencies is not None:
        summary.currencies.mismatched.update(part["currencies"])


def freeze_backtest(backtest: Backtest) -> dict[str, Any]:
    """What ``backtest`` counted, as plain dicts."""
    return {
        **{name: getattr(backtest, name) for name in _BACKTEST_COUNTS},
        **{name: dict(getattr(backtest, name)) for name in _BACKTEST_COUNTERS + _BACKTEST_MONEY},
    }


def absorb_backtest(backtest: Backtest, frozen: Mapping[str, Any]) -> None:
    """Add a frozen backtest to ``backtest``."""
    for name in _BACKTEST_COUNTS:
        setattr(backtest, name, getattr(backtest, name) + frozen[name])
    for name in _BACKTEST_COUNTERS:
        counter: Counter[str] = getattr(backtest, name)
        counter.update(frozen[name])
    for name in _BACKTEST_MONEY:
        add_money(getattr(backtest, name), frozen[name])


def add_money(total: dict[str, Decimal], table: Mapping[str, Decimal]) -> None:
    """Add the amounts of ``table`` to ``total``, by currency."""
    for currency, amount in table.items():
        total[currency] = total.get(currency, Decimal(0)) + amount
