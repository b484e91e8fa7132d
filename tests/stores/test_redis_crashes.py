"""Crashes: a replica killed or stopped mid-event, and Redis itself restarted or killed.

Nothing half-written, never a silent decision: a killed replica's leases expire and the others go on; a
replica stopped past its lease has its commit refused and answers an audited hold; an acknowledged commit
survives a Redis restart, and a Redis crash too with ``appendfsync always``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from payguard import Action, Guard, RedisStore, RuleSet

from ..test_lifecycle import pay
from .redis_server import RedisServer
from .test_contract import history
from .test_redis_replicas import REPLICA, write_events

PAYER, PAYEE = "6222000011112222", "6222000033334444"


@pytest.fixture(scope="module")
def rules_path(lifecycle_rules_path: Path) -> Path:
    return lifecycle_rules_path


@pytest.fixture(scope="module")
def rules(lifecycle_rules: RuleSet) -> RuleSet:
    return lifecycle_rules


def replica_in_the_middle_of_an_event(
    tmp_path: Path, server: RedisServer, prefix: str, rules_path: Path, pause_for: float
) -> tuple[subprocess.Popen[bytes], Path]:
    """A replica process deciding the event ``victim``, returned once it holds the event's leases and is
    in the middle of writing its audit record (it then waits for the file ``resume``, ``pause_for``
    seconds at most)."""
    settings = {
        "url": server.url,
        "prefix": prefix,
        "store": {"lease": 0.5},
        "rules": str(rules_path),
        "events": str(write_events(tmp_path / "events.jsonl", [pay("victim", 0)])),
        "audit": str(tmp_path / "audit.jsonl"),
        "out": str(tmp_path / "out.jsonl"),
        "pause_at": "victim",
        "pause_for": pause_for,
        "paused": str(tmp_path / "paused"),
        "resume": str(tmp_path / "resume"),
    }
    (tmp_path / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(REPLICA), str(tmp_path / "settings.json")])
    deadline = time.monotonic() + 60
    while not (tmp_path / "paused").exists():
        assert process.poll() is None, "the replica ended before the event"
        assert time.monotonic() < deadline, "the replica never reached the event"
        time.sleep(0.01)
    return process, tmp_path / "out.jsonl"


@pytest.mark.slow
def test_a_replica_killed_mid_event_leaves_nothing_and_the_others_go_on_after_its_lease(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str, rules_path: Path, rules: RuleSet
) -> None:
    process, _ = replica_in_the_middle_of_an_event(tmp_path, redis_server, redis_prefix, rules_path, 60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    store = RedisStore(redis_server.url, prefix=redis_prefix)
    other = Guard(rules, engine="python", store=store, max_future=None)
    started = time.monotonic()
    assert other.evaluate(pay("next", 1)).action is Action.REVIEW
    assert store.lease_waits > 0, "it waited for the killed replica's lease"
    assert time.monotonic() - started < 5
    with store.transaction() as txn:
        assert txn.decision("victim") is None, "the killed replica's event left nothing"
    decision, fresh = other.evaluate_fresh(pay("victim", 0))
    assert (decision.action, fresh) == (Action.REVIEW, True), "and can be decided again"
    assert history(store, PAYER).seen > 0
    other.close()


@pytest.mark.slow
def test_a_replica_stopped_past_its_lease_has_its_commit_refused_and_answers_an_audited_hold(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str, rules_path: Path, rules: RuleSet
) -> None:
    process, out = replica_in_the_middle_of_an_event(tmp_path, redis_server, redis_prefix, rules_path, 60)
    process.send_signal(signal.SIGSTOP)
    try:
        store = RedisStore(redis_server.url, prefix=redis_prefix)
        other = Guard(rules, engine="python", store=store, max_future=None)
        assert other.evaluate(pay("meanwhile", 1)).action is Action.REVIEW, "decided once the lease expired"
        assert store.lease_waits > 0
    finally:
        (tmp_path / "resume").touch()  # the replica goes on from where it was stopped once continued
        process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=60) == 0
    line = json.loads(out.read_text().splitlines()[0])
    assert line["decision"]["action"] == "hold"
    assert "expired before the commit" in line["decision"]["error"]
    records = [json.loads(r) for r in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["event_id"], r["action"]) for r in records] == [("victim", "review"), ("victim", "hold")]
    with store.transaction() as txn:
        assert txn.decision("victim") is None
    after = other.evaluate(pay("after", 2))
    assert after.features["payee_payment_count"] == 1, "only the other replica's payment counts"
    other.close()


def decide_then_crash(
    tmp_path: Path, rules: RuleSet, appendfsync: str, sig: int
) -> tuple[RedisServer, Guard, list[Any]]:
    server = RedisServer(tmp_path, appendfsync=appendfsync)
    guard = Guard(rules, engine="python", store=RedisStore(server.url, timeout=0.5), max_future=None)
    acknowledged = [guard.evaluate(pay(f"e{n}", n, amount=f"{n + 1}.00")) for n in range(60)]
    assert all(decision.error is None for decision in acknowledged)
    server.stop(sig)
    return server, guard, acknowledged


@pytest.mark.slow
@pytest.mark.parametrize(
    ("appendfsync", "sig"),
    [("everysec", signal.SIGTERM), ("everysec", signal.SIGKILL), ("always", signal.SIGKILL)],
    ids=["restarted-everysec", "killed-everysec", "killed-always"],
)
def test_no_acknowledged_commit_is_lost_when_redis_restarts(
    tmp_path: Path, rules: RuleSet, appendfsync: str, sig: int
) -> None:
    server, guard, acknowledged = decide_then_crash(tmp_path, rules, appendfsync, sig)
    during = guard.evaluate(pay("during-the-outage", 100))
    assert during.action is Action.HOLD
    assert "is unreachable" in (during.error or "")

    server.start()
    try:
        with guard.store.transaction() as txn:
            for decision in acknowledged:
                assert txn.decision(decision.event_id) == decision
            assert txn.decision("during-the-outage") is None
        assert history(guard.store, PAYER).out_rows(0, 10**10).count() == len(acknowledged)
        after = guard.evaluate(pay("after", 120))
        assert after.features["payee_payment_count"] == len(acknowledged)
    finally:
        guard.close()
        server.stop()
