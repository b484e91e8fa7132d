"""The Guard: the public API a payment pipeline calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payguard
from payguard import Action, Decision, Guard, InvalidEventError, PayguardError, RuleFileError

from . import strategies
from .conftest import make_event
from .engine.test_engines import ENGINES

WriteRules = Callable[..., Path]

SCAM_RULES = """
keyword_sets:
  safe_account: [安全账户, safe account]
lists:
  fraud_accounts: []
rules:
  - id: safe_account_phrase
    description: police never ask for a transfer to a safe account
    when: {memo: {contains_any: safe_account}}
    action: interrupt
    reason: Nobody legitimate asks you to move money to a "safe account".
  - id: fraud_payee
    description: the payee is a reported fraud account
    when: {payee.account: {in_list: fraud_accounts}}
    action: interrupt
    reason: The payee account was reported for fraud.
  - id: large
    description: a large payment
    when: {amount: {gte: 20000}}
    action: hold
    reason: Large payment held for a call-back.
  - id: watch_night
    description: shadow rule being evaluated before it is trusted
    mode: shadow
    when: {is_night: true}
    action: interrupt
    reason: night
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_each_keyword_set_answers_for_each_memo_however_often_it_recurs(
    write_rules: WriteRules, engine: str
) -> None:
    # predicates remember their answer per text: a recurring memo must keep getting its own answer
    guard = payguard.Guard.from_path(
        write_rules("""
            keyword_sets:
              safe: [安全账户]
              fee: [解冻费, unfreeze fee]
            rules:
              - {id: safe, description: d, when: {memo: {contains_any: safe}}, action: interrupt, reason: r}
              - {id: fee, description: d, when: {memo: {contains_any: fee}}, action: hold, reason: r}
              - {id: either, description: d, when: {memo: {contains_any: [safe, fee]}}, action: review, reason: r}
        """),
        engine=engine,
    )
    memos = {"转入安全账户": ("safe", "either"), "Unfreeze-Fee now": ("fee", "either"), "房租": (), None: ()}
    for n in range(3):
        for memo, fired in memos.items():
            decision = guard.evaluate(make_event(id=f"{n}-{memo}", memo=memo))
            assert decision.rule_ids == fired, memo


def test_the_readme_example(write_rules: WriteRules) -> None:
    guard = payguard.Guard.from_path(write_rules(SCAM_RULES))
    decision = guard.evaluate(make_event(amount="25000", memo="请转入安全账户"))
    assert decision.action is Action.INTERRUPT
    assert [(h.rule_id, h.action) for h in decision.hits] == [
        ("safe_account_phrase", Action.INTERRUPT),
        ("large", Action.HOLD),
    ]
    assert decision.event_id == "evt-1"
    assert (decision.ruleset.id, decision.ruleset.version) == ("test", "1")
    assert decision.ruleset.digest == guard.ruleset.digest
    assert payguard.Decision.from_dict(decision.to_dict()) == decision


def test_shadow_rules_are_reported_but_never_change_the_action(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(SCAM_RULES))
    decision = guard.evaluate(make_event(timestamp="2026-03-02T02:00:00+08:00"))
    assert decision.action is Action.ALLOW
    assert [h.rule_id for h in decision.shadow_hits] == ["watch_night"]


def test_an_invalid_event_raises_naming_the_field(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(SCAM_RULES))
    with pytest.raises(InvalidEventError) as caught:
        guard.evaluate(make_event(amount="-1"))
    assert caught.value.fields == ("amount",)


def test_the_default_engine_is_durable_where_it_imports(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(SCAM_RULES))
    assert guard.engine == ENGINES[-1]
    with pytest.raises(PayguardError, match="engine must be one of"):
        Guard.from_path(write_rules(SCAM_RULES), engine="drools")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_internal_failure_holds_the_payment_and_says_why(
    write_rules: WriteRules, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Exploding:
        """The guard's matcher, failing (compiled matchers cannot have a method patched)."""

        def __init__(self, matcher: Any) -> None:
            self.name = matcher.name

        def match_event(self, *_args: Any) -> list[int]:
            raise RuntimeError("engine exploded")

    def break_engine(guard: Guard) -> None:
        monkeypatch.setattr(guard.pipeline, "matcher", Exploding(guard.pipeline.matcher))

    guard = Guard.from_path(write_rules(SCAM_RULES), engine=engine)
    break_engine(guard)
    decision = guard.evaluate(make_event(amount="1"))
    assert decision.action is Action.HOLD
    assert decision.rule_ids == ("payguard.internal_error",)
    assert "engine exploded" not in decision.hits[0].reason  # a customer may see the reason
    assert decision.error == "RuntimeError: engine exploded"
    assert decision.engine == engine
    raising = Guard.from_path(write_rules(SCAM_RULES), engine=engine, on_error="raise")
    break_engine(raising)
    with pytest.raises(RuntimeError):
        raising.evaluate(make_event(amount="1"))


def test_set_list_replaces_a_list_atomically_while_threads_evaluate(write_rules: WriteRules) -> None:
    path = write_rules("""
        lists:
          watched: []
        rules:
          - {id: payer_listed, description: d, when: {payer.account: {in_list: watched}}, action: hold, reason: r}
          - {id: payee_listed, description: d, when: {payee.account: {in_list: watched}}, action: hold, reason: r}
    """)
    guard = Guard.from_path(path)
    first = [f"X{i}" for i in range(2000)] + ["PAYER"]
    second = [f"Y{i}" for i in range(2000)] + ["PAYEE"]
    guard.set_list("watched", first)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            guard.set_list("watched", second)
            guard.set_list("watched", first)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        seen = [
            guard.evaluate(
                make_event(id=f"e{i}", payer={"account": "PAYER"}, payee={"account": "PAYEE"})
            ).rule_ids
            for i in range(400)
        ]
    finally:
        stop.set()
        swapper.join()
    assert set(seen) <= {("payer_listed",), ("payee_listed",)}
    with pytest.raises(PayguardError, match="unknown list 'nope'"):
        guard.set_list("nope", [])


def test_a_decision_records_the_version_of_each_list_set_at_run_time_it_read(write_rules: WriteRules) -> None:
    path = write_rules("""
        lists:
          watched: []
        rules:
          - {id: payee_listed, description: d, when: {payee.account: {in_list: watched}}, action: hold, reason: r}
    """)
    records: list[dict[str, Any]] = []
    guard = Guard.from_path(path, audit=records.append)
    before = guard.evaluate(make_event(id="e1"))
    assert (dict(before.lists), "lists" in records[-1]) == ({}, False), "as loaded: the digest covers it"
    guard.set_list("watched", ["6222000033334444"])
    guard.set_list("watched", ["6222000033334444", "6222000055556666"])
    listed = guard.evaluate(make_event(id="e2"))
    assert (listed.action, dict(listed.lists)) == (Action.HOLD, {"watched": 2})
    assert records[-1]["lists"] == {"watched": 2}
    assert Decision.from_dict(listed.to_dict()) == listed
    guard.reload(path)
    assert dict(guard.evaluate(make_event(id="e3")).lists) == {"watched": 2}, "set lists outlive a reload"


@pytest.mark.parametrize("entries", ["6217555500001111", b"6217555500001111"])
def test_set_list_refuses_a_lone_string_whose_characters_would_become_the_entries(
    write_rules: WriteRules, entries: Any
) -> None:
    # before: the string became the entries "6", "2", "1", "7"... and the account stayed unblocked
    guard = Guard.from_path(write_rules(SCAM_RULES))
    with pytest.raises(TypeError, match=r"not one (str|bytes)"):
        guard.set_list("fraud_accounts", entries)
    assert guard.lists["fraud_accounts"] == frozenset()
    guard.set_list("fraud_accounts", ["6217555500001111"])
    assert guard.evaluate(make_event(payee={"account": "6217555500001111"})).action is Action.INTERRUPT


def test_set_list_refuses_entries_that_are_not_strings_and_keeps_the_list_in_force(
    write_rules: WriteRules,
) -> None:
    guard = Guard.from_path(write_rules(SCAM_RULES))
    guard.set_list("fraud_accounts", ["A-1"])
    with pytest.raises(TypeError, match=r"every entry must be a string.*found NoneType, int"):
        guard.set_list("fraud_accounts", ["A-2", 6217555500001111, None])
    assert guard.lists["fraud_accounts"] == frozenset({"a1"})


@pytest.mark.parametrize("key", ["", "bank-secret", b"0123456789abcde"])
def test_an_audit_key_shorter_than_16_bytes_is_refused(write_rules: WriteRules, key: str | bytes) -> None:
    with pytest.raises(PayguardError, match="audit_key must be at least 16 bytes"):
        Guard.from_path(write_rules(SCAM_RULES), audit=lambda _record: None, audit_key=key)
    Guard.from_path(write_rules(SCAM_RULES), audit=lambda _record: None, audit_key="0123456789abcdef")


def test_reload_swaps_rule_sets_and_a_broken_file_keeps_the_old_one(
    tmp_path: Path, write_rules: WriteRules
) -> None:
    guard = Guard.from_path(write_rules(SCAM_RULES))
    old = guard.ruleset
    other = tmp_path / "v2.yaml"
    other.write_text(
        "ruleset: {id: test, version: '2', currency: CNY}\n"
        "rules:\n  - {id: all_review, description: d, when: {amount: {gt: 0}}, action: review, reason: r}\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("ruleset: {id: test}\n")
    with pytest.raises(RuleFileError):
        guard.reload(broken)
    assert guard.ruleset == old
    new = guard.reload(other)
    decision = guard.evaluate(make_event())
    assert (decision.ruleset, decision.rule_ids) == (new, ("all_review",))


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=strategies.rule_set_texts(), events=strategies.event_streams)
def test_evaluation_is_deterministic(
    tmp_path: Path, engine: str, text: str, events: tuple[dict[str, Any], ...]
) -> None:
    ruleset = strategies.load_generated(tmp_path / "rules.yaml", text)

    def run() -> list[tuple[Any, ...]]:
        guard = Guard(ruleset, engine=engine, on_error="raise")
        return [
            (d.action, d.hits, d.shadow_hits, dict(d.features)) for d in (guard.evaluate(e) for e in events)
        ]

    assert run() == run()


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    text=strategies.rule_set_texts(),
    extra=strategies.rule_set_texts(min_rules=1, max_rules=1),
    event=strategies.pool_events(),
)
def test_adding_a_rule_never_lowers_the_action(
    tmp_path: Path, text: str, extra: str, event: dict[str, Any]
) -> None:
    import json

    base = json.loads(text)
    added = json.loads(extra)["rules"][0] | {"id": "added"}
    bigger = {**base, "rules": [*base["rules"], added]}
    smaller = strategies.load_generated(tmp_path / "a.yaml", text)
    larger = strategies.load_generated(tmp_path / "b.yaml", json.dumps(bigger, ensure_ascii=False))
    assert Guard(larger).evaluate(event).action >= Guard(smaller).evaluate(event).action


@given(st.data())
def test_an_unknown_field_in_an_event_is_rejected_not_ignored(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(["ammount", "payee_account", "sesion", "memo2"]))
    with pytest.raises(InvalidEventError) as caught:
        payguard.parse_event(make_event(**{key: "x"}))
    assert caught.value.fields == (key,)
