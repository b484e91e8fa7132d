"""Many replica processes over one RedisStore decide exactly as one process would.

Each replica is a real process (``replica.py``) running a Guard over a ``RedisStore`` on the test's
``redis-server``. The store's journal gives the order in which the replicas committed; replaying the events
in that order in one process (a ``MemoryStore``) must reproduce every decision: action, hits and features.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, MemoryStore, RedisStore, load_rule_set, verify_file
from payguard._synthetic import benign_traffic

from ..conftest import ROOT, make_event
from .redis_server import RedisServer

RULES = ROOT / "rules"
REPLICA = Path(__file__).with_name("replica.py")
AUDIT_KEY = "a test audit key, 32 bytes long.."
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def dense_world(count: int, accounts: int = 6, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` transfers among a few accounts, a few seconds apart: every event contends with others for
    its payer's and its payee's histories, and large ones to new payees are held."""
    rng = random.Random(seed)
    numbers = [f"62220000{n:04}{n:04}" for n in range(accounts)]
    events = []
    for n in range(count):
        payer, payee = rng.sample(numbers, 2)
        amount = rng.choice(["12.00", "80.00", "350.00", "2400.00", "9000.00", "52000.00"])
        timestamp = (START + timedelta(seconds=7 * n)).isoformat()
        events.append(
            make_event(
                id=f"dense-{n:05}",
                timestamp=timestamp,
                amount=amount,
                payer={"account": payer, "name": "Payer"},
                payee={"account": payee, "name": "Payee", "type": "personal"},
            )
        )
    return events


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    return path


def run_replicas(
    tmp_path: Path, server: RedisServer, prefix: str, events: list[Path], threads: int, **extra: Any
) -> list[list[dict[str, Any]]]:
    """One replica process per events file, released together; each one's output lines."""
    processes, outs = [], []
    for index, path in enumerate(events):
        out = tmp_path / f"replica-{index}.jsonl"
        settings = {
            "url": server.url,
            "prefix": prefix,
            "store": {"journal": 100_000},
            "rules": str(RULES),
            "events": str(path),
            "threads": threads,
            "audit": str(tmp_path / f"audit-{index}.jsonl"),
            "audit_key": AUDIT_KEY,
            "out": str(out),
            "barrier": len(events),
            **extra,
        }
        (tmp_path / f"replica-{index}.json").write_text(json.dumps(settings), encoding="utf-8")
        processes.append(
            subprocess.Popen([sys.executable, str(REPLICA), str(tmp_path / f"replica-{index}.json")])
        )
        outs.append(out)
    for process in processes:
        assert process.wait(timeout=180) == 0
    return [[json.loads(line) for line in out.read_text().splitlines()] for out in outs]


def journal(server: RedisServer, prefix: str) -> list[str]:
    client = server.client()
    entries = client.xrange(f"{prefix}journal")
    client.close()
    return [fields[b"e"].decode() for _, fields in entries]


def serially(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The decisions one process makes of ``events`` in this order, by event id."""
    guard = Guard(load_rule_set(RULES), engine="python", store=MemoryStore(), max_future=None)
    return {event["id"]: guard.evaluate(event) for event in events}


def same_decision(replicated: dict[str, Any], serial: Any) -> bool:
    return (
        replicated["action"] == serial.action.value
        and [hit["rule_id"] for hit in replicated["hits"]] == list(serial.rule_ids)
        and replicated["features"] == dict(serial.features)
    )


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 4])
def test_two_replica_processes_decide_a_dense_world_as_one_process_would_in_their_commit_order(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str, threads: int
) -> None:
    events = dense_world(400)
    halves = [write_events(tmp_path / f"events-{n}.jsonl", events[n::2]) for n in range(2)]
    outputs = run_replicas(tmp_path, redis_server, redis_prefix, halves, threads)

    decided = {line["event_id"]: line["decision"] for out in outputs for line in out if "event_id" in line}
    assert len(decided) == len(events)
    waits = sum(out[-1]["lease_waits"] for out in outputs)
    assert waits > 0, "the replicas never contended for an account: the test would prove nothing"

    order = journal(redis_server, redis_prefix)
    assert sorted(order) == sorted(decided), "every decision committed once, in one serial order"
    assert order != [event["id"] for event in events], "commits came in another order than the events"
    by_id = {event["id"]: event for event in events}
    serial = serially([by_id[event_id] for event_id in order])
    differing = [event_id for event_id in order if not same_decision(decided[event_id], serial[event_id])]
    assert differing == []
    actions = Counter(decision["action"] for decision in decided.values())
    assert actions["allow"] > 0, actions
    assert actions["hold"] > 0, f"a world with decisions of more than one kind: {actions}"

    for index in range(2):  # each replica's audit trail verifies, with one record per decision it made
        report = verify_file(tmp_path / f"audit-{index}.jsonl", key=AUDIT_KEY)
        assert report.ok, report
        assert report.records == len(outputs[index]) - 1


@pytest.mark.slow
def test_the_same_event_ids_sent_to_two_replicas_at_once_are_decided_once_with_one_audit_record(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    events = dense_world(120, seed=11)
    both = write_events(tmp_path / "events.jsonl", events)
    outputs = run_replicas(tmp_path, redis_server, redis_prefix, [both, both], threads=2)

    answers: dict[str, list[dict[str, Any]]] = {}
    for out in outputs:
        for line in out:
            if "event_id" in line:
                answers.setdefault(line["event_id"], []).append(line)
    assert len(answers) == len(events)
    for event_id, pair in answers.items():
        assert sorted(line["fresh"] for line in pair) == [False, True], event_id
        assert pair[0]["decision"] == pair[1]["decision"], "both replicas answer with the one decision"
    audited = Counter()
    for index in range(2):
        for line in (tmp_path / f"audit-{index}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("record") == "decision":
                audited[record["event_id"]] += 1
    assert audited == Counter({event["id"]: 1 for event in events})
    assert len(journal(redis_server, redis_prefix)) == len(events), "one commit an event id"


@pytest.mark.slow
def test_a_generated_month_over_redis_is_decided_and_remembered_as_in_memory(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    history, month = benign_traffic(560, seed=5, start=START, history_days=30)
    assert len(month) >= 20_000
    rules = load_rule_set(RULES)
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    over_redis = Guard(rules, engine="python", store=store, max_future=None)
    in_memory = Guard(rules, engine="python", store=MemoryStore(), max_future=None)
    assert over_redis.record(history) == in_memory.record(history)
    differing = [
        event["id"]
        for event in month
        if over_redis.evaluate(event).to_dict() | IGNORED != in_memory.evaluate(event).to_dict() | IGNORED
    ]
    assert differing == []
    memory = in_memory.store
    assert isinstance(memory, MemoryStore)
    with store.transaction() as txn:
        different = [key for key, kept in memory.accounts.items() if txn.account(key) != kept]
    assert different == [], "the final histories are the same"
    over_redis.close()


# what differs between two guards' decisions of one event by construction
IGNORED = {"decision_id": None, "evaluated_at": None}
