"""Named features: facts about an event that only its history can tell, computed before matching.

Which account a feature describes: for outgoing events (``transfer_out``, ``cash_withdrawal``) and for
``login``, ``device_bound`` and ``credential_change`` it is the payer; for incoming ones (``transfer_in``,
``loan_disbursement``, ``deposit_redemption``) it is the payee, the bank's customer being credited.

Everything uses **event time**, never the wall clock, so a replay and live traffic agree. Late events are
placed where they belong in time: windows count entries with ``t - window < time <= t``, and histories are
pruned an hour later than the windows need, so an event up to an hour late sees exactly what it would have
seen in order. An event never changes the decisions already made.

An outgoing payment decided ``allow`` or ``review`` is *executed*: it makes the payee known and enters the
amount history. One decided ``hold`` or ``interrupt`` is an *attempt*: it counts in the velocity windows and
as a stop, until ``Guard.release`` turns it into an executed payment.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from ._cache import remember
from ._decision import Action, utcoffset
from ._event import Event, EventType, Party, PartyType, zone
from ._fields import FEATURES, Kind
from ._history import (
    COUNT,
    DAY,
    DEPOSIT_WIDTH,
    FIRST,
    FIRST_AMOUNT,
    HOUR,
    INBOUND_WIDTH,
    INCREASING,
    LAST_AMOUNT,
    LOAN_WIDTH,
    OUT_WIDTH,
    STOP_WIDTH,
    AccountHistory,
    party,
    rows_in,
)
from ._money import currency_exponent, to_minor_units
from ._rulefile import RuleSet
from ._store import StoreTransaction
from ._text import normalize_text

__all__ = ["OUTGOING", "FeatureEngine"]

OUTGOING: Final = frozenset({EventType.TRANSFER_OUT, EventType.CASH_WITHDRAWAL})
INCOMING: Final = frozenset(
    {EventType.TRANSFER_IN, EventType.LOAN_DISBURSEMENT, EventType.DEPOSIT_REDEMPTION}
)
# amount_to_p95_90d divides by at least this many major units, so tiny histories cannot explode it
P95_FLOOR_UNITS: Final = 100
MIN_SAMPLE: Final = 3

_DEVICE_EVENTS: Final = frozenset({EventType.DEVICE_BOUND, EventType.CREDENTIAL_CHANGE})
_PERSONAL: Final = frozenset({None, PartyType.PERSONAL, PartyType.UNKNOWN})
# Enum members as module constants: compiled code reads these directly, where ``EventType.TRANSFER_IN``
# would go through the enum class's attribute hook on every event.
_TRANSFER_OUT: Final = EventType.TRANSFER_OUT
_TRANSFER_IN: Final = EventType.TRANSFER_IN
_LOAN_DISBURSEMENT: Final = EventType.LOAN_DISBURSEMENT
_DEPOSIT_REDEMPTION: Final = EventType.DEPOSIT_REDEMPTION
_VASP: Final = PartyType.VASP
_HOLD: Final = Action.HOLD


# The UTC offset of a time zone during one hour of event time, keyed by (zone, hours since the epoch):
# converting each event's time to local time costs more than all the other features of the event.
_OFFSETS: Final[dict[tuple[str, int], int]] = {}
_MAX_OFFSETS: Final = 4096


def _offset_at(time: int, tz: tzinfo) -> int:
    offset = datetime.fromtimestamp(time, tz).utcoffset()
    assert offset is not None
    return offset.days * DAY + offset.seconds


_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds from 1970-01-01 UTC to the aware ``moment`` (rounded down), in integer arithmetic:
    ``datetime.timestamp`` subtracts two datetimes and divides a float, 6,000 instructions a call."""
    offset = utcoffset(moment)  # remembered: the audit record writes the same datetime
    if offset is None:  # pragma: no cover - events carry aware timestamps
        return int(moment.timestamp())
    days = moment.toordinal() - _EPOCH_DAY
    seconds = days * DAY + moment.hour * HOUR + moment.minute * 60 + moment.second
    seconds -= offset.days * DAY + offset.seconds
    return seconds - 1 if moment.microsecond < offset.microseconds else seconds


def local_hour(time: int, zone_name: str) -> int:
    """The hour (0-23) on the clock of the IANA zone ``zone_name`` at ``time`` (epoch seconds).

    An hour whose offset is the same at its first and last second is taken to keep that offset
    throughout (time-zone rules never change twice within an hour); the offset is then remembered for the
    hour. An hour in which the zone's rules change is converted event by event.
    """
    hour = time // HOUR
    key = (zone_name, hour)
    offset = _OFFSETS.get(key)
    if offset is None:
        tz = zone(zone_name)
        offset = _offset_at(hour * HOUR, tz)
        if offset != _offset_at(hour * HOUR + HOUR - 1, tz):
            return (time + _offset_at(time, tz)) // HOUR % 24
        remember(_OFFSETS, key, offset, _MAX_OFFSETS)
    return (time + offset) // HOUR % 24


def _personal(kind: PartyType | None) -> bool:
    return kind in _PERSONAL


# The rows of a history list in a time window: (entries, width, first row, end row).
Span = tuple["array[int]", int, int, int]


def _span(entries: array[int], width: int, start: int, end: int) -> Span:
    low, high = rows_in(entries, width, start, end)
    return entries, width, low, high


def _total(span: Span, column: int) -> int:
    entries, width, low, high = span
    return sum(entries[row * width + column] for row in range(low, high))


def _distinct(span: Span, column: int) -> set[int]:
    entries, width, low, high = span
    return {entries[row * width + column] for row in range(low, high)}


class _Context:
    """One event's view of the store, with the intermediate results several features share.

    Each shared piece (the account's history, the known payee, a window) is computed on first use and
    kept for the other features of the same event.
    """

    __slots__ = (
        "_balance",
        "_balance_known",
        "_days",
        "_history",
        "_hour",
        "_known",
        "_known_done",
        "_known_row",
        "_new",
        "_new_done",
        "_payee_history",
        "_payee_key",
        "_payer_balance",
        "_payer_balance_done",
        "amount",
        "currency",
        "engine",
        "event",
        "kind",
        "minor",
        "outgoing",
        "payee",
        "payee_hash",
        "payer",
        "payer_hash",
        "subject_key",
        "subject_party",
        "time",
        "txn",
    )

    def __init__(self, event: Event, txn: StoreTransaction, engine: FeatureEngine) -> None:
        self.event = event
        self.txn = txn
        self.engine = engine
        self.time = epoch_seconds(event.timestamp)
        self.currency = currency = event.currency
        amount = event.amount
        self.amount = to_minor_units(amount, currency) if amount and currency else None
        # the event's fields that features read most, read once (each read of a pydantic model's attribute
        # goes through the model's ``__getattr__`` hook)
        self.kind = kind = event.type
        self.outgoing = kind in OUTGOING
        self.payee = payee = event.payee
        self.payer = payer = event.payer
        # normalised account numbers (the store's keys) and hashes (the histories' counterparties)
        payer_key, self.payer_hash = party(payer.account)
        payee_key, payee_hash = party(payee.account) if payee else (None, None)
        self.payee_hash = payee_hash
        if kind in INCOMING and payee is not None and payee_key is not None:
            subject, subject_key = payee, payee_key
        else:
            subject, subject_key = payer, payer_key
        self.subject_party: Party = subject
        self.subject_key: str = subject_key
        self._history: AccountHistory | None = None
        self._days: list[Span | None] = [None, None, None, None]  # out, inbound, loans, deposits
        self._known: tuple[int, ...] | None = None
        self._known_done = False
        self._known_row: int | None = None  # the payee's row in the history, once looked up
        self._new: bool | None = None
        self._new_done = False
        self._payee_key = payee_key
        self._payee_history: AccountHistory | None = None
        self._hour = -1  # not computed yet
        self._balance: int | None = None
        self._balance_known = False
        self._payer_balance: int | None = None
        self._payer_balance_done = False
        # the amount and money features in integer minor units, as computed (``compute`` shows features as
        # Decimal); the fact reads them from here
        self.minor: dict[str, int] = {} if self.amount is None else {"amount": self.amount}

    @property
    def history(self) -> AccountHistory:
        if self._history is None:
            self._history = self.txn.account(self.subject_key)
        return self._history

    def _last_day(self, slot: int, entries: array[int], width: int) -> Span:
        """The rows of ``entries`` in the 24 hours up to the event, found once per event."""
        span = self._days[slot]
        if span is None:
            span = self._days[slot] = _span(entries, width, self.time - DAY, self.time)
        return span

    def out_24h(self) -> Span:
        return self._last_day(0, self.history.out, OUT_WIDTH)

    def inbound_24h(self) -> Span:
        return self._last_day(1, self.history.inbound, INBOUND_WIDTH)

    def loans_24h(self) -> Span:
        return self._last_day(2, self.history.loans, LOAN_WIDTH)

    def deposits_24h(self) -> Span:
        return self._last_day(3, self.history.deposits, DEPOSIT_WIDTH)

    def payee_key(self) -> str:
        """The payee's normalised account number (an outgoing payment's payee is required)."""
        assert self._payee_key is not None
        return self._payee_key

    def payee_history(self) -> AccountHistory:
        """The payee account's history, read once per event (features and the credit both use it)."""
        if self._payee_history is None:
            self._payee_history = self.txn.account(self.payee_key())
        return self._payee_history

    def local_hour(self) -> int:
        if self._hour < 0:
            name = self.payer.timezone or self.engine.timezone
            self._hour = local_hour(self.time, name)
        return self._hour

    def known_payee(self) -> tuple[int, ...] | None:
        """What is known of executed payments to this outgoing payment's payee before now, if anything."""
        if not self._known_done:
            found = None
            if self.outgoing and self.payee_hash is not None:
                self._known_row = row = self.history.payee_row(self.payee_hash)
                found = self.history.payee_at(row)
                if found is not None and found[FIRST] > self.time:
                    found = None
            self._known, self._known_done = found, True
        return self._known

    def is_new_payee(self) -> bool | None:
        if not self._new_done:
            if self.kind is _TRANSFER_OUT and self.payee_hash is not None:
                self._new = self.known_payee() is None
            self._new_done = True
        return self._new

    def balance_before(self) -> int | None:
        """The payer's ``balance_before`` in minor units, if the event carries it (read and commit use it)."""
        if not self._payer_balance_done:
            balance = self.payer.balance_before
            if balance is not None and self.currency:
                self._payer_balance = to_minor_units(balance, self.currency)
            self._payer_balance_done = True
        return self._payer_balance

    def out_sum_minor(self) -> int:
        return _total(self.out_24h(), 1) + (self.amount or 0 if self.outgoing else 0)


def _is_new_payee(c: _Context) -> Any:
    return c.is_new_payee()


def _payee_payment_count(c: _Context) -> Any:
    if c.payee_hash is None or not c.outgoing:
        return None
    known = c.known_payee()
    return 0 if known is None else known[COUNT]


def _payee_first_paid_days(c: _Context) -> Any:
    known = c.known_payee()
    return None if known is None else (c.time - known[FIRST]) / DAY


def _payee_amounts_increasing(c: _Context) -> Any:
    known = c.known_payee()
    if known is None or c.amount is None:
        return None
    return bool(known[INCREASING]) and c.amount > known[LAST_AMOUNT]


def _amount_to_first_payee_amount(c: _Context) -> Any:
    known = c.known_payee()
    if known is None or c.amount is None or known[FIRST_AMOUNT] <= 0:
        return None
    return c.amount / known[FIRST_AMOUNT]


def _outbound_count(c: _Context, seconds: int) -> Any:
    low, high = rows_in(c.history.out, OUT_WIDTH, c.time - seconds, c.time)
    return high - low + (1 if c.outgoing else 0)


def _outbound_count_1h(c: _Context) -> Any:
    return _outbound_count(c, HOUR)


def _outbound_count_24h(c: _Context) -> Any:
    return _outbound_count(c, DAY)


def _out_sum_24h(c: _Context) -> Any:
    return c.out_sum_minor()


def _new_payee_count_24h(c: _Context) -> Any:
    out, width, low, high = c.out_24h()
    payees = {out[row * width + 2] for row in range(low, high) if out[row * width + 3]}
    if c.is_new_payee():
        payees.add(c.payee_hash or 0)
    return len(payees)


def _balance_start_minor(c: _Context) -> int | None:
    """The balance before the first outgoing attempt of the 24-hour window (this one if it is the first)."""
    if not c._balance_known:
        c._balance = _find_balance_start(c)
        c._balance_known = True
    return c._balance


def _find_balance_start(c: _Context) -> int | None:
    out, width, low, high = c.out_24h()
    for row in range(low, high):
        if out[row * width + 4] >= 0:
            return out[row * width + 4]
    return c.balance_before()


def _balance_start_24h(c: _Context) -> Any:
    return _balance_start_minor(c)


def _drain_ratio_24h(c: _Context) -> Any:
    start = _balance_start_minor(c)
    if start is None or start <= 0:
        return None
    return c.out_sum_minor() / start


def _new_payee_out_minor(c: _Context) -> int:
    """Outgoing to new payees in 24 hours, this payment included when its payee is new."""
    out, width, low, high = c.out_24h()
    new = sum(out[row * width + 1] for row in range(low, high) if out[row * width + 3])
    return new + (c.amount or 0 if c.is_new_payee() else 0)


def _new_payee_out_over(c: _Context, received_span: Span) -> Any:
    received = _total(received_span, 1)
    if received <= 0 or not c.outgoing:
        return None
    return _new_payee_out_minor(c) / received


def _new_payee_out_to_loans_24h(c: _Context) -> Any:
    return _new_payee_out_over(c, c.loans_24h())


def _new_payee_out_to_deposits_24h(c: _Context) -> Any:
    return _new_payee_out_over(c, c.deposits_24h())


def _amount_to_p95_90d(c: _Context) -> Any:
    if c.amount is None or not c.outgoing:
        return None
    p95 = c.history.percentile_95(c.time - 90 * DAY, c.time, MIN_SAMPLE)
    if p95 is None:
        return None
    floor = P95_FLOOR_UNITS * 10 ** currency_exponent(c.currency or "")
    return c.amount / max(p95, floor)


def _max_amount_365d(c: _Context) -> Any:
    return c.history.max_before(c.time)


def _is_first_large_transfer(c: _Context) -> Any:
    if c.amount is None or not c.outgoing:
        return None
    found = c.history.max_before(c.time)
    return found is None or c.amount > found


def _unseen_inbound_7d(c: _Context) -> Any:
    """Credits in 7 days from people the customer never paid: a scam platform's "profit" or "commission".

    Credits from institutions (a salary from a business, a loan from a lender) do not count."""
    history = c.history
    inbound, width, low, high = _span(history.inbound, INBOUND_WIDTH, c.time - 7 * DAY, c.time)
    return sum(
        1
        for row in range(low, high)
        if inbound[row * width + 3] and not history.knows(inbound[row * width + 2])
    )


def _is_first_vasp_payment(c: _Context) -> Any:
    payee = c.payee
    if payee is None or not c.outgoing or payee.type is not _VASP:
        return None
    last = c.history.vasp_time
    return last is None or last > c.time or c.time - last > 365 * DAY


def _inbound_distinct_payers_24h(c: _Context) -> Any:
    payers = _distinct(c.inbound_24h(), 2)
    if c.kind is _TRANSFER_IN:
        payers.add(c.payer_hash)
    return len(payers)


def _passthrough_ratio_24h(c: _Context) -> Any:
    inbound = _total(c.inbound_24h(), 1)
    if c.kind is _TRANSFER_IN and c.amount:
        inbound += c.amount
    if inbound <= 0:
        return None
    return c.out_sum_minor() / inbound


def _account_age_days(c: _Context) -> Any:
    opened: date | None = c.subject_party.account_opened
    if opened is None:
        return None
    return (c.event.timestamp.date() - opened).days


def _payee_account_age_days(c: _Context) -> Any:
    payee = c.payee
    if payee is None or payee.account_opened is None:
        return None
    return (c.event.timestamp.date() - payee.account_opened).days


def _payee_inbound_distinct_payers_24h(c: _Context) -> Any:
    payee = c.payee
    if payee is None or c.kind is not _TRANSFER_OUT:
        return None
    payers = _distinct(_span(c.payee_history().inbound, INBOUND_WIDTH, c.time - DAY, c.time), 2)
    payers.add(c.payer_hash)
    return len(payers)


def _loan_inflow_24h(c: _Context) -> Any:
    total = _total(c.loans_24h(), 1)
    if c.kind is _LOAN_DISBURSEMENT and c.amount:
        total += c.amount
    return total


def _distinct_lenders_24h(c: _Context) -> Any:
    lenders = _distinct(c.loans_24h(), 2)
    if c.kind is _LOAN_DISBURSEMENT:
        lenders.add(c.payer_hash)
    return len(lenders)


def _deposit_redeemed_24h(c: _Context) -> Any:
    total = _total(c.deposits_24h(), 1)
    if c.kind is _DEPOSIT_REDEMPTION and c.amount:
        total += c.amount
    return total


def _recent_stops(c: _Context, seconds: int) -> Any:
    low, high = rows_in(c.history.stops, STOP_WIDTH, c.time - seconds, c.time)
    return high - low


def _recent_stops_60m(c: _Context) -> Any:
    return _recent_stops(c, HOUR)


def _recent_stops_30d(c: _Context) -> Any:
    return _recent_stops(c, 30 * DAY)


def _last_stop_other_payee(c: _Context) -> Any:
    stops = c.history.stops
    low, high = rows_in(stops, STOP_WIDTH, c.time - HOUR, c.time)
    if low == high or c.payee_hash is None:
        return False
    return stops[(high - 1) * STOP_WIDTH + 1] != c.payee_hash


def _hours_since_new_device(c: _Context) -> Any:
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


def _local_hour(c: _Context) -> Any:
    return c.local_hour()


def _is_night(c: _Context) -> Any:
    return 0 <= c.local_hour() < 6


def _memo_categories(c: _Context) -> Any:
    memo = c.event.memo
    if not memo:
        return ()
    text = normalize_text(memo)
    contains = text.__contains__
    return tuple(name for name, phrases in c.engine.keyword_sets.items() if any(map(contains, phrases)))


_FEATURES: Final[Mapping[str, Callable[[_Context], Any]]] = {
    "is_new_payee": _is_new_payee,
    "payee_payment_count": _payee_payment_count,
    "payee_first_paid_days": _payee_first_paid_days,
    "outbound_count_1h": _outbound_count_1h,
    "outbound_count_24h": _outbound_count_24h,
    "out_sum_24h": _out_sum_24h,
    "new_payee_count_24h": _new_payee_count_24h,
    "drain_ratio_24h": _drain_ratio_24h,
    "balance_start_24h": _balance_start_24h,
    "payee_amounts_increasing": _payee_amounts_increasing,
    "amount_to_first_payee_amount": _amount_to_first_payee_amount,
    "new_payee_out_to_loans_24h": _new_payee_out_to_loans_24h,
    "new_payee_out_to_deposits_24h": _new_payee_out_to_deposits_24h,
    "unseen_inbound_7d": _unseen_inbound_7d,
    "is_first_vasp_payment": _is_first_vasp_payment,
    "amount_to_p95_90d": _amount_to_p95_90d,
    "max_amount_365d": _max_amount_365d,
    "is_first_large_transfer": _is_first_large_transfer,
    "inbound_distinct_payers_24h": _inbound_distinct_payers_24h,
    "passthrough_ratio_24h": _passthrough_ratio_24h,
    "account_age_days": _account_age_days,
    "payee_inbound_distinct_payers_24h": _payee_inbound_distinct_payers_24h,
    "payee_account_age_days": _payee_account_age_days,
    "loan_inflow_24h": _loan_inflow_24h,
    "distinct_lenders_24h": _distinct_lenders_24h,
    "deposit_redeemed_24h": _deposit_redeemed_24h,
    "recent_stops_60m": _recent_stops_60m,
    "recent_stops_30d": _recent_stops_30d,
    "last_stop_other_payee": _last_stop_other_payee,
    "hours_since_new_device": _hours_since_new_device,
    "local_hour": _local_hour,
    "is_night": _is_night,
    "memo_categories": _memo_categories,
}


# The features in catalogue order; ``_value`` calls the one at an index directly (compiled: a direct C
# call, where calling through the mapping goes through each function's argument-parsing wrapper).
_NAMES: Final = tuple(_FEATURES)


def _value(index: int, c: _Context) -> Any:
    """The value of the feature ``_NAMES[index]`` for ``c``."""
    if index == 0:  # is_new_payee
        return _is_new_payee(c)
    if index == 1:  # payee_payment_count
        return _payee_payment_count(c)
    if index == 2:  # payee_first_paid_days
        return _payee_first_paid_days(c)
    if index == 3:  # outbound_count_1h
        return _outbound_count_1h(c)
    if index == 4:  # outbound_count_24h
        return _outbound_count_24h(c)
    if index == 5:  # out_sum_24h
        return _out_sum_24h(c)
    if index == 6:  # new_payee_count_24h
        return _new_payee_count_24h(c)
    if index == 7:  # drain_ratio_24h
        return _drain_ratio_24h(c)
    if index == 8:  # balance_start_24h
        return _balance_start_24h(c)
    if index == 9:  # payee_amounts_increasing
        return _payee_amounts_increasing(c)
    if index == 10:  # amount_to_first_payee_amount
        return _amount_to_first_payee_amount(c)
    if index == 11:  # new_payee_out_to_loans_24h
        return _new_payee_out_to_loans_24h(c)
    if index == 12:  # new_payee_out_to_deposits_24h
        return _new_payee_out_to_deposits_24h(c)
    if index == 13:  # unseen_inbound_7d
        return _unseen_inbound_7d(c)
    if index == 14:  # is_first_vasp_payment
        return _is_first_vasp_payment(c)
    if index == 15:  # amount_to_p95_90d
        return _amount_to_p95_90d(c)
    if index == 16:  # max_amount_365d
        return _max_amount_365d(c)
    if index == 17:  # is_first_large_transfer
        return _is_first_large_transfer(c)
    if index == 18:  # inbound_distinct_payers_24h
        return _inbound_distinct_payers_24h(c)
    if index == 19:  # passthrough_ratio_24h
        return _passthrough_ratio_24h(c)
    if index == 20:  # account_age_days
        return _account_age_days(c)
    if index == 21:  # payee_inbound_distinct_payers_24h
        return _payee_inbound_distinct_payers_24h(c)
    if index == 22:  # payee_account_age_days
        return _payee_account_age_days(c)
    if index == 23:  # loan_inflow_24h
        return _loan_inflow_24h(c)
    if index == 24:  # distinct_lenders_24h
        return _distinct_lenders_24h(c)
    if index == 25:  # deposit_redeemed_24h
        return _deposit_redeemed_24h(c)
    if index == 26:  # recent_stops_60m
        return _recent_stops_60m(c)
    if index == 27:  # recent_stops_30d
        return _recent_stops_30d(c)
    if index == 28:  # last_stop_other_payee
        return _last_stop_other_payee(c)
    if index == 29:  # hours_since_new_device
        return _hours_since_new_device(c)
    if index == 30:  # local_hour
        return _local_hour(c)
    if index == 31:  # is_night
        return _is_night(c)
    if index == 32:  # memo_categories
        return _memo_categories(c)
    raise AssertionError(index)  # pragma: no cover - indices come from _NAMES


# One minor unit as a Decimal, by the currency's number of decimals (0, 2, 3 or 4 in ISO 4217)
_MINOR_UNIT: Final = tuple(Decimal(1).scaleb(-exponent) for exponent in range(5))
_MONEY: Final = frozenset(name for name, spec in FEATURES.items() if spec.kind is Kind.MONEY)


# The features a rule set reads, in name order: (name, index in _NAMES, whether it is money)
_Functions = tuple[tuple[str, int, bool], ...]


class FeatureEngine:
    """Computes the features a rule set reads, and writes each decided event into the histories."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.timezone = ruleset.timezone
        self.keyword_sets = ruleset.keyword_sets
        self._plans: dict[frozenset[str], _Functions] = {}

    @staticmethod
    def names() -> frozenset[str]:
        return frozenset(_FEATURES)

    def context(self, event: Event, txn: StoreTransaction) -> _Context:
        """One event's view of the store, shared by ``compute`` and ``commit``."""
        return _Context(event, txn, self)

    def compute(self, context: _Context, names: frozenset[str]) -> dict[str, Any]:
        """The values of ``names`` for the context's event; a feature that does not apply is left out.

        Money features are computed in integer minor units, kept on ``context.minor`` for the fact, and
        returned as decimal text in the event's currency (``"500.00"``), as decisions show them.
        """
        functions = self._plans.get(names)
        if functions is None:  # one plan per set of names: sorted once, not per event
            functions = self._plans[names] = tuple(
                (name, _NAMES.index(name), name in _MONEY) for name in sorted(names)
            )
        values = {}
        minor = context.minor
        unit = _MINOR_UNIT[currency_exponent(context.currency or "")]
        for name, index, money in functions:
            value = _value(index, context)
            if value is not None:
                if money:
                    minor[name] = value
                    # as text, the form decisions show: unit * minor units is the Decimal of
                    # Decimal(value).scaleb(-exponent), same digits and exponent, through the number
                    # protocol instead of two calls that parse their arguments
                    value = str(unit * value)
                values[name] = value
        return values

    def commit(self, context: _Context, action: Action, decision_id: str | None) -> None:
        """Write a decided event into the histories it touches (``record`` passes ``allow``)."""
        event, txn = context.event, context.txn
        history = context.history
        history.touch(context.time)
        time, amount, kind = context.time, context.amount, context.kind
        if kind in _DEVICE_EVENTS:
            history.add_device(time)
        elif kind in OUTGOING and amount is not None:
            payee = context.payee_hash
            history.add_attempt(
                time, amount, payee or 0, bool(context.is_new_payee()), context.balance_before()
            )
            if action.stops:
                history.add_stop(time, payee or 0)
                if action is _HOLD and decision_id is not None:
                    txn.put_held(decision_id, {"event": event.to_dict()})
            else:
                self._execute(context, history)
        elif kind is _TRANSFER_IN and amount is not None:
            history.add_inbound(time, amount, context.payer_hash, _personal(context.payer.type))
        elif kind is _LOAN_DISBURSEMENT and amount is not None:
            history.add_loan(time, amount, context.payer_hash)
        elif kind is _DEPOSIT_REDEMPTION and amount is not None:
            history.add_deposit(time, amount)
        txn.save(context.subject_key, history)

    def _execute(self, context: _Context, history: AccountHistory) -> None:
        """An outgoing payment went through: the payee becomes known and the payee account is credited."""
        amount = context.amount
        assert amount is not None
        history.add_executed(context.time, amount, context.payee_hash, context._known_row)
        payee = context.payee
        if payee is not None and payee.type is _VASP:
            history.vasp_time = max(history.vasp_time or 0, context.time)
        if context.kind is _TRANSFER_OUT and payee is not None:
            key = context.payee_key()
            if key != context.subject_key:
                payee_history = context.payee_history()
                payee_history.touch(context.time)
                payee_history.add_inbound(
                    context.time, amount, context.payer_hash, _personal(context.payer.type)
                )
                context.txn.save(key, payee_history)

    def release(self, event: Event, txn: StoreTransaction) -> None:
        """A held payment was released by the bank: from now on it counts as executed."""
        context = _Context(event, txn, self)
        self._execute(context, context.history)
        txn.save(context.subject_key, context.history)
