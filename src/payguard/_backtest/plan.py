"""The static half of a partitioned replay: every event numbered in the canonical replay order, validated
once, deduplicated as the serial replay deduplicates, and routed to the partitions of the accounts whose
histories it touches. The rows go to the engine in batches as they are routed (``feed``), so that the
partitions validate and index theirs on their workers while the plan reads on.

An event decided at its subject's partition (a ``DECIDE`` row) that pays another account also has a
``CREDIT`` row at the payee's partition: there the payee's history is replayed, the payee-side features
computed for the payer's partition, and the credit applied when the payer's partition decided the payment
executed. History records (``--history``) are ``RECORD`` and ``HISTORY_CREDIT`` rows, always executed.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .._errors import InvalidEventError
from .._event import Event, digest, parse_event
from .._features.context import accounts
from .._guard import Guard
from .._io import Limits, read_records
from .._io.base import Record
from .._replay import REORDER_WINDOW, ReplaySummary, order
from .._rules.model import RuleSet
from .audit import AuditPlan

__all__ = [
    "CREDIT",
    "DECIDE",
    "FEED_ROWS",
    "HISTORY_CREDIT",
    "RECORD",
    "Feed",
    "Plan",
    "Row",
    "Setup",
    "partition_of",
    "plan",
]

DECIDE: Final = 0
RECORD: Final = 1
CREDIT: Final = 2
HISTORY_CREDIT: Final = 3
# the decisions a MemoryStore remembers for idempotency (its default ``max_decisions``): an id repeated
# after more fresh decisions than this is decided again, serially and here alike
REMEMBERED: Final = 100_000
# rows routed before a batch goes to the partitions: large enough that a batch's fixed cost is small
FEED_ROWS: Final = 20_000


class Row(NamedTuple):
    """One event as one account's partition sees it."""

    seq: int  # position in the replay order (history records: negative, in reading order)
    kind: int  # DECIDE, RECORD, CREDIT or HISTORY_CREDIT
    account: str  # the store key of the account whose partition holds the row
    event: dict[str, Any]  # the record's event as read (valid): plain data pickles fast, an Event slowly
    peer: int  # the partition of the other account (payee of a DECIDE, payer of a CREDIT), or -1
    epoch: int  # DECIDE: how many feedback entries of ``Setup.listed`` are in force
    possible_duplicate: bool


@dataclass(frozen=True)
class Setup:
    """What every partition's step needs besides its rows: the rule set and the feedback lists."""

    ruleset: RuleSet
    engine: str
    partitions: int
    list_name: str | None  # the list feedback fills (None: no feedback)
    listed: tuple[str, ...] = ()  # the accounts feedback listed, in the order the serial replay listed them
    scored: bool = False
    lists: dict[str, frozenset[str]] = field(default_factory=dict)  # the lists in force at the start
    # whether the rule set reads payee-side features: then a first pass estimates them before deciding
    warm_up: bool = False
    payee_side: bool = True  # whether the rule set reads payee-side features at all (else none are sent)
    audit: AuditPlan | None = None  # where each partition writes its audit file (None: no audit)
    report: bool = False  # whether the partitions count what the HTML report shows (``--report``)
    # whether each decision's features are kept (``--report`` with ``--compare``: a change is a knock-on
    # effect when the two rule sets' decisions saw different features)
    keep_features: bool = False


# receives, for each partition (by index), its next rows in replay order
Feed = Callable[[list[list[Row]]], None]


@dataclass
class Plan:
    """What the serial replay counts before deciding anything (the rows went to the partitions)."""

    summary: ReplaySummary
    # for each partition, the seqs of its decisions whose ids a conflict's message names
    wanted: list[set[int]] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    # (seq, record, reason) of the rejected records, and (seq, record, first seq) of the conflicts: reported
    # in replay order once the first decisions' ids are known
    rejected: list[tuple[int, Record, str]] = field(default_factory=list)
    conflicts: list[tuple[int, Record, int]] = field(default_factory=list)
    invalid: list[tuple[int, InvalidEventError]] = field(default_factory=list)  # audited as rejected
    # for each count of feedback entries listed, how many times feedback had set the list by then
    batches: dict[int, int] = field(default_factory=dict)


def partition_of(key: str, partitions: int) -> int:
    """The partition of an account (by its store key): stable across processes and runs."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % partitions


def plan(  # noqa: PLR0917 (the replay's options)
    files: list[str],
    guard: Guard,
    partitions: int,
    history: list[str],
    reading: tuple[str | None, str | None, Limits | None],
    feedback_delay: int | None,
    feed: Feed,
    window: int = REORDER_WINDOW,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Number, validate, deduplicate and route the records of ``history`` then ``files`` (``reading``: the
    format, mapping and limits) to ``feed``. ``guard`` only validates (as the serial replay's guard does)."""
    result = Plan(ReplaySummary(settings=dict(guard.rules.overrides)), [set() for _ in range(partitions)])
    summary = result.summary
    rows = _Router(partitions, feed)
    seq = -1_000_000_000_000  # history first, in reading order
    for name in history:
        for record in read_records(name, *reading):
            seq += 1
            if record.event is None:
                result.rejected.append((seq, record, record.error or "unreadable record"))
                continue
            try:
                event = parse_event(record.event)
                guard.pipeline.validate(event)  # as Guard.record validates it
            except InvalidEventError as exc:
                result.rejected.append((seq, record, str(exc)))
                continue
            summary.history += 1
            rows.route(seq, (RECORD, HISTORY_CREDIT), event, record, 0)
    # each remembered id's first record (valid), seq and partition: its digest is computed only when the
    # id repeats
    remembered: OrderedDict[str, tuple[dict[str, Any], int, int]] = OrderedDict()
    pending: list[tuple[float, str]] = []  # (when the fraud label becomes known, payee account)
    for seq, record in enumerate(
        order(files, fmt=reading[0], mapping=reading[1], limits=reading[2], window=window, late=summary.late)
    ):
        summary.records += 1
        if progress is not None:
            progress(1)
        if record.event is None:
            result.rejected.append((seq, record, record.error or "unreadable record"))
            continue
        try:
            event = guard.validate(record.event)
        except InvalidEventError as exc:
            result.rejected.append((seq, record, str(exc)))
            result.invalid.append((seq, exc))
            continue
        if feedback_delay is not None:
            now = event.timestamp.timestamp()
            before = len(result.listed)
            while pending and pending[0][0] <= now:
                result.listed.append(heapq.heappop(pending)[1])
                summary.listed_by_feedback += 1
            if len(result.listed) > before:  # the serial replay sets the list once for them all
                result.batches[len(result.listed)] = len(result.batches) + 1
        first = remembered.get(event.id)
        if first is not None:
            if digest(guard.validate(first[0])) != digest(event):
                result.conflicts.append((seq, record, first[1]))
                result.wanted[first[2]].add(first[1])
                continue
            summary.possible_duplicates += record.possible_duplicate
            summary.duplicates += 1
            continue
        summary.possible_duplicates += record.possible_duplicate
        home = rows.route(seq, (DECIDE, CREDIT), event, record, len(result.listed))
        remembered[event.id] = (record.event, seq, home)
        if len(remembered) > REMEMBERED:
            remembered.popitem(last=False)
        label = event.label
        if feedback_delay is not None and label is not None and label.is_fraud and event.payee:
            heapq.heappush(pending, (event.timestamp.timestamp() + feedback_delay, event.payee.account))
    rows.flush()
    summary.rejected = len(result.rejected)
    summary.conflicts = len(result.conflicts)
    return result


class _Router:
    """Routes rows to the partitions and feeds them on in batches."""

    def __init__(self, partitions: int, feed: Feed) -> None:
        self.partitions, self.feed = partitions, feed
        self.rows: list[list[Row]] = [[] for _ in range(partitions)]
        self.count = 0
        self.homes: dict[str, int] = {}  # each account's partition, hashed once

    def home(self, key: str) -> int:
        found = self.homes.get(key)
        if found is None:
            found = self.homes[key] = partition_of(key, self.partitions)
        return found

    def route(self, seq: int, kinds: tuple[int, int], event: Event, record: Record, epoch: int) -> int:
        """The event's row at its subject's partition (returned), and its credit row at the payee's, if
        another's."""
        subject, payee = accounts(event)
        home = self.home(subject)
        away = -1 if payee is None else self.home(payee)
        assert record.event is not None
        rows = self.rows
        rows[home].append(Row(seq, kinds[0], subject, record.event, away, epoch, record.possible_duplicate))
        self.count += 1
        if payee is not None:
            rows[away].append(Row(seq, kinds[1], payee, record.event, home, epoch, False))
            self.count += 1
        if self.count >= FEED_ROWS:
            self.flush()
        return home

    def flush(self) -> None:
        """Feed the rows routed since the last batch (every partition is fed at least once)."""
        self.feed(self.rows)
        self.rows = [[] for _ in range(self.partitions)]
        self.count = 0
