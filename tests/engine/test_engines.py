"""The matching engines: durable_rules behind its adapter, and the Python matcher that is its oracle.

Each item of the durable_rules pitfall checklist (shared/docs/durable_rules.md §7.3) that applies to the
single-fact design has a test here.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import payguard
from payguard import Guard, RuleFileError, load_rule_set

from .. import strategies
from ..conftest import HEADER, ROOT, make_event

try:
    import durable_rules_engine  # noqa: F401

    ENGINES = ["python", "durable"]
except ImportError:  # Python 3.13: only the Python engine exists
    ENGINES = ["python"]

needs_durable = pytest.mark.skipif("durable" not in ENGINES, reason="durable-rules does not import here")
WriteRules = Callable[..., Path]


def threshold_rules(count: int) -> str:
    return "rules:\n" + "".join(
        f"  - {{id: r{i}, description: d, when: {{payer.age: {{gte: {i}}}}}, action: review, reason: r{i}}}\n"
        for i in range(count)
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("count", [3, 60, 150])
def test_an_event_matching_k_rules_reports_all_k(engine: str, count: int, write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(threshold_rules(count)), engine=engine, on_error="raise")
    decision = guard.evaluate(make_event(payer={"age": 150}))
    assert decision.rule_ids == tuple(f"r{i}" for i in range(count))
    assert guard.evaluate(make_event(id="e2", payer={"age": 1})).rule_ids == ("r0", "r1")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_event_matching_nothing_is_a_normal_allow(engine: str, write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(threshold_rules(3)), engine=engine, on_error="raise")
    decision = guard.evaluate(make_event(payer={"age": None}))
    assert (decision.action, decision.hits, decision.error) == (payguard.Action.ALLOW, (), None)


@pytest.mark.parametrize("engine", ENGINES)
def test_rules_of_only_negative_conditions_fire_once_and_never_loop(
    engine: str, write_rules: WriteRules
) -> None:
    path = write_rules("""
        rules:
          - {id: no_memo, description: d, when: {memo: {exists: false}}, action: review, reason: r}
          - {id: not_atm, description: d, when: {not: {channel: atm}}, action: review, reason: r}
          - {id: ne_only, description: d, when: {channel: {ne: atm}}, action: review, reason: r}
    """)
    guard = Guard.from_path(path, engine=engine, on_error="raise")
    assert guard.evaluate(make_event(memo=None, channel=None)).rule_ids == ("no_memo", "not_atm")
    assert guard.evaluate(make_event(id="e2", memo="hi", channel="atm")).rule_ids == ()
    assert guard.evaluate(make_event(id="e3", memo="hi", channel="wallet")).rule_ids == ("not_atm", "ne_only")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_or_whose_alternatives_all_hold_reports_its_rule_once(
    engine: str, write_rules: WriteRules
) -> None:
    path = write_rules("""
        rules:
          - id: either
            description: d
            when: {any: [{payer.age: {gt: 1}}, {payer.age: {gt: 2}}, {amount: {gt: 1}}]}
            action: hold
            reason: r
    """)
    guard = Guard.from_path(path, engine=engine, on_error="raise")
    assert guard.evaluate(make_event(payer={"age": 50})).rule_ids == ("either",)


@pytest.mark.parametrize("engine", ENGINES)
def test_money_is_compared_in_minor_units_of_the_rule_currency(engine: str, write_rules: WriteRules) -> None:
    path = write_rules("""
        rules:
          - {id: big, description: d, when: {amount: {gt: "20000.00"}}, action: hold, reason: r}
    """)
    guard = Guard.from_path(path, engine=engine, on_error="raise")
    assert guard.evaluate(make_event(id="a", amount="20000.01")).rule_ids == ("big",)
    assert guard.evaluate(make_event(id="b", amount="20000.00")).rule_ids == ()
    assert guard.evaluate(make_event(id="c", amount="999999999999.99")).rule_ids == ("big",)
    # a currency without a rate meets no money test: the rule stays silent, the payment fails closed
    unrated = guard.evaluate(make_event(id="d", amount="50000", currency="USD"))
    assert unrated.rule_ids == ("payguard.unrated_currency",)
    assert unrated.action == "review"


def run_isolated(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; a hang fails the test instead of freezing the suite."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@needs_durable
def test_rule_sets_that_hang_raw_durable_rules_load_and_evaluate(tmp_path: Path) -> None:
    # Raw durable_rules hangs at create_ruleset with more than 511 conditions under one node (6 rules with
    # 100-value lists), and fails with error 303 when one fact satisfies more than 64 alternatives.
    lists = "\n".join(
        f"  - {{id: mcc{i}, description: d, when: {{attributes.mcc: {{in: [{', '.join(f'{i * 100 + j}' for j in range(100))}]}}}},"
        f" action: review, reason: r}}"
        for i in range(6)
    )
    thresholds = "\n".join(
        f"  - {{id: t{i}, description: d, when: {{amount: {{gt: {i}}}}}, action: review, reason: r}}"
        for i in range(600)
    )
    path = tmp_path / "wide.yaml"
    path.write_text(HEADER + "attributes: {mcc: int}\nrules:\n" + lists + "\n" + thresholds + "\n")
    result = run_isolated(f"""
        import payguard
        guard = payguard.Guard.from_path({str(path)!r}, engine="durable", on_error="raise")
        event = {{"id": "e", "timestamp": "2026-01-01T00:00:00Z", "amount": "1000000", "currency": "CNY",
                 "payer": {{"account": "A"}}, "payee": {{"account": "B"}}, "attributes": {{"mcc": 250}}}}
        print(len(guard.evaluate(event).hits))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "601"  # mcc2 and all 600 thresholds


def test_regular_expressions_are_checked_at_load_and_long_lists_become_predicates(
    write_rules: WriteRules,
) -> None:
    values = ", ".join(str(i) for i in range(20))
    path = write_rules(f"""
        rules:
          - {{id: r1, description: d, when: {{payer.age: {{in: [{values}]}}}}, action: review, reason: r}}
          - {{id: r2, description: d, when: {{memo: {{matches: "(?<=a)b"}}}}, action: review, reason: r}}
    """)
    with pytest.raises(RuleFileError) as caught:
        load_rule_set(path)
    assert [p.code for p in caught.value.problems] == ["invalid_regex"]
    path.write_text(path.read_text().replace("(?<=a)b", "(?i)ab"))
    for engine in ENGINES:
        guard = Guard.from_path(path, engine=engine, on_error="raise")
        assert guard.evaluate(make_event(payer={"age": 19}, memo="xAB")).rule_ids == ("r1", "r2")


@needs_durable
def test_an_interrupted_match_leaves_the_engine_usable(
    write_rules: WriteRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payguard._engine import durable as _durable

    real = _durable._engine.complete_and_start_action
    calls = {"n": 0}

    def flaky(handle: int, state: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(handle, state)

    # patched before the guard exists: the matcher reads the C functions once
    monkeypatch.setattr(_durable._engine, "complete_and_start_action", flaky)
    guard = Guard.from_path(write_rules(threshold_rules(5)), engine="durable", on_error="raise")
    with pytest.raises(KeyboardInterrupt):
        guard.evaluate(make_event(payer={"age": 100}))
    assert len(guard.evaluate(make_event(id="again", payer={"age": 100})).hits) == 5
    assert calls["n"] > 2


@needs_durable
def test_a_match_waits_while_another_thread_holds_the_matcher(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(threshold_rules(3)), engine="durable", on_error="raise")
    compiled = guard.pipeline
    token = compiled.matcher._take()  # as a match in progress on another thread holds it
    done = threading.Event()
    found: dict[str, tuple[str, ...]] = {}

    def work() -> None:
        found["rules"] = guard.evaluate(make_event(payer={"age": 1})).rule_ids
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    assert not done.wait(0.3)
    compiled.matcher._give(token)
    assert done.wait(30)
    worker.join()
    assert found["rules"] == ("r0", "r1")


@needs_durable
def test_a_fact_left_in_the_session_is_retracted_before_the_next_one(write_rules: WriteRules) -> None:
    # A round whose retract failed would leave its fact stored under the id every fact has; durable_rules
    # then reports the next fact "already observed". The matcher retracts the old one and asserts again.
    from payguard._engine import durable as _durable

    guard = Guard.from_path(write_rules(threshold_rules(3)), engine="durable", on_error="raise")
    compiled = guard.pipeline
    handle = compiled.matcher.handles[0]
    code, state = _durable._engine.assert_fact(handle, _durable.encode_fact({"f0": 50}))
    assert code == 0
    result = _durable._engine.start_action_for_state(handle, state)
    while result and _durable._engine.complete_and_start_action(handle, state):
        pass
    assert guard.evaluate(make_event(payer={"age": 1})).rule_ids == ("r0", "r1")
    assert guard.evaluate(make_event(id="e2", payer={"age": 2})).rule_ids == ("r0", "r1", "r2")


@needs_durable
def test_a_fact_durable_rules_refuses_raises_an_engine_error(
    write_rules: WriteRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payguard._engine import durable as _durable

    def refuse(handle: int, text: str) -> Any:
        raise _durable._engine.error("Could not assert fact, error code: 204")

    monkeypatch.setattr(_durable._engine, "assert_fact", refuse)
    guard = Guard.from_path(write_rules(threshold_rules(3)), engine="durable", on_error="raise")
    with pytest.raises(payguard.EngineError, match=r"failed to assert the fact: .*204"):
        guard.evaluate(make_event(payer={"age": 1}))


@needs_durable
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=strategies.rule_set_texts(), events=strategies.event_streams)
def test_both_engines_return_exactly_the_same_hits(
    tmp_path: Path, text: str, events: tuple[dict[str, Any], ...]
) -> None:
    ruleset = strategies.load_generated(tmp_path / "generated.yaml", text)
    python = Guard(ruleset, engine="python", on_error="raise")
    durable = Guard(ruleset, engine="durable", on_error="raise")
    for event in events:
        a, b = python.evaluate(event), durable.evaluate(event)
        assert (a.hits, a.shadow_hits, a.action, dict(a.features)) == (
            b.hits,
            b.shadow_hits,
            b.action,
            dict(b.features),
        )


@needs_durable
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    text=strategies.rule_set_texts(scoring=True),
    events=strategies.event_streams,
    snoozes=st.lists(
        st.tuples(
            st.integers(0, 7), st.sampled_from(["P-1", "P-2"]), st.sampled_from([None, *strategies.ACCOUNTS])
        ),
        max_size=4,
    ),
)
def test_both_engines_give_the_same_actions_scores_and_snoozed_rules(
    tmp_path: Path,
    text: str,
    events: tuple[dict[str, Any], ...],
    snoozes: list[tuple[int, str, str | None]],
) -> None:
    ruleset = strategies.load_generated(tmp_path / "generated.yaml", text)
    guards = [Guard(ruleset, engine=engine, on_error="raise") for engine in ("python", "durable")]
    until = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the events fall on both sides of it
    for index, payer, payee in snoozes:
        rule = ruleset.rules[index % len(ruleset.rules)]
        if rule.snoozable:
            for guard in guards:
                guard.snooze(rule.id, payer=payer, payee=payee, until=until, reason="generated")
    for event in events:
        a, b = (guard.evaluate(event) for guard in guards)
        assert (a.action, a.score, a.snoozed, a.hits, a.shadow_hits) == (
            b.action,
            b.score,
            b.snoozed,
            b.hits,
            b.shadow_hits,
        )
        enforced = sum(hit.score or 0 for hit in a.hits)
        assert a.score == enforced, "the score is the sum of the enforced hits' scores"
        assert not set(a.snoozed) & {hit.rule_id for hit in (*a.hits, *a.shadow_hits)}


def engine_safe(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is int:
        return -(2**63) <= value < 2**63
    return type(value) in (str, bool)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=strategies.rule_set_texts(), events=strategies.event_streams)
def test_the_python_matcher_finds_on_the_event_what_it_finds_on_its_fact(
    tmp_path: Path, text: str, events: tuple[dict[str, Any], ...]
) -> None:
    # The guard's Python engine computes the fact's values straight into local variables; the fact itself
    # is what durable_rules is given and what the differential test above compares. Same rules, same hits.
    ruleset = strategies.load_generated(tmp_path / "generated.yaml", text)
    guard = Guard(ruleset, engine="python", on_error="raise")
    compiled, lists = guard.pipeline, guard.lists
    for data in events:
        admitted = compiled.validate(data)
        event = admitted.event
        with guard.store.transaction() as txn:
            context = compiled.features.context(admitted, txn)
            features = compiled.features.compute(context, compiled.plan.features)
            fact = compiled.plan.fact(event, features, lists, context.minor)
            found = compiled.matcher.match_event(event, features, lists, context.minor)
            assert found == compiled.matcher.match(fact)
            # what durable_rules' adapter relies on: only the types it compares correctly
            assert all(engine_safe(value) for value in fact.values()), fact
            compiled.features.commit(
                context, payguard.Action.REVIEW if found else payguard.Action.ALLOW, None
            )


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    text=strategies.rule_set_texts(min_rules=4),
    events=st.lists(strategies.pool_events(), min_size=40, max_size=80),
)
def test_eight_threads_decide_exactly_as_one_thread(
    tmp_path: Path, engine: str, text: str, events: list[dict[str, Any]]
) -> None:
    ruleset = strategies.load_generated(tmp_path / "generated.yaml", text)
    # Stateless view: feature values depend on order, so each event gets its own payer here.
    unique = [
        {**e, "id": f"t{i}", "payer": {**e["payer"], "account": f"P-{i}"}} for i, e in enumerate(events)
    ]
    single = Guard(ruleset, engine=engine, on_error="raise")
    expected = {e["id"]: single.evaluate(e).hits for e in unique}
    shared = Guard(ruleset, engine=engine, on_error="raise")
    results: dict[str, Any] = {}
    stop = threading.Event()

    def busy() -> None:  # an unrelated thread, as in a web server
        while not stop.is_set():
            sum(range(1000))

    def work(chunk: list[dict[str, Any]]) -> None:
        for event in chunk:
            results[event["id"]] = shared.evaluate(event).hits

    noise = threading.Thread(target=busy)
    noise.start()
    workers = [threading.Thread(target=work, args=(unique[i::8],)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    noise.join()
    assert results == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_tiny_and_huge_floats_in_rules_and_events_match_in_both_engines(
    engine: str, write_rules: WriteRules
) -> None:
    # Python writes these floats with a bare exponent (1e-07), which durable_rules' parser refuses.
    path = write_rules("""
        rules:
          - {id: fresh_device, description: d, when: {session.device_age_hours: {lt: 0.000001}}, action: hold, reason: r}
          - {id: old_device, description: d, when: {session.device_age_hours: {gt: 1.0e+16}}, action: review, reason: r}
    """)
    guard = Guard.from_path(path, engine=engine, on_error="raise")
    ages = {
        5e-324: ("fresh_device",),
        1e-07: ("fresh_device",),
        2e-06: (),
        1e17: ("old_device",),
        1e300: ("old_device",),
    }
    for n, (age, expected) in enumerate(ages.items()):
        assert guard.evaluate(make_event(id=f"e{n}", session={"device_age_hours": age})).rule_ids == expected


fact_values = st.one_of(
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-07, 5e-324, -2.5e-09, 1e17, 0.0001]),  # what Python and orjson write with exponents
    st.text(max_size=30),
    st.sampled_from([":1e5", '":1e5', "a\\", 'x":null', "中文", "\u2028"]),
)


@given(st.dictionaries(st.from_regex(r"\A[fp][0-9]{1,2}\Z"), fact_values, max_size=12))
def test_the_fast_fact_encoder_writes_what_the_careful_one_writes(fact: dict[str, Any]) -> None:
    import json

    from payguard._engine.durable import encode_fact, encode_fact_carefully

    fast, careful = encode_fact(fact), encode_fact_carefully(fact)
    assert json.loads(fast) == json.loads(careful) == {"t": "tx", "sid": "0", "id": "f", **fact}
    # durable_rules' parser refuses an exponent without a decimal point before it (strings skipped); the
    # matcher sends the careful form when it refuses the fast one, and the careful form never has one
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|:-?[0-9]+[eE]', careful)
    assert all(token.startswith('"') for token in tokens)


@needs_durable
def test_the_shipped_rules_over_many_chunks_match_the_demo_day_as_the_python_engine() -> None:
    # The shipped rules fill several durable_rules chunks, and each chunk is sent only the keys its rules
    # read: a key left out of a chunk that reads it would change that chunk's hits.
    from payguard._synthetic import demo_day

    ruleset = load_rule_set(ROOT / "rules")
    durable, python = Guard(ruleset, engine="durable"), Guard(ruleset, engine="python")
    matcher = durable.pipeline.matcher
    assert len(matcher.handles) > 1
    for keys, definition in zip(matcher.keys, matcher.definitions, strict=True):
        named = set().union(*(_tested(rule["all"][0]["m"]) for rule in definition.values()))
        assert set(keys) == named - {"t"}  # ``t``, the discriminator, is in every fact's head
    history, events = demo_day(customers=120)
    for guard in (durable, python):
        guard.record(history)
    fired = 0
    for event in events:
        a, b = durable.evaluate(event), python.evaluate(event)
        assert (a.hits, a.action) == (b.hits, b.action), event["id"]
        fired += bool(a.hits)
    assert fired >= 10  # the day's scams and reviews: the chunks were exercised


def _tested(expression: Any) -> set[str]:
    """The fact keys a durable_rules expression tests."""
    found: set[str] = set()
    for key, value in expression.items():
        if key in ("$and", "$or"):
            found = found.union(*map(_tested, value))
        elif key.startswith("$"):
            found |= set(value)
        else:
            found.add(key)
    return found
