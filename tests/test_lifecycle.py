"""The lifecycle of a stopped payment: decide, hold or interrupt, the bank calls the customer, resolve.

And the two other ways a decision learns: scores (mitigating evidence lowers them) and snoozes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payguard import (
    Action,
    AuditError,
    Decision,
    Guard,
    MemoryStore,
    PayguardError,
    SQLiteStore,
    UnknownDecisionError,
    verify_file,
)
from payguard._lifecycle import Outcome, Resolution

from .conftest import make_event
from .engine.test_engines import ENGINES

WriteRules = Callable[..., Path]

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
PAYER = "6222000011112222"
SCAMMER = "6222999900001111"

# A hold for large payments, an interrupt for the safe-account phrase and for listed accounts, and an
# enforced rule that reads the stop features, so that every decision shows them.
LIFECYCLE_RULES = """
keyword_sets:
  safe_account: [安全账户]
lists:
  fraud_accounts: []
rules:
  - id: large
    description: a large payment is held for a call-back
    when: {amount: {gte: 20000}}
    action: hold
    reason: held for a call-back
  - id: safe_account
    description: nobody legitimate asks for a safe account
    when: {memo: {contains_any: safe_account}}
    action: interrupt
    reason: safe account
  - id: listed
    description: a payee confirmed as fraud
    when: {payee.account: {in_list: fraud_accounts}}
    action: interrupt
    reason: fraud account
  - id: after_a_stop
    description: reads the stop and payee features (review only)
    when:
      any:
        - {recent_stops_30d: {gte: 0}}
        - {last_stop_other_payee: true}
        - {recent_stops_60m: {gte: 0}}
        - {payee_payment_count: {gte: 0}}
        - {is_new_payee: true}
    action: review
    reason: reads the stop features
"""


def pay(event_id: str, minutes: int, payee: str = "6222000033334444", **fields: Any) -> dict[str, Any]:
    timestamp = (START + timedelta(minutes=minutes)).isoformat()
    return make_event(id=event_id, timestamp=timestamp, payee={"account": payee}, **fields)


@pytest.fixture(params=ENGINES)
def guard(request: pytest.FixtureRequest, write_rules: WriteRules, tmp_path: Path) -> Iterator[Guard]:
    with Guard.from_path(
        write_rules(LIFECYCLE_RULES), engine=request.param, audit=tmp_path / "audit.jsonl", on_error="raise"
    ) as guard:
        yield guard


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- resolving a stop ---------------------------------------------------------------------------------
def test_a_hold_resolved_as_legitimate_counts_as_executed_at_its_own_time_and_no_longer_as_a_stop(
    guard: Guard,
) -> None:
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    assert held.action is Action.HOLD
    before = guard.evaluate(pay("e2", 5, amount="10.00"))
    assert (before.features["recent_stops_60m"], before.features["payee_payment_count"]) == (1, 0)

    resolution = guard.resolve(held.decision_id, "legitimate", note="customer called back, buying a car")
    assert (resolution.outcome, resolution.action, resolution.executed) == (
        Outcome.LEGITIMATE,
        Action.HOLD,
        True,
    )

    after = guard.evaluate(pay("e3", 10, amount="10.00"))
    assert after.features["recent_stops_60m"] == 0
    assert after.features["recent_stops_30d"] == 0
    assert after.features["payee_payment_count"] == 2, "e1 (resolved) and e2"
    assert after.features["is_new_payee"] is False


def test_an_interrupt_can_be_resolved_too_and_release_means_legitimate(guard: Guard) -> None:
    stopped = guard.evaluate(pay("e1", 0, amount="300.00", memo="转入安全账户"))
    assert stopped.action is Action.INTERRUPT
    guard.release(stopped.decision_id)
    later = guard.evaluate(pay("e2", 1, amount="10.00"))
    assert (later.features["recent_stops_60m"], later.features["is_new_payee"]) == (0, False)


def test_a_stop_resolved_as_fraud_lists_the_payee_for_every_later_payment_and_keeps_counting(
    guard: Guard,
) -> None:
    stopped = guard.evaluate(pay("e1", 0, payee=SCAMMER, amount="300.00", memo="转入安全账户"))
    guard.resolve(stopped.decision_id, "fraud")

    retry = guard.evaluate(pay("e2", 30, payee=SCAMMER, amount="280.00", memo="还款"))
    assert retry.action is Action.INTERRUPT
    assert "listed" in retry.rule_ids
    assert retry.features["recent_stops_60m"] == 1, "the fraud stop keeps counting (the retry is the 2nd)"
    assert guard.list_entries("fraud_accounts") == frozenset(), "the store lists it, not the rule file"
    other = guard.evaluate(pay("e3", 31, payee="6222000055556666", amount="10.00"))
    assert "listed" not in other.rule_ids


def test_a_cancelled_stop_executes_nothing_and_keeps_counting(guard: Guard) -> None:
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    guard.resolve(held.decision_id, "cancelled", note="customer changed her mind")
    later = guard.evaluate(pay("e2", 5, amount="10.00"))
    assert (later.features["recent_stops_60m"], later.features["is_new_payee"]) == (1, True)
    assert "listed" not in later.rule_ids


def test_resolving_again_with_the_same_outcome_returns_the_first_resolution_and_changes_nothing(
    guard: Guard, tmp_path: Path
) -> None:
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    first = guard.resolve(held.decision_id, "legitimate")
    assert guard.resolve(held.decision_id, "legitimate") == first
    assert guard.evaluate(pay("e2", 1, amount="10.00")).features["payee_payment_count"] == 1, "executed once"
    kinds = [record["record"] for record in audit_records(tmp_path / "audit.jsonl")]
    assert kinds.count("resolution") == 1


def test_resolving_with_another_outcome_unknown_ids_and_allowed_payments_are_refused_clearly(
    guard: Guard,
) -> None:
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    guard.resolve(held.decision_id, "fraud")
    with pytest.raises(PayguardError, match=r"was resolved as fraud .* cannot be resolved as legitimate"):
        guard.resolve(held.decision_id, "legitimate")
    allowed = guard.evaluate(pay("e2", 1, payee="6222000055556666", amount="10.00"))
    assert not allowed.stopped
    with pytest.raises(PayguardError, match="was review, and only hold and interrupt") as refused:
        guard.resolve(allowed.decision_id, "legitimate")
    assert not isinstance(refused.value, UnknownDecisionError)
    with pytest.raises(UnknownDecisionError, match="no stopped payment with decision id 'nope'"):
        guard.resolve("nope", "fraud")
    with pytest.raises(PayguardError, match="outcome must be one of legitimate, fraud, cancelled"):
        guard.resolve(held.decision_id, "released")


def test_each_resolution_is_an_audit_record_in_the_same_chain_with_only_the_notes_length(
    guard: Guard, tmp_path: Path
) -> None:
    held = guard.evaluate(pay("e1", 0, payee=SCAMMER, amount="50000.00"))
    guard.resolve(held.decision_id, "fraud", note="Mrs Wang confirmed a caller posing as police")
    guard.audit.close()  # type: ignore[union-attr]
    records = audit_records(tmp_path / "audit.jsonl")
    resolution = records[-1]
    assert resolution["record"] == "resolution"
    assert (resolution["decision_id"], resolution["event_id"], resolution["outcome"]) == (
        held.decision_id,
        "e1",
        "fraud",
    )
    assert resolution["note_length"] == len("Mrs Wang confirmed a caller posing as police")
    assert resolution["listed_in"] == "fraud_accounts"
    text = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    for secret in ("Mrs Wang", SCAMMER, PAYER):
        assert secret not in text, "masked like decisions"
    assert resolution["prev_hash"] == records[-2]["hash"]
    assert verify_file(tmp_path / "audit.jsonl").ok


def test_a_resolution_whose_audit_record_fails_is_not_applied(write_rules: WriteRules) -> None:
    written: list[dict[str, Any]] = []
    failing = {"on": False}

    def sink(record: dict[str, Any]) -> None:
        if failing["on"]:
            raise OSError("disk full")
        written.append(record)

    guard = Guard.from_path(write_rules(LIFECYCLE_RULES), audit=sink, on_error="raise")
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    failing["on"] = True
    with pytest.raises(AuditError, match="resolution"):
        guard.resolve(held.decision_id, "legitimate")
    failing["on"] = False
    assert guard.evaluate(pay("e2", 1, amount="10.00")).features["payee_payment_count"] == 0, "not executed"
    assert guard.resolve(held.decision_id, "cancelled").outcome is Outcome.CANCELLED, "still unresolved"


def test_a_resolution_round_trips_through_its_json_form() -> None:
    resolution = Resolution("d-1", "e-1", Action.INTERRUPT, Outcome.FRAUD, START, note="n")
    assert Resolution.from_dict(json.loads(json.dumps(resolution.to_dict()))) == resolution


def test_resolutions_go_through_a_shared_sqlite_store_to_every_process_using_it(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    path = write_rules(LIFECYCLE_RULES)
    one = Guard.from_path(path, store=SQLiteStore(tmp_path / "shared.db"), on_error="raise")
    two = Guard.from_path(path, store=SQLiteStore(tmp_path / "shared.db"), on_error="raise")
    held = one.evaluate(pay("e1", 0, payee=SCAMMER, amount="50000.00"))
    two.resolve(held.decision_id, "fraud")  # resolved on the other guard (another store connection)
    retry = one.evaluate(pay("e2", 5, payee=SCAMMER, amount="100.00"))
    assert "listed" in retry.rule_ids
    with pytest.raises(PayguardError, match="was resolved as fraud"):
        one.resolve(held.decision_id, "legitimate")
    one.close()
    two.close()


def test_a_rule_set_names_the_list_that_confirmed_frauds_join(write_rules: WriteRules) -> None:
    guard = Guard.from_path(
        write_rules(
            """
            lists:
              confirmed: []
            rules:
              - id: large
                description: large
                when: {amount: {gte: 20000}}
                action: hold
                reason: large
              - id: confirmed_payee
                description: a payee the bank confirmed as fraud
                when: {payee.account: {in_list: confirmed}}
                action: interrupt
                reason: confirmed fraud
            """,
            header="ruleset: {id: t, version: '1', currency: CNY, confirmed_fraud_list: confirmed}\n",
        ),
        on_error="raise",
    )
    held = guard.evaluate(pay("e1", 0, payee=SCAMMER, amount="50000.00"))
    guard.resolve(held.decision_id, "fraud")
    assert guard.evaluate(pay("e2", 1, payee=SCAMMER)).action is Action.INTERRUPT


# -- scores ---------------------------------------------------------------------------------------------
SCORED_HEADER = (
    "ruleset: {id: s, version: '1', currency: CNY, scoring: {review: 20, hold: 50, interrupt: 80}}\n"
)
SCORED_RULES = """
rules:
  - id: new_payee
    description: a payee never paid before
    when: {is_new_payee: true}
    score: 30
    reason: new payee
  - id: on_call
    description: the customer is on a call
    when: {session.on_call: true}
    score: 30
    reason: on a call
  - id: caller_known
    description: the caller is in the customer's contacts (mitigating)
    when: {session.caller_in_contacts: true}
    score: -40
    reason: the caller is a contact
  - id: name_confirmed
    description: confirmation of payee matched (mitigating)
    when: {cop_result: {eq: match}}
    score: -15
    reason: name confirmed
  - id: safe_account
    description: an action and a score together
    when: {memo: {eq: "安全账户"}}
    action: interrupt
    score: 10
    reason: safe account
  - id: watch_large
    description: a shadow rule's score is reported, never added
    mode: shadow
    when: {amount: {gte: 1000}}
    score: 100
    reason: large
"""


@pytest.fixture(params=ENGINES)
def scored(request: pytest.FixtureRequest, write_rules: WriteRules) -> Guard:
    return Guard.from_path(
        write_rules(SCORED_RULES, header=SCORED_HEADER), engine=request.param, on_error="raise"
    )


@pytest.mark.parametrize(
    ("session", "cop", "score", "action"),
    [
        ({}, None, 30, Action.REVIEW),  # a new payee alone
        ({"on_call": True}, None, 60, Action.HOLD),  # a new payee while on a call
        ({"on_call": True, "caller_in_contacts": True}, None, 20, Action.REVIEW),  # the caller is a contact
        ({"on_call": True, "caller_in_contacts": True}, "match", 5, Action.ALLOW),  # and the name matched
    ],
)
def test_the_score_is_the_sum_of_the_enforced_hits_and_the_highest_threshold_it_reaches_decides(
    scored: Guard, session: dict[str, Any], cop: str | None, score: int, action: Action
) -> None:
    decision = scored.evaluate(pay("e1", 0, amount="2000.00", session=session, cop_result=cop))
    assert (decision.score, decision.action) == (score, action)
    assert [hit.score for hit in decision.shadow_hits] == [100], "reported with its score, not added"


def test_an_action_and_a_score_on_one_rule_both_count(scored: Guard) -> None:
    decision = scored.evaluate(pay("e1", 0, memo="安全账户", cop_result="match"))
    assert (decision.action, decision.score) == (Action.INTERRUPT, 30 + 10 - 15)
    assert decision.reason == "safe account"


def test_a_decision_from_a_threshold_gives_the_reason_of_the_hit_that_scored_most(scored: Guard) -> None:
    decision = scored.evaluate(pay("e1", 0, session={"on_call": True}))
    assert decision.action is Action.HOLD
    assert decision.reason in ("new payee", "on a call")
    assert {hit.rule_id: hit.score for hit in decision.hits} == {"new_payee": 30, "on_call": 30}
    assert all(hit.action is None for hit in decision.hits)


def test_scores_round_trip_through_the_decision_json_and_the_audit_record(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    with Guard.from_path(
        write_rules(SCORED_RULES, header=SCORED_HEADER), audit=tmp_path / "a.jsonl", on_error="raise"
    ) as guard:
        decision = guard.evaluate(pay("e1", 0, session={"on_call": True}))
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision
    record = audit_records(tmp_path / "a.jsonl")[-1]
    assert record["score"] == 60
    assert {hit["rule_id"]: (hit["action"], hit["score"]) for hit in record["hits"]} == {
        "new_payee": (None, 30),
        "on_call": (None, 30),
    }


def test_a_rule_set_without_scores_decides_with_score_zero(guard: Guard) -> None:
    assert guard.evaluate(pay("e1", 0, amount="50000.00")).score == 0


# -- snoozes --------------------------------------------------------------------------------------------
def test_a_snooze_keeps_a_rule_from_firing_for_one_payer_until_it_expires_in_event_time(guard: Guard) -> None:
    guard.snooze("large", payer=PAYER, until=START + timedelta(days=7), reason="analyst 42: car purchase")
    quiet = guard.evaluate(pay("e1", 0, amount="50000.00"))
    assert (quiet.action, quiet.snoozed) == (Action.REVIEW, ("large",))
    other = guard.evaluate(pay("e2", 1, amount="50000.00", payer={"account": "6222000077778888"}))
    assert other.action is Action.HOLD, "another payer is not snoozed"
    expired = guard.evaluate(pay("e3", 7 * 24 * 60, amount="50000.00"))
    assert (expired.action, expired.snoozed) == (Action.HOLD, ())


def test_a_snooze_for_one_payee_leaves_the_payers_other_payees_alone(guard: Guard) -> None:
    guard.snooze(
        "large", payer=PAYER, payee="6222 0000 3333 4444", until=START + timedelta(days=1), reason="r"
    )
    assert guard.evaluate(pay("e1", 0, amount="50000.00")).snoozed == ("large",)
    other = guard.evaluate(pay("e2", 1, payee="6222000055556666", amount="50000.00"))
    assert (other.action, other.snoozed) == (Action.HOLD, ())


def test_unsnooze_ends_a_snooze_early(guard: Guard) -> None:
    guard.snooze("large", payer=PAYER, until=START + timedelta(days=7), reason="r")
    assert guard.unsnooze("large", payer=PAYER) is True
    assert guard.unsnooze("large", payer=PAYER) is False
    assert guard.evaluate(pay("e1", 0, amount="50000.00")).action is Action.HOLD


def test_a_list_interrupt_can_never_be_snoozed_and_unknown_rules_are_named(guard: Guard) -> None:
    with pytest.raises(PayguardError, match="interrupts on a list lookup"):
        guard.snooze("listed", payer=PAYER, until=START + timedelta(days=1), reason="r")
    with pytest.raises(PayguardError, match=r"no such rule.*did you mean 'large'"):
        guard.snooze("lrage", payer=PAYER, until=START + timedelta(days=1), reason="r")
    with pytest.raises(PayguardError, match="time zone"):
        guard.snooze("large", payer=PAYER, until=datetime(2026, 3, 9), reason="r")  # noqa: DTZ001
    with pytest.raises(PayguardError, match="needs a reason"):
        guard.snooze("large", payer=PAYER, until=START + timedelta(days=1), reason=" ")


def test_snoozes_are_audited_and_decisions_say_what_they_suppressed(guard: Guard, tmp_path: Path) -> None:
    guard.snooze("large", payer=PAYER, until=START + timedelta(days=7), reason="analyst 42: car purchase")
    guard.evaluate(pay("e1", 0, amount="50000.00"))
    guard.unsnooze("large", payer=PAYER)
    guard.audit.close()  # type: ignore[union-attr]
    records = audit_records(tmp_path / "audit.jsonl")
    assert [r["record"] for r in records] == ["snooze", "decision", "unsnooze"]
    assert records[0]["rule_id"] == "large"
    assert records[0]["reason_length"] == len("analyst 42: car purchase")
    assert records[1]["snoozed"] == ["large"]
    assert PAYER not in (tmp_path / "audit.jsonl").read_text(encoding="utf-8")


def test_snoozes_live_in_the_store(write_rules: WriteRules, tmp_path: Path) -> None:
    path = write_rules(LIFECYCLE_RULES)
    first = Guard.from_path(path, store=SQLiteStore(tmp_path / "s.db"), on_error="raise")
    first.snooze("large", payer=PAYER, until=START + timedelta(days=7), reason="r")
    first.close()
    again = Guard.from_path(path, store=SQLiteStore(tmp_path / "s.db"), on_error="raise")
    assert again.evaluate(pay("e1", 0, amount="50000.00")).snoozed == ("large",)
    again.close()


# -- properties -----------------------------------------------------------------------------------------
# Reads every feature a stop or an execution changes, so that any difference shows in the decisions.
PROPERTY_RULES = """
rules:
  - id: large
    description: large payments are held
    when: {amount: {gte: 5000}}
    action: hold
    reason: large
  - id: reads
    description: reads what executions and stops change (review only)
    when:
      any:
        - {recent_stops_60m: {gte: 0}}
        - {recent_stops_30d: {gte: 0}}
        - {last_stop_other_payee: true}
        - {is_new_payee: true}
        - {payee_payment_count: {gte: 0}}
        - {out_sum_24h: {gte: 0}}
        - {amount_to_p95_90d: {gte: 0}}
        - {max_amount_365d: {gte: 0}}
        - {new_payee_count_24h: {gte: 0}}
        - {payee_first_paid_days: {gte: 0}}
        - {unseen_inbound_7d: {gte: 0}}
        - {passthrough_ratio_24h: {gte: 0}}
        - {payee_inbound_distinct_payers_24h: {gte: 0}}
    action: review
    reason: reads
"""

payers = st.sampled_from(["P-1", "P-2"])
payees = st.sampled_from(["Q-1", "Q-2", "Q-3", "P-2"])
amounts = st.sampled_from(["10", "480.50", "5000", "12000"])


@st.composite
def payment_runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Payments in time order, a few minutes to a day apart, between two payers and a few payees."""
    minutes, run = 0, []
    for index in range(draw(st.integers(1, 14))):
        minutes += draw(st.sampled_from([1, 7, 45, 300, 1500]))
        run.append(
            pay(
                f"e{index}",
                minutes,
                payee=draw(payees),
                amount=draw(amounts),
                payer={"account": draw(payers)},
            )
        )
    return run


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=payment_runs())
def test_a_stop_resolved_as_legitimate_gives_exactly_the_features_of_a_payment_recorded_as_executed(
    write_rules: WriteRules, run: list[dict[str, Any]]
) -> None:
    path = write_rules(PROPERTY_RULES)
    resolved, recorded = (Guard.from_path(path, engine="python", on_error="raise") for _ in range(2))
    for event in run:
        decision = resolved.evaluate(event)
        if decision.stopped:
            resolved.resolve(decision.decision_id, "legitimate")
            recorded.record([event])
        else:
            assert recorded.evaluate(event).features == decision.features
    assert isinstance(resolved.store, MemoryStore)
    assert isinstance(recorded.store, MemoryStore)
    assert resolved.store.accounts == recorded.store.accounts


def test_resolutions_from_eight_threads_among_evaluations_leave_the_histories_of_a_serial_run(
    write_rules: WriteRules,
) -> None:
    path = write_rules(PROPERTY_RULES)
    outcomes = ["legitimate", "fraud", "cancelled"]

    def customer(guard: Guard, number: int) -> None:
        # each thread is one customer with payees of her own; every third payment is held and resolved
        for step in range(30):
            event = pay(
                f"t{number}-{step}",
                step * 7 + number,
                payee=f"Q-{number}-{step % 4}",
                amount="12000" if step % 3 == 0 else "300",
                payer={"account": f"P-{number}"},
            )
            decision = guard.evaluate(event)
            if decision.stopped:
                guard.resolve(decision.decision_id, outcomes[step % 9 // 3])

    serial = Guard.from_path(path, engine="python", on_error="raise")
    for number in range(8):
        customer(serial, number)
    threaded = Guard.from_path(path, engine="python", on_error="raise")
    threads = [threading.Thread(target=customer, args=(threaded, n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(serial.store, MemoryStore)
    assert isinstance(threaded.store, MemoryStore)
    assert threaded.store.accounts == serial.store.accounts
    assert threaded.store.listed == serial.store.listed
    assert len(threaded.store.holds) == len(serial.store.holds) == 8 * 10
