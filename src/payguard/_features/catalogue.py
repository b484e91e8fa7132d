"""The features' functions, one per feature declared in ``_rules/fields.py``, registered by name.

Everything uses **event time**, never the wall clock, so a replay and live traffic agree. Late events are
placed where they belong in time: windows count entries with ``t - window < time <= t``, and histories are
pruned an hour later than the windows need, so an event up to an hour late sees exactly what it would have
seen in order. An event never changes the decisions already made.

A function returns ``None`` when its feature does not apply to the event (the feature is then absent);
money is returned in integer minor units.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Final

from .._common.money import currency_exponent
from .._common.time import DAY, HOUR
from .._event import EventType, PartyType
from .._stores.history import (
    COUNT,
    DEPOSIT_AMOUNT,
    DORMANT,
    FIRST,
    FIRST_AMOUNT,
    INBOUND_AMOUNT,
    INBOUND_PAYER,
    INBOUND_PERSONAL,
    INCREASING,
    LAST_AMOUNT,
    LOAN_AMOUNT,
    LOAN_LENDER,
    OUT_AMOUNT,
    OUT_BALANCE,
    OUT_NEW_PAYEE,
    OUT_PAYEE,
    OUT_PERSONAL,
    STOP_PAYEE,
    AccountHistory,
)
from .context import Context, is_personal

__all__ = ["FUNCTIONS", "PAYEE_SIDE"]

# The event kinds as this module's own constants: compiled, a module's Final is a C static, where a
# name imported from another module is a dictionary lookup on every use.
_DEVICE_EVENTS: Final = frozenset({EventType.DEVICE_BOUND, EventType.CREDENTIAL_CHANGE})
_DEPOSIT_REDEMPTION: Final = EventType.DEPOSIT_REDEMPTION
_LOAN_DISBURSEMENT: Final = EventType.LOAN_DISBURSEMENT
_CASH_WITHDRAWAL: Final = EventType.CASH_WITHDRAWAL
_TRANSFER_IN: Final = EventType.TRANSFER_IN
_TRANSFER_OUT: Final = EventType.TRANSFER_OUT
_VASP: Final = PartyType.VASP
Function = Callable[[Context], Any]
# every feature's function, by the feature's name (the function's own name)
FUNCTIONS: Final[dict[str, Function]] = {}


def feature(function: Function) -> Function:
    """Register ``function`` as the feature of its name."""
    FUNCTIONS[function.__name__] = function
    return function


# amount_to_p95_90d divides by at least this many major units, so tiny histories cannot explode it
P95_FLOOR_UNITS: Final = 100
MIN_SAMPLE: Final = 3


# -- the payee ------------------------------------------------------------------------------------------
@feature
def is_new_payee(c: Context) -> Any:
    return c.is_new_payee()


@feature
def payee_payment_count(c: Context) -> Any:
    if c.payee_hash is None or not c.outgoing:
        return None
    known = c.known_payee()
    return 0 if known is None else known[COUNT]


@feature
def payee_first_paid_days(c: Context) -> Any:
    known = c.known_payee()
    return None if known is None else (c.time - known[FIRST]) / DAY


@feature
def payee_amounts_increasing(c: Context) -> Any:
    known = c.known_payee()
    if known is None or c.amount is None:
        return None
    return bool(known[INCREASING]) and c.amount > known[LAST_AMOUNT]


@feature
def amount_to_first_payee_amount(c: Context) -> Any:
    known = c.known_payee()
    if known is None or c.amount is None or known[FIRST_AMOUNT] <= 0:
        return None
    return c.amount / known[FIRST_AMOUNT]


@feature
def payee_name_paid_elsewhere(c: Context) -> Any:
    """Whether the customer paid another account under this payee's name (normalised, legal form dropped):
    a supplier's invoice paid to new bank details, as invoice redirection has it."""
    if c.kind is not _TRANSFER_OUT or c.payee_hash is None:
        return None
    name = c.payee_name_hash()
    if name is None:
        return None
    return c.history.name_paid_elsewhere(name, c.payee_hash)


@feature
def payee_account_age_days(c: Context) -> Any:
    payee = c.payee
    if payee is None or payee.account_opened is None:
        return None
    return (c.event.timestamp.date() - payee.account_opened).days


@feature
def payee_inbound_distinct_payers_24h(c: Context) -> Any:
    if c.payee is None or c.kind is not _TRANSFER_OUT:
        return None
    payers = c.payee_history().inbound_rows(c.time - DAY, c.time).distinct(INBOUND_PAYER)
    payers.add(c.payer_hash)
    return len(payers)


# The features that read the payee's history (and only it, with the event): in a partitioned replay they
# are computed where the payee's history lives and supplied to the subject-only decision.
PAYEE_SIDE: Final = frozenset({"payee_inbound_distinct_payers_24h"})


# -- velocity and amounts -------------------------------------------------------------------------------
@feature
def outbound_count_1h(c: Context) -> Any:
    return c.history.out_rows(c.time - HOUR, c.time).count() + (1 if c.outgoing else 0)


@feature
def outbound_count_24h(c: Context) -> Any:
    return c.out_24h().count() + (1 if c.outgoing else 0)


@feature
def out_sum_24h(c: Context) -> Any:
    return c.out_sum_24h()


@feature
def new_payee_count_24h(c: Context) -> Any:
    payees = set(c.out_24h().flagged(OUT_PAYEE, OUT_NEW_PAYEE))
    if c.is_new_payee():
        payees.add(c.payee_hash or 0)
    return len(payees)


@feature
def new_personal_payee_count_24h(c: Context) -> Any:
    """As ``new_payee_count_24h``, counting only payees that are persons (or of unknown type)."""
    return len(c.new_personal_payees_24h())


@feature
def new_stranger_count_24h(c: Context) -> Any:
    return len(c.new_strangers_24h())


@feature
def stranger_share_24h(c: Context) -> Any:
    """The new strangers (``new_stranger_count_24h``) over every person paid in 24 hours, known or new,
    this payee included: a family's festival round pays the known relatives too, a scam's victim pays one
    new account after another."""
    if c.kind is not _TRANSFER_OUT:
        return None
    persons = set(c.out_24h().flagged(OUT_PAYEE, OUT_PERSONAL))
    persons.discard(0)  # cash withdrawals have no payee
    payee = c.payee
    if payee is not None and is_personal(payee.type) and c.payee_hash is not None:
        persons.add(c.payee_hash)
    return len(c.new_strangers_24h()) / len(persons) if persons else None


@feature
def balance_start_24h(c: Context) -> Any:
    return c.balance_start_24h()


@feature
def drain_ratio_24h(c: Context) -> Any:
    """Executed outflows in 24 h (this payment included; stopped attempts are not money that left) over
    what the account had to spend: its balance at the window's start and what it received since."""
    start = c.balance_start_24h()
    if start is None or start <= 0 or not c.outgoing:
        return None
    sent = c.executed_out_24h()
    # the balance ``start`` was read then: later credits add
    since = c.out_24h().first_known_time(OUT_BALANCE)
    received = 0 if since is None else c.history.inbound_rows(since, c.time).total(INBOUND_AMOUNT)
    return sent / (start + received)


def _new_payee_out_over(c: Context, received: int) -> Any:
    """Sent to new payees in 24 hours (this payment included when its payee is new) over ``received``."""
    if received <= 0 or not c.outgoing:
        return None
    sent = sum(c.out_24h().flagged(OUT_AMOUNT, OUT_NEW_PAYEE)) + (c.amount or 0 if c.is_new_payee() else 0)
    return sent / received


@feature
def new_payee_out_to_loans_24h(c: Context) -> Any:
    return _new_payee_out_over(c, c.loans_24h().total(LOAN_AMOUNT))


@feature
def out_to_loans_24h(c: Context) -> Any:
    """Executed outflows in 24 h to any payee (this payment included) over the loans received in 24 h: a
    loan forwarded to the customer's own account at another bank is as gone as one sent to a stranger."""
    received = c.loans_24h().total(LOAN_AMOUNT)
    if received <= 0 or not c.outgoing:
        return None
    return c.executed_out_24h() / received


@feature
def new_payee_out_to_deposits_24h(c: Context) -> Any:
    return _new_payee_out_over(c, c.deposits_24h().total(DEPOSIT_AMOUNT))


@feature
def amount_to_p95_90d(c: Context) -> Any:
    if c.amount is None or not c.outgoing:
        return None
    p95 = c.history.percentile_95(c.time - 90 * DAY, c.time, MIN_SAMPLE)
    if p95 is None:
        return None
    floor = P95_FLOOR_UNITS * 10 ** currency_exponent(c.currency or "")
    return c.amount / max(p95, floor)


@feature
def max_amount_365d(c: Context) -> Any:
    return c.history.max_before(c.time)


@feature
def is_first_large_transfer(c: Context) -> Any:
    if c.amount is None or not c.outgoing:
        return None
    found = c.history.max_before(c.time)
    return found is None or c.amount > found


@feature
def is_first_vasp_payment(c: Context) -> Any:
    payee = c.payee
    if payee is None or not c.outgoing or payee.type is not _VASP:
        return None
    last = c.history.vasp_time
    return last is None or last > c.time or c.time - last > 365 * DAY


@feature
def cash_out_24h(c: Context) -> Any:
    """Cash asked for in 24 hours (attempts, this withdrawal included): a coached victim splits what the
    counter questioned into ATM withdrawals."""
    if c.kind is not _CASH_WITHDRAWAL:
        return None
    return c.out_24h().total_where(OUT_AMOUNT, OUT_PAYEE, 0) + (c.amount or 0)


# -- money coming in ------------------------------------------------------------------------------------
@feature
def unseen_inbound_7d(c: Context) -> Any:
    """Credits in 7 days from people the customer never paid: a scam platform's "profit" or "commission".

    Credits from institutions (a salary from a business, a loan from a lender) do not count."""
    history = c.history
    payers = history.inbound_rows(c.time - 7 * DAY, c.time).flagged(INBOUND_PAYER, INBOUND_PERSONAL)
    return sum(1 for payer in payers if not history.knows(payer))


@feature
def new_sender_inbound_7d(c: Context) -> Any:
    """Credits in 7 days from people the customer never paid who first sent it money within those 7 days: a
    stranger's "profit". A parent's allowance or a tenant's rent comes from a sender known for longer, and
    the customer's own account at another bank is no stranger."""
    history, since = c.history, c.time - 7 * DAY
    payers = history.inbound_rows(since, c.time).flagged(INBOUND_PAYER, INBOUND_PERSONAL)
    return sum(1 for payer in payers if not history.knows(payer) and _first_sent_since(history, payer, since))


def _first_sent_since(history: AccountHistory, payer: int, since: int) -> bool:
    sender = history.first_credited(payer)
    return sender is None or (sender[0] >= since and not sender[1])  # None: forgotten, or before format 6


@feature
def is_return_to_sender(c: Context) -> Any:
    """The payee sent the customer at least this amount in 7 days: a refund, or money sent back (each
    payment is compared with what came in, not net of what was sent back before)."""
    payee, amount = c.payee_hash, c.amount
    if c.kind is not _TRANSFER_OUT or payee is None or amount is None:
        return None
    sent = c.history.inbound_rows(c.time - 7 * DAY, c.time).total_where(INBOUND_AMOUNT, INBOUND_PAYER, payee)
    return sent >= amount


@feature
def rebates_24h(c: Context) -> Any:
    """Credits in 24 hours from persons the customer never paid, each within an hour after a payment to a
    new person and worth that payment to one and a half times it: a brushing task's "commission", sent
    back from another stranger's account (a parent's or a buyer's money follows no such payment)."""
    if not c.outgoing:
        return None
    out, inbound, history = c.out_24h(), c.inbound_24h(), c.history
    persons = (OUT_NEW_PAYEE, OUT_PERSONAL)
    paid = list(zip(out.flagged_all(0, persons), out.flagged_all(OUT_AMOUNT, persons), strict=True))
    if not paid:
        return 0
    credits = zip(
        inbound.flagged(0, INBOUND_PERSONAL),
        inbound.flagged(INBOUND_AMOUNT, INBOUND_PERSONAL),
        inbound.flagged(INBOUND_PAYER, INBOUND_PERSONAL),
        strict=True,
    )
    return sum(
        1
        for time, amount, payer in credits
        if not history.knows(payer)
        and any(0 <= time - when <= HOUR and sent <= amount and 2 * amount <= 3 * sent for when, sent in paid)
    )


def _with_this_event(c: Context, total: int, kind: EventType) -> int:
    """A 24-hour total of money received, with this event's amount when the event is of ``kind``."""
    if c.kind is kind and c.amount:
        total += c.amount
    return total


@feature
def inbound_distinct_payers_24h(c: Context) -> Any:
    payers = c.inbound_24h().distinct(INBOUND_PAYER)
    if c.kind is _TRANSFER_IN:
        payers.add(c.payer_hash)
    return len(payers)


@feature
def passthrough_ratio_24h(c: Context) -> Any:
    inbound = _with_this_event(c, c.inbound_24h().total(INBOUND_AMOUNT), _TRANSFER_IN)
    if inbound <= 0:
        return None
    return c.out_sum_24h() / inbound


@feature
def loan_inflow_24h(c: Context) -> Any:
    return _with_this_event(c, c.loans_24h().total(LOAN_AMOUNT), _LOAN_DISBURSEMENT)


@feature
def distinct_lenders_24h(c: Context) -> Any:
    lenders = c.loans_24h().distinct(LOAN_LENDER)
    if c.kind is _LOAN_DISBURSEMENT:
        lenders.add(c.payer_hash)
    return len(lenders)


@feature
def deposit_redeemed_24h(c: Context) -> Any:
    """Deposits broken early in 24 hours: a redemption at the deposit's term (``at_maturity``) is savings
    reaching their date, not savings liquidated."""
    total = c.deposits_24h().total(DEPOSIT_AMOUNT)
    return total if c.event.at_maturity else _with_this_event(c, total, _DEPOSIT_REDEMPTION)


# -- the account and its sessions -----------------------------------------------------------------------
@feature
def account_age_days(c: Context) -> Any:
    opened: date | None = c.subject_party.account_opened
    if opened is None:
        return None
    return (c.event.timestamp.date() - opened).days


@feature
def recent_stops_60m(c: Context) -> Any:
    return c.history.stop_rows(c.time - HOUR, c.time).count()


@feature
def recent_stops_30d(c: Context) -> Any:
    return c.history.stop_rows(c.time - 30 * DAY, c.time).count()


@feature
def payee_recent_stops_30d(c: Context) -> Any:
    if not c.outgoing or c.payee_hash is None:
        return None
    return c.history.stop_rows(c.time - 30 * DAY, c.time).matching(STOP_PAYEE, c.payee_hash)


@feature
def dormant_days(c: Context) -> Any:
    """Days the account was quiet before it woke in the last 7 days (this event may wake it); 0 if not."""
    history = c.history
    if history.seen and c.time - history.seen >= DORMANT:
        return (c.time - history.seen) // DAY
    if history.woke and 0 <= c.time - history.woke <= 7 * DAY:
        return history.dormant // DAY
    return 0


@feature
def last_stop_other_payee(c: Context) -> Any:
    last = c.history.stop_rows(c.time - HOUR, c.time).last(STOP_PAYEE)
    if last is None or c.payee_hash is None:
        return False
    return last != c.payee_hash


@feature
def hours_since_new_device(c: Context) -> Any:
    candidates = []
    device_time = c.history.device_time
    if device_time is not None and device_time <= c.time:
        candidates.append((c.time - device_time) / HOUR)
    session = c.event.session
    age = None if session is None else session.device_age_hours
    if age is not None:
        candidates.append(age)
    if c.kind in _DEVICE_EVENTS:
        candidates.append(0.0)
    return min(candidates) if candidates else None


@feature
def local_hour(c: Context) -> Any:
    return c.local_hour()


@feature
def is_night(c: Context) -> Any:
    return 0 <= c.local_hour() < 6


@feature
def memo_categories(c: Context) -> Any:
    memo = c.event.memo
    if not memo:
        return ()
    contains = c.normalize(memo).__contains__
    return tuple(name for name, phrases in c.keyword_sets.items() if any(map(contains, phrases)))
