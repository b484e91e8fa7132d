"""What payguard remembers about one account: just enough for the features, and bounded.

Times are event times in epoch seconds; amounts are integer minor units; counterparties are stable 64-bit
hashes of their normalised account numbers (so a history survives a restart and fits in little memory).

Bounds, per account: windows keep 24 hours (money received: 7 days), plus an hour of grace for late
events; stops 30 days (at most 50); the amount sample the last 100 executed payments of 90 days; the
running maximum only the payments that can still be a 365-day maximum; and known payees at most
``MAX_PAYEES`` (the least recently paid are forgotten first, and then count as new again).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import operator
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ._text import normalize_account

__all__ = ["DAY", "GRACE", "HOUR", "MAX_PAYEES", "AccountHistory", "party_hash"]

# Entries are tuples of ints: smaller than lists, and untracked by the garbage collector, which matters
# with a million of them.
Entry = tuple[int, ...]
PayeeStats = tuple[int, int, int, int, int, int]
FIRST, COUNT, LAST, FIRST_AMOUNT, LAST_AMOUNT, INCREASING = range(6)

# Payee statistics and sampled amounts are packed into single ints: one int object instead of a tuple of
# six (or two) makes a remembered payee about 120 bytes instead of 350. Times fit 38 bits (event times are
# bounded to years 1970-9999), amounts 50 bits (MAX_MINOR_UNITS is 10**15), counts are capped at 2**20 - 1.
_TIME_BITS, _AMOUNT_BITS, _COUNT_BITS = 38, 50, 20
_AMOUNT_MASK, _TIME_MASK, _COUNT_MASK = (1 << _AMOUNT_BITS) - 1, (1 << _TIME_BITS) - 1, (1 << _COUNT_BITS) - 1


def pack_payee(stats: PayeeStats) -> int:
    first, count, last, first_amount, last_amount, increasing = stats
    packed = first
    packed = (packed << _TIME_BITS) | last
    packed = (packed << _COUNT_BITS) | min(count, _COUNT_MASK)
    packed = (packed << 1) | (1 if increasing else 0)
    packed = (packed << _AMOUNT_BITS) | first_amount
    return (packed << _AMOUNT_BITS) | last_amount


def unpack_payee(packed: int) -> PayeeStats:
    last_amount = packed & _AMOUNT_MASK
    packed >>= _AMOUNT_BITS
    first_amount = packed & _AMOUNT_MASK
    packed >>= _AMOUNT_BITS
    increasing = packed & 1
    packed >>= 1
    count = packed & _COUNT_MASK
    packed >>= _COUNT_BITS
    last = packed & _TIME_MASK
    first = packed >> _TIME_BITS
    return first, count, last, first_amount, last_amount, increasing


def _sample_time(packed: int) -> int:
    return packed >> _AMOUNT_BITS


HOUR = 3600
DAY = 86400
GRACE = HOUR
MAX_PAYEES = 1000
MAX_SAMPLE = 100
MAX_STOPS = 50
PRUNE_EVERY = HOUR


@lru_cache(maxsize=1 << 16)
def party_hash(account: str) -> int:
    """A stable 63-bit hash of a normalised account number."""
    digest = hashlib.blake2b(normalize_account(account).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _prune(entries: list[Entry], oldest: int) -> None:
    """Drop entries (sorted by time, time first) older than ``oldest``."""
    cut = 0
    while cut < len(entries) and entries[cut][0] < oldest:
        cut += 1
    if cut:
        del entries[:cut]


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Insert keeping time order; late events land where they belong."""
    if not entries or entries[-1][0] <= entry[0]:
        entries.append(entry)
    else:
        bisect.insort(entries, entry, key=lambda e: e[0])


def _entries(rows: list[list[int]]) -> list[Entry]:
    return [tuple(row) for row in rows]


def window(entries: list[Entry], start: int, end: int) -> list[Entry]:
    """Entries with ``start < time <= end`` (entries are kept in time order, so two bisections find them)."""
    low = bisect.bisect_right(entries, start, key=_time_of)
    high = bisect.bisect_right(entries, end, lo=low, key=_time_of)
    return entries[low:high]


_time_of = operator.itemgetter(0)


def _rank(count: int) -> int:
    """The index of the 95th percentile among ``count`` values in ascending order (nearest rank)."""
    return min(count - 1, math.ceil(0.95 * count) - 1)


@dataclass(slots=True)
class AccountHistory:
    """The bounded history of one account: lists of int tuples and packed ints, compact and JSON-ready."""

    # outgoing attempts (executed or stopped): [time, amount, payee hash, was new payee, balance before or -1]
    out: list[Entry] = field(default_factory=list)
    # payee hash -> (first paid time, executed payments, last paid time, first amount, last amount,
    # 1 while every payment to the payee was larger than the one before, else 0)
    payees: dict[int, int] = field(default_factory=dict)  # values packed by pack_payee
    # executed outgoing amounts, packed as time << 50 | amount (so sorted by time): the last MAX_SAMPLE
    # within 90 days
    sample: list[int] = field(default_factory=list)
    # running 365-day maximum of executed outgoing amounts: times increase, amounts strictly decrease
    maxima: list[int] = field(default_factory=list)  # packed like ``sample``
    # money received: (time, amount, payer hash, 1 if the payer is a person or unknown, 0 for an institution)
    inbound: list[Entry] = field(default_factory=list)
    # loan disbursements received: [time, amount, lender hash]
    loans: list[Entry] = field(default_factory=list)
    # deposits broken early: [time, amount]
    deposits: list[Entry] = field(default_factory=list)
    # hold or interrupt decisions: [time, payee hash]
    stops: list[Entry] = field(default_factory=list)
    # last device binding or credential change, and last executed payment to a VASP (crypto platform)
    device_time: int | None = None
    vasp_time: int | None = None
    # latest event time seen, which pruning is measured from, and when pruning last ran
    seen: int = 0
    pruned: int = 0
    # the amounts of ``sample`` in ascending order (int64s, not stored: rebuilt from ``sample``), so that the
    # 95th percentile of the whole sample is one index away
    ranked: array[int] = field(default_factory=lambda: array("q"))

    def __post_init__(self) -> None:
        if self.sample and not self.ranked:
            self.ranked = array("q", sorted(e & _AMOUNT_MASK for e in self.sample))

    # -- writes ------------------------------------------------------------------------------------
    def touch(self, time: int) -> None:
        """Advance the account's clock and drop what no window can reach any more.

        Pruning runs at most every ``PRUNE_EVERY`` seconds of event time: windows filter by time anyway, so
        this only bounds memory, and doing it on every event would cost more than it saves.
        """
        if time <= self.seen:
            return
        self.seen = time
        if time - self.pruned < PRUNE_EVERY:
            return
        self.pruned = time
        for entries, keep in (
            (self.out, DAY),
            (self.loans, DAY),
            (self.deposits, DAY),
            (self.inbound, 7 * DAY),
            (self.stops, 30 * DAY),
        ):
            if entries and entries[0][0] < time - keep - GRACE:
                _prune(entries, time - keep - GRACE)
        sample = self.sample
        if sample and _sample_time(sample[0]) < time - 90 * DAY - GRACE:
            cut = bisect.bisect_left(sample, (time - 90 * DAY - GRACE) << _AMOUNT_BITS)
            for entry in sample[:cut]:
                self.ranked.remove(entry & _AMOUNT_MASK)
            del sample[:cut]
        maxima = self.maxima
        if maxima and _sample_time(maxima[0]) < time - 365 * DAY - GRACE:
            del maxima[: bisect.bisect_left(maxima, (time - 365 * DAY - GRACE) << _AMOUNT_BITS)]

    def add_attempt(self, time: int, amount: int, payee: int, new: bool, balance: int | None) -> None:
        _insert(self.out, (time, amount, payee, int(new), -1 if balance is None else balance))

    def add_executed(self, time: int, amount: int, payee: int | None) -> None:
        if payee is not None:
            packed = self.payees.pop(payee, None)
            known = unpack_payee(packed) if packed is not None else None
            if known is None:
                stats: PayeeStats = (time, 1, time, amount, amount, 1)
            else:
                first, count, last, first_amount, last_amount, increasing = known
                later = time >= last
                stats = (
                    min(first, time),
                    count + 1,
                    max(last, time),
                    amount if time < first else first_amount,
                    amount if later else last_amount,
                    int(bool(increasing) and later and amount > last_amount),
                )
            self.payees[payee] = pack_payee(stats)  # re-inserted: dict order is least recently paid first
            while len(self.payees) > MAX_PAYEES:
                del self.payees[next(iter(self.payees))]
        amount = min(amount, _AMOUNT_MASK)
        bisect.insort(self.sample, (time << _AMOUNT_BITS) | amount)
        bisect.insort(self.ranked, amount)
        if len(self.sample) > MAX_SAMPLE:
            self.ranked.remove(self.sample.pop(0) & _AMOUNT_MASK)
        self._add_maximum(time, amount)

    def _add_maximum(self, time: int, amount: int) -> None:
        maxima = self.maxima
        entry = (time << _AMOUNT_BITS) | min(amount, _AMOUNT_MASK)
        if not maxima or _sample_time(maxima[-1]) <= time:  # the usual case: events in time order
            while maxima and maxima[-1] & _AMOUNT_MASK <= amount:
                maxima.pop()
            maxima.append(entry)
            return
        position = bisect.bisect_right(maxima, entry)
        if any(e & _AMOUNT_MASK >= amount for e in maxima[position:]):
            return  # a later payment at least as large already dominates this one
        keep = [e for e in maxima[:position] if e & _AMOUNT_MASK > amount]
        maxima[:position] = keep
        maxima.insert(len(keep), entry)

    def add_inbound(self, time: int, amount: int, payer: int, personal: bool = True) -> None:
        _insert(self.inbound, (time, amount, payer, int(personal)))

    def add_loan(self, time: int, amount: int, lender: int) -> None:
        _insert(self.loans, (time, amount, lender))

    def add_deposit(self, time: int, amount: int) -> None:
        _insert(self.deposits, (time, amount))

    def add_stop(self, time: int, payee: int) -> None:
        _insert(self.stops, (time, payee))
        if len(self.stops) > MAX_STOPS:
            del self.stops[0]

    def add_device(self, time: int) -> None:
        self.device_time = time if self.device_time is None else max(self.device_time, time)

    # -- reads -------------------------------------------------------------------------------------
    def payee(self, payee: int | None) -> PayeeStats | None:
        """What is known of executed payments to ``payee``."""
        packed = self.payees.get(payee) if payee is not None else None
        return unpack_payee(packed) if packed is not None else None

    def percentile_95(self, start: int, end: int, least: int) -> int | None:
        """The 95th percentile of executed amounts with ``start <= time < end``; None under ``least`` of them.

        In the usual case the whole sample lies in the window and the answer is read off ``ranked``;
        otherwise only the top 5 % of the window's amounts is ordered (``heapq.nlargest``).
        """
        sample = self.sample
        count = len(sample)
        low, high = start << _AMOUNT_BITS, end << _AMOUNT_BITS
        if count and sample[0] >= low and sample[-1] < high:
            return self.ranked[_rank(count)] if count >= least else None
        amounts = [e & _AMOUNT_MASK for e in sample if low <= e < high]
        if len(amounts) < least:
            return None
        return heapq.nlargest(len(amounts) - _rank(len(amounts)), amounts)[-1]

    def max_before(self, time: int) -> int | None:
        """Largest executed outgoing amount with ``time - 365 days <= t < time``."""
        for entry in self.maxima:
            if time - 365 * DAY <= _sample_time(entry) < time:
                return entry & _AMOUNT_MASK
        return None

    # -- serialisation (for persistent stores) ----------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "payees": [[k, *unpack_payee(v)] for k, v in self.payees.items()],
            "sample": [[_sample_time(e), e & _AMOUNT_MASK] for e in self.sample],
            "maxima": [[_sample_time(e), e & _AMOUNT_MASK] for e in self.maxima],
            "inbound": self.inbound,
            "loans": self.loans,
            "deposits": self.deposits,
            "stops": self.stops,
            "device_time": self.device_time,
            "vasp_time": self.vasp_time,
            "seen": self.seen,
            "pruned": self.pruned,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountHistory:
        return cls(
            out=_entries(data["out"]),
            payees={
                row[0]: pack_payee((row[1], row[2], row[3], row[4], row[5], row[6])) for row in data["payees"]
            },
            sample=[(row[0] << _AMOUNT_BITS) | row[1] for row in data["sample"]],
            maxima=[(row[0] << _AMOUNT_BITS) | row[1] for row in data["maxima"]],
            inbound=_entries(data["inbound"]),
            loans=_entries(data["loans"]),
            deposits=_entries(data["deposits"]),
            stops=_entries(data["stops"]),
            device_time=data["device_time"],
            vasp_time=data.get("vasp_time"),
            seen=data["seen"],
            pruned=data.get("pruned", 0),
        )
