"""Processes sharing a store (one SQLite file, one Redis) share what is set at run time: a list one sets
(``Guard.set_list``) is in force in every process from its next decision, and a rule set one reloads is
followed by the others after their next decision. Two store objects over the same data stand for two
processes (they share nothing but the file or the server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from payguard import Action, Guard, RedisStore, RuleSet, SQLiteStore, Store

from ..conftest import rules_text
from ..test_lifecycle import LIFECYCLE_RULES, SCAMMER, pay
from .conftest import Replicas, guards_on


def sqlite_store(request: pytest.FixtureRequest) -> Callable[[], Store]:
    path = request.getfixturevalue("tmp_path") / "shared.db"
    return lambda: SQLiteStore(path)


def redis_store(request: pytest.FixtureRequest) -> Callable[[], Store]:
    url = request.getfixturevalue("redis_server").url
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisStore(url, prefix=prefix)


@pytest.fixture(params=[pytest.param(sqlite_store, id="sqlite"), pytest.param(redis_store, id="redis")])
def opener(request: pytest.FixtureRequest) -> Callable[[], Store]:
    """A new store object over the one shared store of this test, as another process would open it."""
    make: Callable[[pytest.FixtureRequest], Callable[[], Store]] = request.param
    return make(request)


@pytest.fixture
def processes(opener: Callable[[], Store], lifecycle_rules: RuleSet) -> Iterator[Replicas]:
    """``processes(n, audit=...)``: n guards, each over a store object of its own on the shared store."""
    yield from guards_on(opener, lifecycle_rules)


def test_a_list_set_in_one_process_is_in_force_in_the_other_for_its_next_decision(
    processes: Replicas,
) -> None:
    audit: list[dict[str, Any]] = []
    first, second = processes(2, audit=audit.append)
    assert second.evaluate(pay("e1", 0, payee=SCAMMER)).action is Action.REVIEW

    first.set_list("fraud_accounts", [SCAMMER])
    stopped = second.evaluate(pay("e2", 1, payee=SCAMMER))
    assert (stopped.action, stopped.rule_ids[0]) == (Action.INTERRUPT, "listed")
    version = stopped.lists["fraud_accounts"]
    assert version >= 1
    assert audit[-1]["lists"] == {"fraud_accounts": version}, "the audit record names the list's version"
    assert second.lists["fraud_accounts"] == frozenset([SCAMMER])

    first.set_list("fraud_accounts", [])
    again = second.evaluate(pay("e3", 2, payee=SCAMMER))
    assert again.action is Action.REVIEW
    assert again.lists["fraud_accounts"] > version


def test_a_process_started_later_on_the_file_decides_with_the_list_set_before(
    processes: Replicas,
) -> None:
    (first,) = processes(1)
    first.set_list("fraud_accounts", [SCAMMER])
    (later,) = processes(1)
    assert later.list_entries("fraud_accounts") == frozenset([SCAMMER])
    assert later.evaluate(pay("e1", 0, payee=SCAMMER)).action is Action.INTERRUPT


def test_a_reload_in_one_process_is_followed_by_the_other_after_its_next_decision(
    processes: Replicas, tmp_path: Path
) -> None:
    first, second = processes(2)
    newer = tmp_path / "newer.yaml"
    newer.write_text(rules_text(LIFECYCLE_RULES.replace("gte: 20000", "gte: 500")), encoding="utf-8")
    ref = first.reload(newer)
    assert second.ruleset.digest != ref.digest
    second.evaluate(pay("e1", 0))  # decided with its own rule set, then it loads the one published
    assert second.ruleset.digest == ref.digest
    assert second.evaluate(pay("e2", 1, amount="900.00")).action is Action.HOLD


def test_a_process_started_on_files_changed_since_a_reload_runs_them_and_is_not_behind(
    processes: Replicas, opener: Callable[[], Store], tmp_path: Path
) -> None:
    audit: list[dict[str, Any]] = []
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text(LIFECYCLE_RULES.replace("gte: 20000", "gte: 500")), encoding="utf-8")
    (first,) = processes(1)
    first.reload(path)  # published: every process on the file should run what is at ``path``
    path.write_text(rules_text(LIFECYCLE_RULES.replace("gte: 20000", "gte: 800")), encoding="utf-8")
    restarted = Guard.from_path(path, engine="python", store=opener(), audit=audit.append)

    assert restarted.evaluate(pay("e1", 0, amount="700.00")).action is not Action.HOLD
    assert restarted.evaluate(pay("e2", 1, amount="900.00")).action is Action.HOLD, "it runs the files"
    assert "ruleset_in_force" not in audit[-1], "and does not say it is behind a reload they outdate"
    restarted.close()
