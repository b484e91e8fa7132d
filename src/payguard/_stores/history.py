"""What payguard remembers about one account: just enough for the features, and bounded.

Times are event times in epoch seconds; amounts are integer minor units; counterparties are stable 63-bit
hashes of their normalised account numbers (so a history survives a restart and fits in little memory).

Every list of entries is one flat ``array('q')`` of int64s, ``width`` columns an entry, time first, kept in
time order, so that a history of a few payments takes a few hundred bytes. An account's lists start as the
shared, empty ``EMPTY`` array and get an array of their own with their first entry (``rows.py``).

Bounds, per account: windows keep 24 hours (money received: 7 days, at most ``MAX_INBOUND`` credits), plus
an hour of grace for late events, measured from a clock no single event can move (``touch``); stops 30 days
(at most 50); the amount sample the last 100 executed payments of 90 days; the running maximum only the
payments that can still be a 365-day maximum; known payees at most ``MAX_PAYEES`` (the least recently
paid go first, then count as new), and as many (name, payee) pairs and persons who sent money.

Beyond ``HORIZON`` (365 days and the hour of grace: the 365-day maximum is the longest window; stops reach
back 30 days) nothing a feature reads can see an entry, except the known payees, their names, the senders and
the last device binding, which are kept for as long as the account is active. An account with no event for
``HORIZON`` and no snooze still running can therefore be forgotten whole (``MemoryStore`` does): its payees
with it.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .._common.cache import remember
from .._common.text import account_key
from .._common.time import DAY, HOUR
from .._errors import StoreError
from .rows import (
    EMPTY,
    Rows,
    append,
    checked,
    empty,
    first_after,
    flat,
    insert,
    owned,
    prune,
    row_of,
    rows_in,
    rows_of,
)

__all__ = [
    "DAY",
    "EMPTY",
    "GRACE",
    "HORIZON",
    "HOUR",
    "MAX_INBOUND",
    "MAX_PAYEES",
    "MAX_SNOOZES",
    "AccountHistory",
    "Rows",
    "Snooze",
    "party",
    "rows_in",
]

PayeeStats = tuple[int, int, int, int, int, int]
# the columns of PayeeStats
FIRST: Final = 0
COUNT: Final = 1
LAST: Final = 2
FIRST_AMOUNT: Final = 3
LAST_AMOUNT: Final = 4
INCREASING: Final = 5

# The persisted form's version (``to_json``): bump it when the stored columns change, and keep reading
# the versions before (1 is the unversioned form of payguard 0.1; 4 adds ``clock``; 5 ``names``; 6
# ``senders``).
FORMAT: Final = 6
_READABLE: Final = (1, 2, 3, 4, 5, 6)

# Every list's rows start with the event time (column 0); its other columns are named below.
# outgoing attempts: time, amount, payee hash, 1 if the payee was new, balance before (-1 if unknown),
# 1 if the payee is a person (or of unknown type), 1 while the payment is stopped (not executed)
OUT_WIDTH: Final = 7
OUT_AMOUNT: Final = 1
OUT_PAYEE: Final = 2
OUT_NEW_PAYEE: Final = 3
OUT_BALANCE: Final = 4
OUT_PERSONAL: Final = 5
OUT_STOPPED: Final = 6
# formats 1 and 2 kept the first five columns: read back as a person's payee (1), executed (0)
_OUT_WIDTH_BEFORE_3: Final = 5
# a gap this long between two events of an account makes it dormant (``touch``)
DORMANT: Final = 30 * DAY
# money received: time, amount, payer hash, 1 if the payer is a person or unknown (0: an institution)
INBOUND_WIDTH: Final = 4
INBOUND_AMOUNT: Final = 1
INBOUND_PAYER: Final = 2
INBOUND_PERSONAL: Final = 3
# loan disbursements received: time, amount, lender hash
LOAN_WIDTH: Final = 3
LOAN_AMOUNT: Final = 1
LOAN_LENDER: Final = 2
# deposits broken early: time, amount
DEPOSIT_WIDTH: Final = 2
DEPOSIT_AMOUNT: Final = 1
# hold or interrupt decisions: time, payee hash
STOP_WIDTH: Final = 2
STOP_PAYEE: Final = 1
# the names payees were paid under: name hash, payee hash (least recently paid first, at most MAX_PAYEES)
NAME_WIDTH: Final = 2
# persons who sent money: payer hash, time of the first credit, 1 if it is the customer's own account
# (least recently credited first, at most MAX_PAYEES)
SENDER_WIDTH: Final = 3
# executed outgoing amounts (the sample, and the running maximum): time, amount
SAMPLE_WIDTH: Final = 2
# known payees, least recently paid first: payee hash, first paid | increasing << 38 | count << 39, last
# paid, first amount, last amount
PAYEE_WIDTH: Final = 5
# in JSON a payee's statistics are unpacked: payee hash and the six PayeeStats
_PAYEE_JSON_WIDTH: Final = 7

# A snooze: rule id, payee hash (0: every payee), until (exclusive, event time), the reason given
Snooze = tuple[str, int, int, str]
MAX_SNOOZES: Final = 100

# Times fit 38 bits (event times are bounded to years 1970-9999); counts are capped at 2**20 - 1.
_TIME_BITS: Final = 38
_COUNT_MASK: Final = (1 << 20) - 1
_TIME_MASK: Final = (1 << _TIME_BITS) - 1

GRACE: Final = HOUR
HORIZON: Final = 365 * DAY + GRACE
MAX_PAYEES: Final = 1000
MAX_SAMPLE: Final = 100
MAX_STOPS: Final = 50
# credits kept per account (7 days): a merchant receives thousands a day; the features over them saturate
# (distinct payers at most MAX_INBOUND + 1, sums over the latest MAX_INBOUND credits)
MAX_INBOUND: Final = 2000
PRUNE_EVERY: Final = HOUR


def pack_payee(stats: PayeeStats) -> tuple[int, int, int, int]:
    """The stored words of a payee's statistics (after its hash)."""
    first, count, last, first_amount, last_amount, increasing = stats
    head = first | (1 << _TIME_BITS if increasing else 0) | (min(count, _COUNT_MASK) << (_TIME_BITS + 1))
    return head, last, first_amount, last_amount


def unpack_payee(words: Sequence[int]) -> PayeeStats:
    head, last, first_amount, last_amount = words[0], words[1], words[2], words[3]
    first = head & _TIME_MASK
    increasing = (head >> _TIME_BITS) & 1
    count = head >> (_TIME_BITS + 1)
    return first, count, last, first_amount, last_amount, increasing


_PARTIES: Final[dict[str, tuple[str, int]]] = {}  # bounded by ``remember``


def party(account: str) -> tuple[str, int]:
    """An account number as stores key it (normalised), and its stable 63-bit hash: one cache lookup."""
    found = _PARTIES.get(account)
    if found is None:
        key = account_key(account)  # not through normalize_account's cache: this one remembers the key
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        found = remember(_PARTIES, account, (key, int.from_bytes(digest, "big") >> 1))
    return found


def _sample_position(entries: array[int], time: int, amount: int) -> int:
    """Where (time, amount) goes among rows ordered by time, then amount (after equal rows)."""
    low, high = 0, len(entries) // SAMPLE_WIDTH
    while low < high:
        middle = (low + high) // 2
        at = middle * SAMPLE_WIDTH
        if (entries[at], entries[at + 1]) <= (time, amount):
            low = middle + 1
        else:
            high = middle
    return low


def _rank(count: int) -> int:
    """The index of the 95th percentile among ``count`` values in ascending order (nearest rank)."""
    return min(count - 1, math.ceil(0.95 * count) - 1)


def _integer(value: Any, name: str, optional: bool = False) -> Any:
    """``value`` read back from JSON; ``ValueError`` unless it is an integer (or, if ``optional``, None)."""
    if type(value) is int or (optional and value is None):
        return value
    raise ValueError(f"{name} is a {type(value).__name__}, not an integer")


@dataclass(slots=True)
class AccountHistory:
    """The bounded history of one account: flat int64 arrays, compact and JSON-ready."""

    out: array[int] = field(default_factory=empty)
    payees: array[int] = field(default_factory=empty)
    # the last MAX_SAMPLE executed amounts within 90 days, ordered by time then amount
    sample: array[int] = field(default_factory=empty)
    # the running 365-day maximum: times increase, amounts strictly decrease
    maxima: array[int] = field(default_factory=empty)
    inbound: array[int] = field(default_factory=empty)
    loans: array[int] = field(default_factory=empty)
    deposits: array[int] = field(default_factory=empty)
    stops: array[int] = field(default_factory=empty)
    names: array[int] = field(default_factory=empty)
    senders: array[int] = field(default_factory=empty)
    # last device binding or credential change, and last executed payment to a VASP (crypto platform)
    device_time: int | None = None
    vasp_time: int | None = None
    # the latest event time seen; the clock pruning is measured from (the second latest); when it last ran
    seen: int = 0
    clock: int = 0
    pruned: int = 0
    # when the account last woke after being dormant, and how long it had been quiet (0: never dormant)
    woke: int = 0
    dormant: int = 0
    # the rules snoozed for this account as payer (``Guard.snooze``), oldest first
    snoozes: tuple[Snooze, ...] = ()
    # the amounts of ``sample`` in ascending order (not stored: rebuilt from ``sample``), so that the 95th
    # percentile of the whole sample is one index away
    ranked: array[int] = field(default_factory=empty)

    def __post_init__(self) -> None:
        if self.sample and not self.ranked:
            self.ranked = array("q", sorted(self.sample[1::SAMPLE_WIDTH]))

    # -- writes ------------------------------------------------------------------------------------
    def touch(self, time: int) -> None:
        """Advance the clock, the second latest event time (one event far ahead of the others moves it not:
        no single event can drop what their windows read), and at most every ``PRUNE_EVERY`` seconds of it
        drop what no window reaches any more (windows filter by time anyway: this only bounds memory)."""
        if self.seen and time - self.seen >= DORMANT:
            self.woke, self.dormant = time, time - self.seen
        if time > self.seen:
            time, self.seen = self.seen, time  # the latest until now becomes the clock
        if time <= self.clock:
            return
        self.clock = time
        if time - self.pruned < PRUNE_EVERY:
            return
        self.pruned = time
        prune(self.out, OUT_WIDTH, time - DAY - GRACE)
        prune(self.loans, LOAN_WIDTH, time - DAY - GRACE)
        prune(self.deposits, DEPOSIT_WIDTH, time - DAY - GRACE)
        prune(self.inbound, INBOUND_WIDTH, time - 7 * DAY - GRACE)
        prune(self.stops, STOP_WIDTH, time - 30 * DAY - GRACE)
        sample, oldest = self.sample, time - 90 * DAY - GRACE
        if sample and sample[0] < oldest:
            cut = first_after(sample, SAMPLE_WIDTH, oldest - 1) * SAMPLE_WIDTH
            for at in range(1, cut, SAMPLE_WIDTH):
                self.ranked.remove(sample[at])
            del sample[:cut]
        prune(self.maxima, SAMPLE_WIDTH, time - 365 * DAY - GRACE)
        if self.snoozes:
            self.snoozes = tuple(snooze for snooze in self.snoozes if snooze[2] >= time - GRACE)

    def add_attempt(  # noqa: PLR0917 (the row's columns, in order)
        self,
        time: int,
        amount: int,
        payee: int,
        new: bool,
        balance: int | None,
        personal: bool,
        stopped: bool,
    ) -> None:
        row = (time, amount, payee, int(new), -1 if balance is None else balance, int(personal), int(stopped))
        self.out = insert(self.out, OUT_WIDTH, row)

    def add_executed(self, time: int, amount: int, payee: int | None, row: int | None = None) -> None:
        """An executed payment; ``row`` is ``payee``'s row among the known payees if the caller just
        looked it up (``payee_row``), which saves searching again."""
        if payee is not None:
            self._add_payee(time, amount, payee, self.payee_row(payee) if row is None else row)
        sample = self.sample
        end = len(sample)
        if not end or (sample[end - 2], sample[end - 1]) <= (time, amount):  # the usual case: in time order
            sample = self.sample = append(sample, (time, amount))
        else:
            at = _sample_position(sample, time, amount) * SAMPLE_WIDTH
            sample[at:at] = array("q", (time, amount))
        ranked = self.ranked = owned(self.ranked)
        # not bisect.insort, which is slower on an array
        ranked.insert(bisect.bisect_right(ranked, amount), amount)
        if len(sample) > MAX_SAMPLE * SAMPLE_WIDTH:
            ranked.remove(sample[1])
            del sample[:SAMPLE_WIDTH]
        self._add_maximum(time, amount)

    def _add_payee(self, time: int, amount: int, payee: int, row: int) -> None:
        payees = self.payees
        if row < 0:
            stats: PayeeStats = (time, 1, time, amount, amount, 1)
        else:
            at = row * PAYEE_WIDTH
            first, count, last, first_amount, last_amount, increasing = unpack_payee(payees[at + 1 : at + 5])
            later = time >= last
            stats = (
                min(first, time),
                count + 1,
                max(last, time),
                amount if time < first else first_amount,
                amount if later else last_amount,
                int(bool(increasing) and later and amount > last_amount),
            )
            del payees[at : at + PAYEE_WIDTH]  # re-appended: least recently paid first
        payees = self.payees = append(payees, (payee, *pack_payee(stats)))
        if len(payees) > MAX_PAYEES * PAYEE_WIDTH:
            del payees[:PAYEE_WIDTH]

    def _add_maximum(self, time: int, amount: int) -> None:
        maxima = self.maxima
        if not maxima or maxima[len(maxima) - 2] <= time:  # the usual case: events in time order
            while maxima and maxima[len(maxima) - 1] <= amount:
                del maxima[len(maxima) - 2 :]
            self.maxima = append(maxima, (time, amount))
            return
        position = _sample_position(maxima, time, amount)
        rows = len(maxima) // SAMPLE_WIDTH
        if any(maxima[r * SAMPLE_WIDTH + 1] >= amount for r in range(position, rows)):
            return  # a later payment at least as large already dominates this one
        keep = [r for r in range(position) if maxima[r * SAMPLE_WIDTH + 1] > amount]
        kept = array("q", [v for r in keep for v in maxima[r * SAMPLE_WIDTH : (r + 1) * SAMPLE_WIDTH]])
        kept.extend((time, amount))
        maxima[: position * SAMPLE_WIDTH] = kept

    def add_name(self, name: int, payee: int) -> None:
        """``payee`` was paid under the name whose hash is ``name`` (the latest such pair goes last)."""
        names = self.names
        for at in range(0, len(names), NAME_WIDTH):
            if names[at] == name and names[at + 1] == payee:
                del names[at : at + NAME_WIDTH]
                break
        names = self.names = append(names, (name, payee))
        if len(names) > MAX_PAYEES * NAME_WIDTH:
            del names[:NAME_WIDTH]

    def name_paid_elsewhere(self, name: int, payee: int) -> bool:
        """Whether a payee other than ``payee`` was paid under the name whose hash is ``name``."""
        names = self.names
        return any(names[at] == name and names[at + 1] != payee for at in range(0, len(names), NAME_WIDTH))

    def add_inbound(
        self, time: int, amount: int, payer: int, personal: bool = True, own: bool = False
    ) -> None:
        inbound = self.inbound = insert(self.inbound, INBOUND_WIDTH, (time, amount, payer, int(personal)))
        if len(inbound) > MAX_INBOUND * INBOUND_WIDTH:  # a merchant's: the oldest credit goes
            del inbound[:INBOUND_WIDTH]
        if personal:  # institutions' credits are no stranger's "profit": only persons are remembered
            senders, row = self.senders, row_of(self.senders, SENDER_WIDTH, payer)
            if row >= 0:
                at = row * SENDER_WIDTH
                time, own = min(time, senders[at + 1]), own or bool(senders[at + 2])
                del senders[at : at + SENDER_WIDTH]  # re-appended: least recently credited first
            senders = self.senders = append(senders, (payer, time, int(own)))
            if len(senders) > MAX_PAYEES * SENDER_WIDTH:
                del senders[:SENDER_WIDTH]

    def add_loan(self, time: int, amount: int, lender: int) -> None:
        self.loans = insert(self.loans, LOAN_WIDTH, (time, amount, lender))

    def add_deposit(self, time: int, amount: int) -> None:
        self.deposits = insert(self.deposits, DEPOSIT_WIDTH, (time, amount))

    def add_stop(self, time: int, payee: int) -> None:
        stops = self.stops = insert(self.stops, STOP_WIDTH, (time, payee))
        if len(stops) > MAX_STOPS * STOP_WIDTH:
            del stops[:STOP_WIDTH]

    def remove_stop(self, time: int, payee: int) -> bool:
        """Forget one stop (a stopped payment resolved as legitimate), and mark its attempt executed;
        whether the stop was still remembered."""
        out = self.out
        for row in range(first_after(out, OUT_WIDTH, time - 1), len(out) // OUT_WIDTH):
            at = row * OUT_WIDTH
            if out[at] != time:
                break
            if out[at + OUT_PAYEE] == payee and out[at + OUT_STOPPED]:
                out[at + OUT_STOPPED] = 0
                break
        stops = self.stops
        for row in range(first_after(stops, STOP_WIDTH, time - 1), len(stops) // STOP_WIDTH):
            at = row * STOP_WIDTH
            if stops[at] != time:
                break
            if stops[at + STOP_PAYEE] == payee:
                del stops[at : at + STOP_WIDTH]
                return True
        return False

    def snooze(self, rule: str, payee: int, until: int, reason: str) -> None:
        """Snooze ``rule`` for this payer (and ``payee``; 0: every payee) until ``until``, replacing a
        snooze of the same rule and payee."""
        kept = tuple(s for s in self.snoozes if (s[0], s[1]) != (rule, payee))
        self.snoozes = (*kept, (rule, payee, until, reason))[-MAX_SNOOZES:]

    def unsnooze(self, rule: str, payee: int) -> bool:
        """End the snooze of ``rule`` and ``payee`` early; whether there was one."""
        kept = tuple(s for s in self.snoozes if (s[0], s[1]) != (rule, payee))
        found = len(kept) != len(self.snoozes)
        self.snoozes = kept
        return found

    def snoozed(self, time: int, payee: int | None) -> frozenset[str]:
        """The rules snoozed at ``time`` for a payment to ``payee``."""
        return frozenset(
            rule for rule, other, until, _ in self.snoozes if time < until and other in (0, payee)
        )

    def forgettable(self, oldest: int, now: int) -> bool:
        """Whether nothing of this history matters at ``now`` when its last event is older than ``oldest``
        (no snooze runs past ``now``; see ``HORIZON``)."""
        return self.seen < oldest and all(snooze[2] <= now for snooze in self.snoozes)

    def add_device(self, time: int) -> None:
        self.device_time = time if self.device_time is None else max(self.device_time, time)

    # -- reads -------------------------------------------------------------------------------------
    def out_rows(self, start: int, end: int) -> Rows:
        """Outgoing attempts (executed or stopped) with ``start < time <= end``: ``OUT_*`` columns."""
        return Rows(self.out, OUT_WIDTH, start, end)

    def inbound_rows(self, start: int, end: int) -> Rows:
        """Money received with ``start < time <= end``: ``INBOUND_*`` columns."""
        return Rows(self.inbound, INBOUND_WIDTH, start, end)

    def loan_rows(self, start: int, end: int) -> Rows:
        """Loan disbursements received with ``start < time <= end``: ``LOAN_*`` columns."""
        return Rows(self.loans, LOAN_WIDTH, start, end)

    def deposit_rows(self, start: int, end: int) -> Rows:
        """Deposits broken early with ``start < time <= end``: ``DEPOSIT_*`` columns."""
        return Rows(self.deposits, DEPOSIT_WIDTH, start, end)

    def stop_rows(self, start: int, end: int) -> Rows:
        """Hold and interrupt decisions with ``start < time <= end``: ``STOP_*`` columns."""
        return Rows(self.stops, STOP_WIDTH, start, end)

    def payee_row(self, payee: int) -> int:
        """The row of ``payee`` among the known payees, or -1."""
        return row_of(self.payees, PAYEE_WIDTH, payee)

    def first_credited(self, payer: int) -> tuple[int, bool] | None:
        """When the person ``payer`` first sent this account money, and whether it is the customer's own
        account, as remembered (None: never)."""
        row, senders = row_of(self.senders, SENDER_WIDTH, payer), self.senders
        return None if row < 0 else (senders[row * SENDER_WIDTH + 1], bool(senders[row * SENDER_WIDTH + 2]))

    def knows(self, payee: int) -> bool:
        """Whether an executed payment to ``payee`` is remembered."""
        return self.payee_row(payee) >= 0

    def payee(self, payee: int | None) -> PayeeStats | None:
        """What is known of executed payments to ``payee``."""
        return self.payee_at(-1 if payee is None else self.payee_row(payee))

    def payee_at(self, row: int) -> PayeeStats | None:
        """The statistics of the known payee in ``row`` (from ``payee_row``; None for -1)."""
        if row < 0:
            return None
        at = row * PAYEE_WIDTH
        return unpack_payee(self.payees[at + 1 : at + PAYEE_WIDTH])

    def percentile_95(self, start: int, end: int, least: int) -> int | None:
        """The 95th percentile of executed amounts with ``start <= time < end``; None under ``least`` of them.

        In the usual case the whole sample lies in the window and the answer is read off ``ranked``;
        otherwise only the top 5 % of the window's amounts is ordered (``heapq.nlargest``).
        """
        sample = self.sample
        count = len(sample) // SAMPLE_WIDTH
        if count and sample[0] >= start and sample[len(sample) - SAMPLE_WIDTH] < end:
            return self.ranked[_rank(count)] if count >= least else None
        amounts = [sample[at + 1] for at in range(0, len(sample), SAMPLE_WIDTH) if start <= sample[at] < end]
        if len(amounts) < least:
            return None
        return heapq.nlargest(len(amounts) - _rank(len(amounts)), amounts)[-1]

    def max_before(self, time: int) -> int | None:
        """Largest executed outgoing amount with ``time - 365 days <= t < time``."""
        maxima = self.maxima
        for at in range(0, len(maxima), SAMPLE_WIDTH):
            if time - 365 * DAY <= maxima[at] < time:
                return maxima[at + 1]
        return None

    # -- serialisation (for persistent stores) ----------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        payees = self.payees
        return {
            "format": FORMAT,
            "out": rows_of(self.out, OUT_WIDTH),
            "payees": [
                [payees[at], *unpack_payee(payees[at + 1 : at + PAYEE_WIDTH])]
                for at in range(0, len(payees), PAYEE_WIDTH)
            ],
            "sample": rows_of(self.sample, SAMPLE_WIDTH),
            "maxima": rows_of(self.maxima, SAMPLE_WIDTH),
            "inbound": rows_of(self.inbound, INBOUND_WIDTH),
            "loans": rows_of(self.loans, LOAN_WIDTH),
            "deposits": rows_of(self.deposits, DEPOSIT_WIDTH),
            "stops": rows_of(self.stops, STOP_WIDTH),
            "names": rows_of(self.names, NAME_WIDTH),
            "senders": rows_of(self.senders, SENDER_WIDTH),
            "device_time": self.device_time,
            "vasp_time": self.vasp_time,
            "seen": self.seen,
            "clock": self.clock,
            "pruned": self.pruned,
            "woke": self.woke,
            "dormant": self.dormant,
            "snoozes": [list(snooze) for snooze in self.snoozes],
        }

    @classmethod
    def from_json(cls, data: Any) -> AccountHistory:
        """The history ``to_json`` wrote (as JSON decodes it), in this format or an earlier one;
        ``StoreError`` otherwise."""
        if not isinstance(data, dict):
            raise StoreError(f"not an account history but a JSON {type(data).__name__}")
        version = data.get("format", 1)
        if type(version) is not int or version not in _READABLE:
            raise StoreError(
                f"an account history in format {version!r}: this payguard reads formats "
                f"{', '.join(map(str, _READABLE))} (written by a newer payguard, or not a history)"
            )
        try:
            return cls._from_json(data)
        except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"an account history in format {version} is damaged: {exc!r}") from exc

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> AccountHistory:
        payees = [
            [row[0], *pack_payee((row[1], row[2], row[3], row[4], row[5], row[6]))]
            for row in checked(data["payees"], _PAYEE_JSON_WIDTH)
        ]
        return cls(
            out=_out_rows(data["out"], data.get("format", 1)),
            payees=flat(payees, PAYEE_WIDTH),
            sample=flat(data["sample"], SAMPLE_WIDTH),
            maxima=flat(data["maxima"], SAMPLE_WIDTH),
            inbound=flat(data["inbound"], INBOUND_WIDTH),
            loans=flat(data["loans"], LOAN_WIDTH),
            deposits=flat(data["deposits"], DEPOSIT_WIDTH),
            stops=flat(data["stops"], STOP_WIDTH),
            names=flat(data.get("names", []), NAME_WIDTH),  # before format 5: none remembered
            senders=flat(data.get("senders", []), SENDER_WIDTH),  # before format 6: none remembered
            device_time=_integer(data["device_time"], "device_time", optional=True),
            vasp_time=_integer(data.get("vasp_time"), "vasp_time", optional=True),
            seen=_integer(data["seen"], "seen"),
            clock=_integer(data.get("clock", data["seen"]), "clock"),  # before format 4: pruned from seen
            pruned=_integer(data.get("pruned", 0), "pruned"),
            woke=_integer(data.get("woke", 0), "woke"),
            dormant=_integer(data.get("dormant", 0), "dormant"),
            snoozes=tuple(_snooze(row) for row in data.get("snoozes", ())),
        )


def _out_rows(rows: list[list[int]], version: int) -> array[int]:
    """The outgoing attempts as stored; rows of five columns (formats 1 and 2, and format 3 as first
    written) gain the two that format 3 added."""
    if version < 3 or (version == 3 and rows and len(rows[0]) == _OUT_WIDTH_BEFORE_3):
        rows = [[*row, 1, 0] for row in checked(rows, _OUT_WIDTH_BEFORE_3)]
    return flat(rows, OUT_WIDTH)


def _snooze(row: Any) -> Snooze:
    """A snooze read back from JSON; ``ValueError`` unless it is [rule, payee, until, reason]."""
    if (
        isinstance(row, list)
        and len(row) == 4
        and isinstance(row[0], str)
        and isinstance(row[3], str)
        and type(row[1]) is int
        and type(row[2]) is int
    ):
        return (row[0], row[1], row[2], row[3])
    raise ValueError(f"a snooze is [rule, payee, until, reason], not this {type(row).__name__}")
