"""The static half of a partitioned replay: every record numbered in the canonical replay order and routed
as read, by the accounts whose histories it touches, to their partitions (``plan``); then, once the
partitions have validated their rows (``Checked``), the serial replay's bookkeeping over what they found:
rejections, duplicates and conflicts of event ids, and the feedback lists in force (``resolve``,
``classify``). The driver never validates a record: the rows go to the engine in batches as they are
routed (``feed``), and each partition validates its own on its worker while the plan reads on.

An event decided at its subject's partition (a ``DECIDE`` row) that pays another account also has a
``CREDIT`` row at the payee's partition: there the payee's history is replayed, the payee-side features
computed for the payer's partition, and the credit applied when the payer's partition decided the payment
executed. History records (``--history``) are ``RECORD`` and ``HISTORY_CREDIT`` rows, always executed.
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .._errors import InvalidEventError
from .._features.context import INCOMING
from .._io import Limits, read_records
from .._io.base import Record
from .._replay import REORDER_WINDOW, ReplaySummary, order
from .._rules.model import RuleSet
from .._stores.history import party
from .audit import AuditPlan

__all__ = [
    "CREDIT",
    "DECIDE",
    "FEED_ROWS",
    "HISTORY_CREDIT",
    "RECORD",
    "Answer",
    "Checked",
    "Feed",
    "Plan",
    "Row",
    "Setup",
    "classify",
    "partition_of",
    "plan",
    "resolve",
    "routed",
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
    event: dict[str, Any]  # the record's event as read: plain data pickles fast, an Event slowly
    peer: int  # the partition of the other account (payee of a DECIDE, payer of a CREDIT), or -1
    epoch: int  # DECIDE: how many feedback entries of ``Setup.listed`` are in force (``Setup.epochs``)
    possible_duplicate: bool
    source: str  # the record's file and line, which a rejection names
    line: int


@dataclass
class Checked:
    """What one partition found validating its rows: each record it rejected (by its ``DECIDE`` or
    ``RECORD`` row: seq, error, the record's event, file and line), and with feedback the time of each
    valid ``DECIDE`` row (``seqs``, ``times``) and the payee account of those labelled fraud."""

    invalid: list[tuple[int, InvalidEventError, dict[str, Any], str, int]] = field(default_factory=list)
    seqs: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    frauds: dict[int, str] = field(default_factory=dict)


# an asked ``DECIDE`` row (``Setup.asked``): its event's digest, the record's event, file and line
Answer = tuple[bytes, dict[str, Any], str, int]


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
    # the seqs of event ids decided before (duplicates and conflicts: dropped), of those whose event's
    # digest the driver needs (a repeated id and its first), and from which seq on how many feedback
    # entries are in force (in seq order)
    dropped: frozenset[int] = frozenset()
    asked: frozenset[int] = frozenset()
    epochs: tuple[tuple[int, int], ...] = ()
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
    ids: list[str | None] = field(default_factory=list)  # each record's event id as read (None: none)
    flagged: set[int] = field(default_factory=set)  # seqs of the records marked possible duplicates
    wanted: set[int] = field(default_factory=set)  # seqs of the decisions whose ids a conflict names
    listed: list[str] = field(default_factory=list)
    # (seq, record, reason) of the rejected records, and (seq, record, first seq) of the conflicts: reported
    # in replay order once the first decisions' ids are known
    rejected: list[tuple[int, Record, str]] = field(default_factory=list)
    conflicts: list[tuple[int, Record, int]] = field(default_factory=list)
    invalid: list[tuple[int, InvalidEventError]] = field(default_factory=list)  # audited as rejected
    # for each count of feedback entries listed, how many times feedback had set the list by then
    batches: dict[int, int] = field(default_factory=dict)
    repeats: list[tuple[int, int]] = field(default_factory=list)  # (seq, first seq) of ids decided before
    epochs: list[tuple[int, int]] = field(default_factory=list)  # (seq, feedback entries in force from it)


def partition_of(key: str, partitions: int) -> int:
    """The partition of an account (by its store key): stable across processes and runs."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % partitions


def plan(  # noqa: PLR0917 (the replay's options)
    files: list[str],
    partitions: int,
    history: list[str],
    reading: tuple[str | None, str | None, Limits | None],
    feed: Feed,
    window: int = REORDER_WINDOW,
    progress: Callable[[int], None] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Plan:
    """Number and route the records of ``history`` then ``files`` (``reading``: the format, mapping and
    limits) to ``feed``, as read: the partitions validate them. ``settings``: the rule set's overrides."""
    result = Plan(ReplaySummary(settings=dict(settings or {})))
    summary = result.summary
    rows = _Router(partitions, feed)
    seq = -1_000_000_000_000  # history first, in reading order
    for name in history:
        for record in read_records(name, *reading):
            seq += 1
            if record.event is None:
                result.rejected.append((seq, record, record.error or "unreadable record"))
                continue
            summary.history += 1  # less those the partitions reject (``resolve``)
            rows.route(seq, (RECORD, HISTORY_CREDIT), record)
    ids = result.ids
    for seq, record in enumerate(
        order(files, fmt=reading[0], mapping=reading[1], limits=reading[2], window=window, late=summary.late)
    ):
        summary.records += 1
        if progress is not None:
            progress(1)
        data = record.event
        if data is None:
            result.rejected.append((seq, record, record.error or "unreadable record"))
            ids.append(None)
            continue
        event_id = data.get("id")
        ids.append(event_id if isinstance(event_id, str) else None)  # a valid event's id is this string
        if record.possible_duplicate:
            result.flagged.add(seq)
        rows.route(seq, (DECIDE, CREDIT), record)
    rows.flush()
    return result


def resolve(result: Plan, checked: Iterable[Checked], feedback_delay: int | None) -> None:
    """Count, as the serial replay does in replay order, what the partitions found validating their rows
    (``checked``): the rejected records, the feedback lists (``listed``, ``batches``, ``epochs``: the
    labels of the events decided, known ``feedback_delay`` seconds later), and the event ids decided
    before (``repeats``), which ``classify`` tells apart once their digests are known."""
    summary = result.summary
    bad: set[int] = set()
    times: dict[int, float] = {}
    frauds: dict[int, str] = {}
    for part in checked:
        for seq, error, data, source, line in part.invalid:
            result.rejected.append((seq, Record(source, line, data), str(error)))
            if seq < 0:  # a history record
                summary.history -= 1
                continue
            bad.add(seq)
            result.invalid.append((seq, error))
        if feedback_delay is not None:
            times.update(zip(part.seqs, part.times, strict=True))
            frauds.update(part.frauds)
    result.invalid.sort(key=lambda item: item[0])
    # each remembered id's first seq: an id repeated after more fresh decisions than this is decided again
    remembered: OrderedDict[str, int] = OrderedDict()
    pending: list[tuple[float, str]] = []  # (when the fraud label becomes known, payee account)
    listed, fresh_flagged = result.listed, 0
    for seq, event_id in enumerate(result.ids):
        if event_id is None or seq in bad:  # unreadable or rejected: never decided
            continue
        if feedback_delay is not None:
            now = times[seq]
            before = len(listed)
            while pending and pending[0][0] <= now:
                listed.append(heapq.heappop(pending)[1])
                summary.listed_by_feedback += 1
            if len(listed) > before:  # the serial replay sets the list once for them all
                result.batches[len(listed)] = len(result.batches) + 1
                result.epochs.append((seq, len(listed)))
        first = remembered.get(event_id)
        if first is not None:
            result.repeats.append((seq, first))
            continue
        fresh_flagged += seq in result.flagged
        remembered[event_id] = seq
        if len(remembered) > REMEMBERED:
            remembered.popitem(last=False)
        payee = frauds.get(seq)
        if feedback_delay is not None and payee is not None:
            heapq.heappush(pending, (times[seq] + feedback_delay, payee))
    summary.possible_duplicates += fresh_flagged


def classify(result: Plan, answers: Mapping[int, Answer]) -> None:
    """Tell the repeated event ids apart by the digests of their events (``answers``, from the partitions):
    a duplicate (the same event again: counted) or a conflict (another event: reported as rejected)."""
    summary = result.summary
    for seq, first in result.repeats:
        found, data, source, line = answers[seq]
        if found != answers[first][0]:
            result.conflicts.append((seq, Record(source, line, data), first))
            result.wanted.add(first)
            continue
        summary.possible_duplicates += seq in result.flagged
        summary.duplicates += 1
    summary.rejected = len(result.rejected)
    summary.conflicts = len(result.conflicts)


def routed(data: dict[str, Any]) -> tuple[str, str | None] | None:
    """The store keys of the histories an event as read touches, as ``_features.context.accounts`` finds
    them on the valid event (None: it names no payer account, so it cannot be valid)."""
    payer = data.get("payer")
    account = payer.get("account") if isinstance(payer, dict) else None
    if not isinstance(account, str):
        return None
    payer_key = party(account)[0]
    payee = data.get("payee")
    other = payee.get("account") if isinstance(payee, dict) else None
    payee_key = party(other)[0] if isinstance(other, str) else None
    kind = data.get("type", "transfer_out")
    if not isinstance(kind, str):  # not valid: any partition rejects it
        return payer_key, None
    if kind in INCOMING and payee_key is not None:
        return payee_key, None
    if kind == "transfer_out" and payee_key is not None and payee_key != payer_key:
        return payer_key, payee_key
    return payer_key, None


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

    def route(self, seq: int, kinds: tuple[int, int], record: Record) -> int:
        """The record's row at its subject's partition (returned), and its credit row at the payee's, if
        another's; a record that names no payer account goes to partition 0, which rejects it."""
        data = record.event
        assert data is not None
        found = routed(data)
        subject, payee = ("", None) if found is None else found
        home = self.home(subject) if found is not None else 0
        away = -1 if payee is None else self.home(payee)
        rows, source, line = self.rows, record.source, record.line
        rows[home].append(Row(seq, kinds[0], subject, data, away, 0, record.possible_duplicate, source, line))
        self.count += 1
        if payee is not None:
            rows[away].append(Row(seq, kinds[1], payee, data, home, 0, False, source, line))
            self.count += 1
        if self.count >= FEED_ROWS:
            self.flush()
        return home

    def flush(self) -> None:
        """Feed the rows routed since the last batch (every partition is fed at least once)."""
        self.feed(self.rows)
        self.rows = [[] for _ in range(self.partitions)]
        self.count = 0
