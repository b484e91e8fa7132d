"""Decisions: the severity order, the combining policy and the JSON form."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payguard import Action, Decision, Hit, RulesetRef
from payguard._common.time import isoformat
from payguard._decision import most_severe

actions = st.sampled_from(list(Action))


def test_actions_are_ordered_by_severity_and_compare_as_strings() -> None:
    assert Action.ALLOW < Action.REVIEW < Action.HOLD < Action.INTERRUPT
    assert Action.HOLD == "hold"
    assert [a.stops for a in Action] == [False, False, True, True]


@given(st.lists(actions))
def test_the_most_severe_action_wins_and_none_means_allow(found: list[Action]) -> None:
    result = most_severe(found)
    assert result == (max(found, key=lambda a: a.severity) if found else Action.ALLOW)
    assert all(a <= result for a in found)


hits = st.builds(
    Hit,
    rule_id=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    action=actions,
    reason=st.text(max_size=30),
    tags=st.lists(st.text(max_size=5), max_size=2).map(tuple),
)
json_scalars = st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=10)
decisions = st.builds(
    Decision,
    decision_id=st.text(min_size=1, max_size=20),
    event_id=st.text(min_size=1, max_size=20),
    action=actions,
    hits=st.lists(hits, max_size=3).map(tuple),
    shadow_hits=st.lists(hits, max_size=2).map(tuple),
    ruleset=st.builds(RulesetRef, st.text(max_size=5), st.text(max_size=5), st.text(max_size=10)),
    engine=st.sampled_from(["python", "durable"]),
    evaluated_at=st.datetimes(timezones=st.just(UTC)),
    event_time=st.none() | st.datetimes(timezones=st.just(UTC)),
    features=st.dictionaries(st.text(max_size=8), json_scalars | st.lists(st.text(max_size=5)), max_size=4),
    error=st.none() | st.text(max_size=10),
)


@given(decisions)
def test_decisions_round_trip_through_json(decision: Decision) -> None:
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_a_decision_is_frozen() -> None:
    decision = Decision(
        "d", "e", Action.ALLOW, (), (), RulesetRef("r", "1", "x"), "python", datetime.now(UTC)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.action = Action.HOLD  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del decision.error
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.note = "x"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        decision.features["x"] = 1  # type: ignore[index]


def test_a_decision_is_built_replaced_and_compared_alike_in_both_builds() -> None:
    # uncompiled, an __init__ assigning self.x = ... ran into the frozen __setattr__: nothing was decided
    hit = Hit("r1", Action.HOLD, "new payee", ("scam",))
    features = {"amount": "100.00"}
    decision = Decision(
        "d",
        "e",
        Action.HOLD,
        (hit,),
        (),
        RulesetRef("r", "1", "x"),
        "python",
        datetime.now(UTC),
        None,
        features,
    )
    features["amount"] = "0"  # the decision keeps its own copy
    assert decision.features == {"amount": "100.00"}
    assert (decision.action, decision.hits, decision.error, decision.reason) == (
        Action.HOLD,
        (hit,),
        None,
        "new payee",
    )
    allowed = dataclasses.replace(decision, action=Action.ALLOW, hits=())
    assert (allowed.action, allowed.hits, allowed.features) == (Action.ALLOW, (), decision.features)
    assert type(allowed.features) is type(decision.features)  # read-only still
    assert allowed != decision
    assert dataclasses.replace(decision) == decision == Decision.from_dict(decision.to_dict())
    with pytest.raises(TypeError):  # its features are a read-only mapping, which has no hash
        hash(decision)


# Fixed offsets from -23:59:59.999999 to +23:59:59.999999, most of them whole minutes as real zones are,
# some with seconds or microseconds (which ``isoformat`` hands back to the standard library).
fixed_offsets = (
    st.integers(-1439, 1439).map(lambda m: timedelta(minutes=m))
    | st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
).map(timezone)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.none() | st.just(UTC) | fixed_offsets | st.timezones(),
    )
)
def test_isoformat_writes_exactly_what_the_standard_library_writes(moment: datetime) -> None:
    assert isoformat(moment) == moment.isoformat()


def test_isoformat_covers_the_forms_of_the_audit_trail() -> None:
    east = timezone(timedelta(hours=8))
    assert isoformat(datetime(2026, 3, 1, 3, 50, 42, tzinfo=east)) == "2026-03-01T03:50:42+08:00"
    assert isoformat(datetime(2026, 3, 1, 3, 5, 2, 7, tzinfo=UTC)) == "2026-03-01T03:05:02.000007+00:00"
    west = timezone(-timedelta(hours=9, minutes=30))
    assert isoformat(datetime(1970, 1, 2, 0, 0, 0, 120000, tzinfo=west)) == "1970-01-02T00:00:00.120000-09:30"


def test_isoformat_given_the_offset_validation_computed_writes_the_same_text() -> None:
    east = datetime(2026, 3, 1, 3, 50, 42, tzinfo=timezone(timedelta(hours=8)))
    west = datetime(2026, 3, 1, 3, 50, 42, 5, tzinfo=timezone(timedelta(hours=-5)))
    for moment in (east, west):
        assert isoformat(moment, moment.utcoffset()) == isoformat(moment) == moment.isoformat()
