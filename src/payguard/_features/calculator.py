"""Compute the features a rule set reads, and write each decided event into the histories.

An outgoing payment decided ``allow`` or ``review`` is *executed*: it makes the payee known and enters the
amount history. One decided ``hold`` or ``interrupt`` is an *attempt*: it counts in the velocity windows and
as a stop, until ``Guard.resolve`` finds it legitimate: then it counts as executed at its own time, and no
longer as a stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from .._common.money import currency_exponent
from .._decision import Action
from .._event import Admitted, EventType, PartyType
from .._rules.fields import FEATURES, Kind
from .._rules.model import RuleSet
from .._stores.history import AccountHistory
from .._stores.interface import StoreTransaction
from .catalogue import FUNCTIONS, PAYEE_SIDE, Function
from .context import OUTGOING, Context, is_personal, legal_forms

__all__ = ["FeatureEngine"]

# The event kinds as this module's own constants: compiled, a module's Final is a C static, where a
# name imported from another module is a dictionary lookup on every use.
_DEVICE_EVENTS: Final = frozenset({EventType.DEVICE_BOUND, EventType.CREDENTIAL_CHANGE})
_DEPOSIT_REDEMPTION: Final = EventType.DEPOSIT_REDEMPTION
_LOAN_DISBURSEMENT: Final = EventType.LOAN_DISBURSEMENT
_TRANSFER_IN: Final = EventType.TRANSFER_IN
_CASH_WITHDRAWAL: Final = EventType.CASH_WITHDRAWAL
_TRANSFER_OUT: Final = EventType.TRANSFER_OUT
_VASP: Final = PartyType.VASP

if set(FUNCTIONS) != set(FEATURES):  # pragma: no cover - a feature declared without a function, or back
    raise AssertionError(f"features without a function or a declaration: {set(FUNCTIONS) ^ set(FEATURES)}")

# One minor unit as a Decimal, by the currency's number of decimals (0, 2, 3 or 4 in ISO 4217)
_MINOR_UNIT: Final = tuple(Decimal(1).scaleb(-exponent) for exponent in range(5))
_MONEY: Final = frozenset(name for name, spec in FEATURES.items() if spec.kind is Kind.MONEY)

# The features a rule set reads, in name order: (name, function, whether it is money)
_Functions = tuple[tuple[str, Function, bool], ...]


class FeatureEngine:
    """Computes the features a rule set reads, and writes each decided event into the histories."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.timezone = ruleset.timezone
        self.keyword_sets = ruleset.keyword_sets
        self.normalize = ruleset.normalize_text
        self.forms = legal_forms(self.normalize)
        self._plans: dict[frozenset[str], _Functions] = {}

    @staticmethod
    def names() -> frozenset[str]:
        return frozenset(FUNCTIONS)

    def context(
        self, admitted: Admitted, txn: StoreTransaction, payee_side: Mapping[str, Any] | None = None
    ) -> Context:
        """One event's view of the store, shared by ``compute`` and ``commit``; ``payee_side``: the
        subject-only mode (``Context``)."""
        return Context(
            admitted,
            txn,
            self.timezone,
            self.keyword_sets,
            self.normalize,
            forms=self.forms,
            payee_side=payee_side,
        )

    def compute(self, context: Context, names: frozenset[str]) -> dict[str, Any]:
        """The values of ``names`` for the context's event; a feature that does not apply is left out.

        Money features are computed in integer minor units, kept on ``context.minor`` for the fact, and
        returned as decimal text in the event's currency (``"500.00"``), as decisions show them.
        """
        functions = self._plans.get(names)
        if functions is None:  # one plan per set of names: sorted once, not per event
            functions = self._plans[names] = tuple(
                (name, FUNCTIONS[name], name in _MONEY) for name in sorted(names)
            )
        values = {}
        minor = context.minor
        unit = _MINOR_UNIT[currency_exponent(context.currency or "")]
        given = context.payee_side if context.payee_side is not None and context.other_payee() else None
        for name, function, money in functions:
            value = given.get(name) if given is not None and name in PAYEE_SIDE else function(context)
            if value is not None:
                if money:
                    minor[name] = value
                    value = str(unit * value)  # the Decimal of value * 10**-exponent, as text
                values[name] = value
        return values

    def commit(self, context: Context, action: Action, decision_id: str | None) -> None:
        """Write a decided event into the histories it touches (``record`` passes ``allow``)."""
        event, txn = context.event, context.txn
        history = context.history
        history.touch(context.time)
        time, amount, kind = context.time, context.amount, context.kind
        if kind in _DEVICE_EVENTS:
            history.add_device(time)
        elif kind in OUTGOING and amount is not None:
            payee = context.payee_hash
            personal = context.payee is None or is_personal(context.payee.type)
            history.add_attempt(
                time,
                amount,
                0 if kind is _CASH_WITHDRAWAL else payee or 0,  # cash rows have no payee (``cash_out_24h``)
                bool(context.is_new_payee()),
                context.balance_before,
                personal,
                action.stops,
            )
            if action.stops:
                history.add_stop(time, payee or 0)
                if decision_id is not None:  # what resolving the stop needs
                    txn.put_held(decision_id, {"event": event.to_dict(), "action": action._value_})
            else:
                self._execute(context, history)
        elif kind is _TRANSFER_IN and amount is not None:
            payer = context.payer
            history.add_inbound(
                time, amount, context.payer_hash, is_personal(payer.type), bool(payer.own_account)
            )
        elif kind is _LOAN_DISBURSEMENT and amount is not None:
            history.add_loan(time, amount, context.payer_hash)
        elif kind is _DEPOSIT_REDEMPTION and amount is not None and not event.at_maturity:
            history.add_deposit(time, amount)  # the deposit rows are deposits broken early
        txn.save(context.subject_key, history)

    def _execute(self, context: Context, history: AccountHistory) -> None:
        """An outgoing payment went through: the payee becomes known and the payee account is credited."""
        amount = context.amount
        assert amount is not None
        history.add_executed(context.time, amount, context.payee_hash, context.known_payee_row)
        if context.kind is _TRANSFER_OUT and context.payee_hash is not None:
            name = context.payee_name_hash()
            if name is not None:
                history.add_name(name, context.payee_hash)
        payee = context.payee
        if payee is not None and payee.type is _VASP:
            history.vasp_time = max(history.vasp_time or 0, context.time)
        if context.payee_side is None:  # subject-only: the payee's side is applied where it lives
            self._credit(context, amount)

    @staticmethod
    def _credit(context: Context, amount: int) -> None:
        """The payee side of an executed transfer to another account: the payee's history is credited."""
        if context.kind is _TRANSFER_OUT and context.other_payee():
            key = context.payee_key()
            payee_history = context.payee_history()
            payee_history.touch(context.time)
            own = context.payee is not None and bool(context.payee.own_account)
            payee_history.add_inbound(
                context.time, amount, context.payer_hash, is_personal(context.payer.type), own
            )
            context.txn.save(key, payee_history)

    def credit(self, admitted: Admitted, txn: StoreTransaction) -> None:
        """Apply only the payee side of an executed payment (its payer's history lives elsewhere)."""
        context = self.context(admitted, txn)
        if context.amount is not None:
            self._credit(context, context.amount)

    def payee_features(
        self, admitted: Admitted, txn: StoreTransaction, names: frozenset[str]
    ) -> dict[str, Any]:
        """The payee-side features among ``names`` for a transfer to another account, from the payee's
        history alone (what a subject-only decision is given where the payer's history lives)."""
        context = self.context(admitted, txn)
        if not context.other_payee():
            return {}
        wanted = frozenset(names & PAYEE_SIDE)
        return self.compute(context, wanted) if wanted else {}

    def execute_stopped(self, admitted: Admitted, txn: StoreTransaction) -> None:
        """A stopped payment was found legitimate: it counts as executed at its own time, not as a stop."""
        context = self.context(admitted, txn)
        history = context.history
        if context.kind in OUTGOING and context.amount is not None:
            history.remove_stop(context.time, context.payee_hash or 0)
            self._execute(context, history)
        txn.save(context.subject_key, history)
