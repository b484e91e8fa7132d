"""Reference exchange rates in the rule-set header (``fx``): money in a currency no rule is written in is
compared at them, so that one rule set written in CNY also judges a GBP or EUR payment.

The rates are reference rates for thresholds (reviewed, say, quarterly), not dealing rates: a 20,000 CNY
threshold means about 2,200 GBP whatever the market did this morning. Features are computed in the event's
own currency; only the values the rules compare are converted. A payment in a currency that is neither
the rule set's, nor one a rule is written in, nor in the table meets no money test: it gets at least the
header's ``unrated_currency`` action (review unless the rule set says otherwise), so that it fails closed.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol

from ruamel.yaml.comments import CommentedMap

from .._common.money import currency_exponent
from .._decision import Action
from .conditions import Compare, leaves
from .model import RuleSet

__all__ = ["rated_currencies", "read_fx", "read_unrated", "rescale", "scales"]

_CODE = re.compile(r"[A-Z]{3}")


class _Problems(Protocol):
    def problem(
        self, pos: tuple[int, int], code: str, message: str, suggestion: str | None = None
    ) -> None: ...

    @staticmethod
    def at(node: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]: ...


def read_fx(builder: _Problems, node: CommentedMap, currency: str | None) -> dict[str, Decimal]:
    """``fx: {GBP: 9.1, EUR: 7.8}``: units of the header's ``currency`` one unit of each buys."""
    if "fx" not in node:
        return {}
    table = node["fx"]
    where = builder.at(node, "fx", value=True)
    if not isinstance(table, CommentedMap) or not table:
        builder.problem(where, "invalid_type", "ruleset.fx maps ISO 4217 codes to rates, e.g. {GBP: 9.1}")
        return {}
    if currency is None:
        builder.problem(where, "missing_currency", "ruleset.fx needs the header's currency: rates to what?")
        return {}
    rates: dict[str, Decimal] = {}
    for code, raw in table.items():
        at = builder.at(table, code, value=True)
        if not isinstance(code, str) or not _CODE.fullmatch(code) or code == currency:
            builder.problem(
                builder.at(table, code),
                "invalid_value",
                f"ruleset.fx: {code!r} is not an ISO 4217 code other than the rule set's {currency}",
            )
            continue
        try:
            rate = (
                Decimal(str(raw))
                if isinstance(raw, int | float | str) and not isinstance(raw, bool)
                else None
            )
        except InvalidOperation:
            rate = None
        if rate is None or not rate.is_finite() or rate <= 0:
            builder.problem(at, "invalid_value", f"ruleset.fx.{code} must be a positive number, got {raw!r}")
            continue
        rates[code] = rate
    return rates


def read_unrated(builder: _Problems, node: CommentedMap) -> Action:
    """``unrated_currency: hold``: the action at least of a payment no money test can read (review)."""
    value = node.get("unrated_currency", Action.REVIEW.value)
    if value in {action.value for action in Action}:
        return Action(value)
    builder.problem(
        builder.at(node, "unrated_currency", value=True),
        "invalid_value",
        "ruleset.unrated_currency is the action at least of a payment in a currency without a rate: "
        f"allow, review, hold or interrupt, got {value!r}",
    )
    return Action.REVIEW


def _written(ruleset: RuleSet) -> set[str]:
    """The currencies the rules' money tests are written in (the header's, or a rule's own)."""
    return {
        leaf.currency
        for rule in ruleset.rules
        for leaf in leaves(rule.condition)
        if isinstance(leaf, Compare) and leaf.currency is not None
    }


def rated_currencies(ruleset: RuleSet) -> frozenset[str] | None:
    """The currencies the rules' money tests can read: those they are written in and those with a rate;
    ``None`` when no money test names a currency (nothing to convert, nothing missed)."""
    written = _written(ruleset)
    return frozenset(written | set(ruleset.fx)) if written else None


def scales(ruleset: RuleSet) -> dict[str, tuple[int, int, str]]:
    """For each currency the rules compare at a reference rate: ``(numerator, denominator, target)`` that
    turn its minor units into the target currency's. A currency some rule is written in is compared as is."""
    target = ruleset.currency
    if not ruleset.fx or target is None:
        return {}
    written = _written(ruleset)
    found = {}
    for code, rate in ruleset.fx.items():
        if code in written:
            continue
        factor = Fraction(rate) * Fraction(10) ** (currency_exponent(target) - currency_exponent(code))
        found[code] = (factor.numerator, factor.denominator, target)
    return found


def rescale(minor: int, numerator: int, denominator: int) -> int:
    """``minor`` units times ``numerator / denominator``, rounded half away from zero."""
    scaled, rest = divmod(abs(minor) * numerator, denominator)
    if 2 * rest >= denominator:
        scaled += 1
    return scaled if minor >= 0 else -scaled
