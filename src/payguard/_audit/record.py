"""The audit records' schema: one record per decided or rejected event, built from what the guard passes.

A ``decision`` record holds the decision, the event's identifiers, amount and times, the evidence (the
values of the fields and features that the rules which fired read) and the rule set that decided; a
``rejected`` record the problems of an invalid event; a ``resolution`` record how the bank resolved a
stopped payment; ``snooze`` and ``unsnooze`` records who kept a rule from firing for a customer; a
``resumed`` record names the partial line a crash left, when a guard reopens the file. The processors
(``processors.py``) then mask, chain and render them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .._common.time import isoformat
from .._common.version import PAYGUARD_VERSION
from .._decision import Decision, json_value
from .._errors import DuplicateEventError, InvalidEventError
from .._event import Event
from .._lifecycle import Resolution
from .processors import PUBLIC

__all__ = ["decision_record", "rejected_record", "resolution_record", "resumed_record", "snooze_record"]


def decision_record(  # noqa: PLR0917 (the record's parts, as the guard has them)
    decision: Decision,
    event: Event,
    offset: timedelta | None,
    ruleset: dict[str, str],
    evidence: Mapping[str, Any],
    latency_us: float,
    *,
    public: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The record of ``decision`` for ``event`` (``offset``: the UTC offset of its timestamp, if known).

    ``public``: the attributes whose evidence the rule set shows in clear; the masking processor reads
    and removes them (``PUBLIC``), so the record as written does not carry them."""
    record: dict[str, Any] = {
        "record": "decision",
        "decision_id": decision.decision_id,
        "evaluated_at": isoformat(decision.evaluated_at),
        "event_id": event.id,
        "event_time": isoformat(event.timestamp, offset),
        "event_type": event.type._value_,
        "action": decision.action._value_,
        "hits": [hit.to_dict() for hit in decision.hits],
        "shadow_hits": [hit.to_dict() for hit in decision.shadow_hits],
        "score": decision.score,
        "evidence": {name: json_value(value) for name, value in evidence.items()},
        "ruleset": ruleset,
        "engine": decision.engine,
        "payguard_version": PAYGUARD_VERSION,
        "payer": event.payer.account,
        "latency_us": latency_us,
    }
    if event.payee is not None:
        record["payee"] = event.payee.account
    if event.amount is not None:
        record["amount"] = str(event.amount)
        record["currency"] = event.currency
    if decision.lists:  # beside the rule set's digest: the versions of the lists set at run time it read
        record["lists"] = dict(decision.lists)
    if decision.listed:
        record["listed"] = decision.listed
    if decision.snoozed:
        record["snoozed"] = list(decision.snoozed)
    if decision.error is not None:
        record["error"] = decision.error
    if public:
        record[PUBLIC] = public
    return record


def rejected_record(
    decision_id: str,
    error: InvalidEventError,
    ruleset: dict[str, str],
    engine: str,
    *,
    event: Event | None = None,
) -> dict[str, Any]:
    """The record of an event refused as invalid, with every problem found; for a valid ``event``
    refused all the same (dated ahead of the clock, an event id decided before for another event) its
    parties, amount and time too, and the decision an event id conflicts with."""
    record: dict[str, Any] = {
        "record": "rejected",
        "decision_id": decision_id,
        "evaluated_at": isoformat(datetime.now(UTC)),
        "event_id": error.event_id,
        "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in error.errors],
        "ruleset": ruleset,
        "engine": engine,
        "payguard_version": PAYGUARD_VERSION,
    }
    if isinstance(error, DuplicateEventError):
        record["duplicate_of"] = error.decision_id
    if event is not None:
        record["event_time"] = isoformat(event.timestamp)
        record["payer"] = event.payer.account
        if event.payee is not None:
            record["payee"] = event.payee.account
        if event.amount is not None:
            record["amount"] = str(event.amount)
            record["currency"] = event.currency
    return record


def resolution_record(
    resolution: Resolution, event: Event, ruleset: dict[str, str], *, listed: str | None
) -> dict[str, Any]:
    """The record of a stopped payment's resolution: the decision, the outcome, and only the length of the
    note (bank staff write free text there, which may name the customer)."""
    record: dict[str, Any] = {
        "record": "resolution",
        "decision_id": resolution.decision_id,
        "event_id": resolution.event_id,
        "action": resolution.action.value,
        "outcome": resolution.outcome.value,
        "resolved_at": isoformat(resolution.resolved_at),
        "event_time": isoformat(event.timestamp),
        "note_length": len(resolution.note or ""),
        "ruleset": ruleset,
        "payguard_version": PAYGUARD_VERSION,
        "payer": event.payer.account,
    }
    if event.payee is not None:
        record["payee"] = event.payee.account
    if listed is not None:
        record["listed_in"] = listed
    return record


def snooze_record(
    rule_id: str,
    payer: str,
    *,
    payee: str | None,
    until: datetime | None,
    reason: str | None,
    ruleset: dict[str, str],
) -> dict[str, Any]:
    """The record of a snooze (``until`` given) or of its early end (``until`` None); the reason's length
    only, as for notes."""
    record: dict[str, Any] = {
        "record": "snooze" if until is not None else "unsnooze",
        "rule_id": rule_id,
        "recorded_at": isoformat(datetime.now(UTC)),
        "ruleset": ruleset,
        "payguard_version": PAYGUARD_VERSION,
        "payer": payer,
    }
    if payee is not None:
        record["payee"] = payee
    if until is not None:
        record["until"] = isoformat(until)
        record["reason_length"] = len(reason or "")
    return record


def resumed_record(remnant: bytes) -> dict[str, Any]:
    """The record a reopened file's first write names a crash's partial last line with (its length and
    SHA-256): ``verify`` accepts that line, and only that one, as an interrupted write."""
    return {
        "record": "resumed",
        "recorded_at": isoformat(datetime.now(UTC)),
        "interrupted": {"length": len(remnant), "sha256": hashlib.sha256(remnant).hexdigest()},
        "payguard_version": PAYGUARD_VERSION,
    }
