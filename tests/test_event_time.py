"""Event time you can trust: a live guard refuses events dated ahead of its clock, and no single event,
whatever its date, can prune what another event's windows read out of an account's history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payguard import Action, Guard, InvalidEventError
from payguard._stores.history import DAY, GRACE, HOUR, STOP_WIDTH, AccountHistory

from .conftest import make_event

WriteRules = Callable[..., Path]

PAYER = "6222000011112222"
KNOWN = "6222000033334444"
SCAMMER = "6222999900001111"
MULE = "6222999900002222"
RULES = """
rules:
  - id: big_to_new
    description: a large payment to a new payee
    when: {is_new_payee: true, amount: {gte: 10000}}
    action: interrupt
    reason: a large payment to a new payee
  - id: retry_after_stop
    description: a payment to a new payee within the hour after a stop
    when: {is_new_payee: true, recent_stops_60m: {gte: 1}}
    action: interrupt
    reason: a retry after a stopped payment
"""


def payment(event_id: str, when: datetime, amount: str, payee: str) -> dict[str, Any]:
    return make_event(
        id=event_id,
        timestamp=when.isoformat(),
        amount=amount,
        payer={"account": PAYER},
        payee={"account": payee},
    )


def test_a_live_guard_refuses_an_event_dated_more_than_five_minutes_ahead_naming_the_timestamp(
    write_rules: WriteRules,
) -> None:
    audit: list[dict[str, Any]] = []
    guard = Guard.from_path(write_rules(RULES), engine="python", audit=audit.append)
    now = datetime.now(UTC)
    with pytest.raises(InvalidEventError) as refused:
        guard.evaluate(payment("ahead", now + timedelta(days=31), "1.00", KNOWN))
    assert refused.value.fields == ("timestamp",)
    assert "ahead of this machine's clock" in str(refused.value)
    assert audit[-1]["record"] == "rejected"
    assert audit[-1]["errors"][0]["field"] == "timestamp"
    with guard.store.transaction() as txn:
        assert txn.account(PAYER).seen == 0, "a refused event leaves no trace in the history"
    # a clock a little behind the sender's is no reason to refuse a payment
    assert guard.evaluate(payment("skew", now + timedelta(minutes=4), "1.00", KNOWN)).action is Action.ALLOW


def test_max_future_is_a_guard_option_and_none_keeps_event_time_as_replay_does(
    write_rules: WriteRules,
) -> None:
    rules = write_rules(RULES)
    now = datetime.now(UTC)
    strict = Guard.from_path(rules, engine="python", max_future=timedelta(seconds=30))
    with pytest.raises(InvalidEventError, match="timestamp"):
        strict.evaluate(payment("a", now + timedelta(minutes=2), "1.00", KNOWN))
    replaying = Guard.from_path(rules, engine="python", max_future=None)
    assert replaying.max_future is None
    assert replaying.evaluate(payment("a", now + timedelta(days=400), "1.00", KNOWN)).action is Action.ALLOW
    assert Guard.from_path(rules).max_future == timedelta(minutes=5)


def test_the_retry_after_an_interrupt_is_interrupted_even_after_an_event_dated_a_month_ahead(
    write_rules: WriteRules,
) -> None:
    # the attack of issue 18, in event time (as a replay decides): the live guard would refuse the 1 CNY
    guard = Guard.from_path(write_rules(RULES), engine="python", max_future=None, on_error="raise")
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    guard.evaluate(payment("known", start - timedelta(days=2), "100.00", KNOWN))
    stopped = guard.evaluate(payment("scam", start, "50000.00", SCAMMER))
    assert stopped.action is Action.INTERRUPT
    guard.evaluate(payment("wipe", start + timedelta(days=31), "1.00", KNOWN))
    retry = guard.evaluate(payment("retry", start + timedelta(minutes=10), "9000.00", MULE))
    assert retry.features["recent_stops_60m"] == 1
    assert (retry.action, retry.rule_ids) == (Action.INTERRUPT, ("retry_after_stop",))


def test_two_events_that_agree_on_the_time_still_prune_as_before() -> None:
    history = AccountHistory()
    history.add_stop(0, 7)
    history.touch(40 * DAY)
    assert len(history.stops) == STOP_WIDTH, "one event far ahead prunes nothing"
    history.touch(40 * DAY + HOUR)
    assert len(history.stops) == 0, "a second one confirms the clock: the month-old stop goes"


# -- the property: whichever single event is left out, every other event's windows are intact -------------
event_times = st.lists(st.integers(0, 90 * DAY), min_size=1, max_size=30)


@given(times=event_times, ahead=st.integers(0, 400 * DAY), position=st.integers(0, 30))
def test_no_single_event_prunes_a_stop_that_the_other_events_windows_still_read(
    times: list[int], ahead: int, position: int
) -> None:
    at = position % (len(times) + 1)
    stream = [*times[:at], max(times) + ahead, *times[at:]]
    history = AccountHistory()
    for time in stream:
        history.touch(time)
        history.add_stop(time, 1)
    # an event on the others' clock, as late as the grace allows, still sees 30 days of stops
    latest = max(times) - GRACE
    kept = [history.stops[row] for row in range(0, len(history.stops), STOP_WIDTH)]
    wanted = sorted(t for t in stream if latest - 30 * DAY < t)  # 31 stops at most: under MAX_STOPS
    assert [t for t in kept if latest - 30 * DAY < t] == wanted
