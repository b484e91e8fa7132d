"""The partitioned replay gives the serial replay's answer: every ``--out`` line and the summary, for
1 to 7 partitions, on the demo, a generated month, a dense world where stops propagate, and small
generated worlds (Dask's synchronous scheduler: the same step functions a cluster runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payguard import Guard, load_rule_set
from payguard._backtest.dask import DaskEngine
from payguard._backtest.driver import PartitionedSummary
from payguard._backtest.plan import Setup, plan, resolve
from payguard._features.catalogue import PAYEE_SIDE
from payguard._replay import FRAUD_LIST
from payguard._synthetic import benign_traffic

from ..conftest import make_event
from .worlds import (
    DEMO,
    DENSE_RULES,
    SHIPPED_RULES,
    by_event,
    decided,
    dense_world,
    parted,
    serial,
    write_jsonl,
)

PARTITIONS = [1, 2, 3, 4, 7]


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    folder = tmp_path_factory.mktemp("dense")
    rules = folder / "rules.yaml"
    rules.write_text(DENSE_RULES, encoding="utf-8")
    return [write_jsonl(folder / "dense.jsonl", dense_world(accounts=24, events=1000))], rules


@pytest.fixture(scope="module")
def denser(dense: tuple[list[str], Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The dense world of the design notes: 40 accounts, 3 shared payees, 3,000 payments."""
    return [write_jsonl(tmp_path_factory.mktemp("denser") / "dense.jsonl", dense_world())]


@pytest.fixture(scope="module")
def dense_serial(dense: tuple[list[str], Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return serial(*dense)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    folder = tmp_path_factory.mktemp("month")
    history, events = benign_traffic(60, 11, datetime(2026, 3, 1, tzinfo=UTC), history_days=30)
    return [write_jsonl(folder / "month.jsonl", events)], [write_jsonl(folder / "history.jsonl", history)]


@pytest.fixture(scope="module")
def demo_serial() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return serial(DEMO[0], SHIPPED_RULES, history=DEMO[1])


@pytest.fixture(scope="module")
def month_serial(month: tuple[list[str], list[str]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return serial(month[0], SHIPPED_RULES, history=month[1])


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_the_demo_partitioned_decides_every_event_as_the_serial_replay(
    partitions: int, demo_serial: tuple[list[dict[str, Any]], dict[str, Any]]
) -> None:
    lines, summary = parted(DEMO[0], SHIPPED_RULES, partitions, history=DEMO[1])
    assert lines == demo_serial[0]  # in replay order, so also after sorting by event id
    assert decided(summary.to_dict()) == decided(demo_serial[1])
    changes = summary.to_dict()["iteration_changes"]
    assert summary.to_dict()["iterations"] == len(changes)
    assert changes[-1] == 0  # the last iteration verified the fixed point


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_a_generated_month_partitioned_is_the_serial_month(
    partitions: int,
    month: tuple[list[str], list[str]],
    month_serial: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    lines, summary = parted(month[0], SHIPPED_RULES, partitions, history=month[1])
    assert len(lines) > 1500
    assert by_event(lines) == by_event(month_serial[0])
    assert decided(summary.to_dict()) == decided(month_serial[1])


@pytest.fixture(scope="module")
def dense_in_three(dense: tuple[list[str], Path]) -> tuple[list[dict[str, Any]], PartitionedSummary]:
    return parted(*dense, 3)


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_a_dense_world_where_stops_propagate_partitioned_is_the_serial_world(
    partitions: int,
    dense: tuple[list[str], Path],
    dense_serial: tuple[list[dict[str, Any]], dict[str, Any]],
    dense_in_three: tuple[list[dict[str, Any]], PartitionedSummary],
) -> None:
    lines, summary = dense_in_three if partitions == 3 else parted(*dense, partitions)
    assert by_event(lines) == by_event(dense_serial[0])
    assert decided(summary.to_dict()) == decided(dense_serial[1])
    stopped = sum(1 for line in lines if line["action"] in ("hold", "interrupt"))
    assert stopped > len(lines) // 4  # many stops: the world is as dense as it claims


def test_the_dense_world_needs_several_iterations_each_changing_something_but_the_last(
    dense_in_three: tuple[list[dict[str, Any]], PartitionedSummary],
) -> None:
    _lines, summary = dense_in_three
    changes = summary.to_dict()["iteration_changes"]
    assert len(changes) >= 4
    assert changes[-1] == 0
    assert all(changes[:-1])


def test_a_single_pass_gets_decisions_of_the_dense_world_wrong(
    dense: tuple[list[str], Path], denser: list[str]
) -> None:
    rules = dense[1]
    truth = {line["event_id"]: line["action"] for line in serial(denser, rules)[0]}
    wrong = _single_pass(denser, rules, DaskEngine())
    assert len(wrong) == len(truth) == 3000
    differing = sum(1 for event_id, action in wrong.items() if truth[event_id] != action)
    assert differing > 50


def _single_pass(files: list[str], rules: Path, engine: DaskEngine) -> dict[str, str]:
    """The actions after the estimate and one deciding pass, as if that were the answer."""
    guard = Guard(load_rule_set(rules), max_future=None)
    engine.begin(guard.rules, guard.engine, 4)
    the_plan = plan(files, 4, [], (None, None, None), engine.feed)
    resolve(the_plan, engine.checked(), None)
    warm_up = bool(guard.pipeline.plan.features & PAYEE_SIDE)
    setup = Setup(guard.rules, guard.engine, 4, FRAUD_LIST, warm_up=warm_up)
    engine.load(setup)
    engine.iterate()
    engine.iterate()
    parts = engine.finish([frozenset()] * 4)
    return {line["event_id"]: line["action"] for part in parts for _seq, line in part["lines"]}


def test_the_partitioned_replay_is_deterministic_across_runs(
    dense: tuple[list[str], Path], dense_in_three: tuple[list[dict[str, Any]], PartitionedSummary]
) -> None:
    first_lines, first = dense_in_three
    second_lines, second = parted(*dense, 3)
    assert first_lines == second_lines
    assert first.to_dict()["iteration_changes"] == second.to_dict()["iteration_changes"]
    assert [[(s.accounts, s.rows, s.changes) for s in stats] for stats in first.iterations] == [
        [(s.accounts, s.rows, s.changes) for s in stats] for stats in second.iterations
    ]


SMALL_RULES = """\
ruleset: {id: small, version: "1", timezone: UTC, currency: CNY}
lists:
  fraud_accounts: []
rules:
  - {id: big, description: big, when: {amount: {gte: 800}}, action: hold, reason: r}
  - {id: fan_in, description: fan in, when: {type: transfer_out, payee_inbound_distinct_payers_24h: {gte: 3}}, action: interrupt, reason: r}
  - {id: passthrough, description: pass, when: {type: transfer_out, passthrough_ratio_24h: {gte: 0.5}}, action: hold, reason: r}
  - {id: stops, description: stops, when: {recent_stops_60m: {gte: 1}, amount: {gte: 300}}, action: review, reason: r}
  - {id: listed, description: listed, when: {payee.account: {in_list: fraud_accounts}}, action: interrupt, reason: r}
"""

ACCOUNTS = [f"6222{n:012d}" for n in range(6)]
small_event = st.tuples(
    st.sampled_from(["transfer_out", "transfer_out", "transfer_out", "transfer_in", "cash_withdrawal"]),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(1, 1200),
    st.integers(0, 48 * 60),
    st.booleans(),
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(small_event, min_size=1, max_size=30), st.integers(1, 4))
def test_small_generated_worlds_partitioned_are_the_serial_worlds(
    tmp_path: Path, events: list[tuple[str, int, int, int, int, bool]], partitions: int
) -> None:
    rules = tmp_path / "small.yaml"
    rules.write_text(SMALL_RULES, encoding="utf-8")
    data = []
    for n, (kind, payer, payee, amount, minute, fraud) in enumerate(events):
        event = make_event(
            id=f"s{n}",
            type=kind,
            timestamp=datetime(2026, 3, 2, minute // 60 % 24, minute % 60, tzinfo=UTC)
            .replace(day=2 + minute // 1440)
            .isoformat(),
            amount=f"{amount}.00",
            payer={"account": ACCOUNTS[payer]},
            payee={"account": ACCOUNTS[payee]},
        )
        event["label"] = {"is_fraud": fraud}
        data.append(event)
    files = [write_jsonl(tmp_path / "small.jsonl", data)]
    expected = serial(files, rules, feedback_delay=3600)
    lines, summary = parted(files, rules, partitions, feedback_delay=3600)
    assert lines == expected[0]
    assert decided(summary.to_dict()) == decided(expected[1])
