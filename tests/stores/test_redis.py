"""What only the Redis store has to do: be one truth for many replicas, and fail safe.

Two ``RedisStore`` objects over one server stand for two replica processes (they share nothing but the
server); ``test_redis_replicas.py`` runs real replica processes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payguard import (
    Action,
    Guard,
    MemoryStore,
    PayguardError,
    RedisStore,
    RuleSet,
    StoreError,
    UnknownDecisionError,
)
from payguard._stores.codec import decode, encode
from payguard._stores.history import INBOUND_WIDTH, MAX_INBOUND, AccountHistory

from ..conftest import ROOT, rules_text
from ..test_lifecycle import LIFECYCLE_RULES, SCAMMER, pay
from .conftest import Replicas, guards_on
from .redis_server import RedisServer, free_port
from .test_contract import history

PAYEE = "6222000033334444"


@pytest.fixture
def replicas(redis_server: RedisServer, redis_prefix: str, lifecycle_rules: RuleSet) -> Iterator[Replicas]:
    """``replicas(n, audit=..., store={...})``: n guards, each over its own RedisStore on the one server."""
    yield from guards_on(
        lambda **store: RedisStore(redis_server.url, prefix=redis_prefix, **store), lifecycle_rules
    )


# -- the history codec ----------------------------------------------------------------------------------
def test_the_binary_codec_round_trips_the_histories_of_the_demo_day() -> None:
    guard = Guard.from_path(ROOT / "rules", engine="python", max_future=None)
    lines = (ROOT / "examples" / "transactions.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        guard.evaluate(json.loads(line))
    store = guard.store
    assert isinstance(store, MemoryStore)
    assert len(store.accounts) > 50
    for account in store.accounts.values():
        assert decode(encode(account)) == account
    snoozed = AccountHistory(snoozes=(("large", 0, 1_000, "verified by phone"),), device_time=5)
    assert decode(encode(snoozed)) == snoozed


def test_bytes_that_are_not_a_history_are_a_store_error_naming_the_account(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    client = redis_server.client()
    client.set(f"{redis_prefix}h:6222000011119999", b"garbage")
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    with pytest.raises(StoreError, match=r"account …9999 cannot be read: not an account history"):
        history(store, "6222000011119999")
    store.close()
    client.close()


# -- lists and resolutions across replicas ---------------------------------------------------------------
def test_every_replica_shows_the_list_one_of_them_set_before_deciding_anything(replicas: Replicas) -> None:
    first, second = replicas(2)
    first.set_list("fraud_accounts", [SCAMMER])
    assert second.lists["fraud_accounts"] == first.lists["fraud_accounts"] == frozenset([SCAMMER])
    assert second.list_versions == first.list_versions
    assert second.list_entries("fraud_accounts") == frozenset([SCAMMER])


def test_a_hold_made_on_one_replica_is_released_on_the_other_once(replicas: Replicas) -> None:
    first, second = replicas(2)
    held = first.evaluate(pay("e1", 0, amount="50000.00"))
    assert held.action is Action.HOLD
    second.release(held.decision_id)
    with first.store.transaction() as txn:
        record = txn.held(held.decision_id)
    assert record is not None
    assert record["resolution"]["outcome"] == "legitimate", "the first replica sees the second's resolution"
    again = first.resolve(held.decision_id, "legitimate")
    assert again.to_dict() == record["resolution"], "resolving again returns the first resolution"
    with pytest.raises(PayguardError, match="resolved"):
        first.resolve(held.decision_id, "fraud")
    assert len(history(first.store, PAYEE).inbound) // INBOUND_WIDTH == 1, "credited once"
    with pytest.raises(UnknownDecisionError):
        second.release("no-such-decision")


def test_two_replicas_resolving_one_hold_at_once_resolve_it_once(replicas: Replicas) -> None:
    from .test_contract import in_threads

    guards = replicas(4)
    held = guards[0].evaluate(pay("e1", 0, amount="50000.00"))
    resolutions = in_threads(4, lambda n: guards[n].resolve(held.decision_id, "legitimate"))
    assert len({r.resolved_at for r in resolutions}) == 1, "one resolution, returned to all four"
    assert len(history(guards[0].store, PAYEE).inbound) // INBOUND_WIDTH == 1


def test_a_payee_resolved_as_fraud_on_one_replica_is_interrupted_on_the_other(replicas: Replicas) -> None:
    first, second = replicas(2)
    held = first.evaluate(pay("e1", 0, amount="50000.00", payee=SCAMMER))
    first.resolve(held.decision_id, "fraud")
    decision = second.evaluate(pay("e2", 5, payee=SCAMMER))
    assert decision.action is Action.INTERRUPT
    assert decision.listed > 0, "the decision names the version of the accounts resolutions listed"


# -- failures: an audited hold naming the failure, nothing half-written ---------------------------------
def test_an_unreachable_redis_gives_audited_holds_until_it_answers(
    tmp_path: Path, lifecycle_rules: RuleSet
) -> None:
    server = RedisServer(tmp_path)
    url = server.url
    server.stop()
    audit: list[dict[str, Any]] = []
    guard = Guard(
        lifecycle_rules,
        engine="python",
        store=RedisStore(url, timeout=0.5),
        audit=audit.append,
        max_future=None,
    )
    decision = guard.evaluate(pay("e1", 0))
    assert decision.action is Action.HOLD
    assert decision.error is not None
    assert f"Redis store {url} is unreachable (ConnectionError: " in decision.error
    assert audit[-1]["action"] == "hold"
    assert audit[-1]["error"] == decision.error

    server.start()  # same port: the store connects again on its own
    try:
        assert guard.evaluate(pay("e0", 0)).action is Action.REVIEW
        server.stop()
        down = guard.evaluate(pay("e1", 0))
        assert "is unreachable (ConnectionError: " in (down.error or ""), "and once it had answered"
        server.start()
        decision, fresh = guard.evaluate_fresh(pay("e1", 0))
        assert (decision.action, fresh) == (Action.REVIEW, True), (
            "the held event was not stored: decided afresh"
        )
    finally:
        guard.close()
        server.stop()


def test_a_redis_that_stops_answering_gives_audited_holds_and_the_store_recovers_when_it_answers(
    tmp_path: Path, lifecycle_rules: RuleSet
) -> None:
    server = RedisServer(tmp_path)
    guard = Guard(
        lifecycle_rules,
        engine="python",
        store=RedisStore(server.url, timeout=0.3, lease=0.5, wait=3.0),
        max_future=None,
    )
    try:
        assert guard.evaluate(pay("e0", 0)).action is Action.REVIEW
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # up, but answering nothing
        try:
            stalled = guard.evaluate(pay("e1", 1))
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert stalled.action is Action.HOLD
        assert f"Redis store {server.url} is unreachable (TimeoutError: " in (stalled.error or "")
        # the stalled request's reply, if it comes, is not read as the next one's: the connection was dropped
        decision, fresh = guard.evaluate_fresh(pay("e1", 1))
        assert (decision.action, fresh, decision.error) == (Action.REVIEW, True, None)
        assert decision.features["payee_payment_count"] == 1, "e0 counted once, the held e1 not at all"
    finally:
        guard.close()
        server.stop()


def test_a_forked_child_decides_on_a_connection_of_its_own(replicas: Replicas) -> None:
    # the parent's thread connection is inherited by a child; were both to read the one socket, each would
    # take the other's replies (a decision on another event's histories); and its lease tokens are its own
    (guard,) = replicas(1, store={"lease": 10.0, "wait": 15.0})  # a child slow to start is not a failure
    assert guard.evaluate(pay("before", 0)).error is None
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's coverage is not collected)
        other = {"payer": {"account": "6222000011112222"}, "payee": "6222000055556666"}
        decided = [guard.evaluate(pay(f"c{n}", n, **other)) for n in range(60)]
        os._exit(0 if all(d.error is None and d.event_id == f"c{n}" for n, d in enumerate(decided)) else 1)
    decided = [guard.evaluate(pay(f"p{n}", n + 1)) for n in range(60)]
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's decisions were all made, each its own"
    assert all(d.error is None and d.event_id == f"p{n}" for n, d in enumerate(decided))
    # the payee's payments before the last: "before" and the 59 others, each counted once
    assert decided[-1].features["payee_payment_count"] == 60


def test_a_redis_url_asking_for_resp3_is_served_by_redis_py_and_decides_the_same(
    redis_server: RedisServer, redis_prefix: str, lifecycle_rules: RuleSet
) -> None:
    decisions = []
    for n, query in enumerate(("", "?protocol=3")):
        store = RedisStore(redis_server.url + query, prefix=f"{redis_prefix}{n}:")
        guard = Guard(lifecycle_rules, engine="python", store=store, max_future=None)
        decisions.append([guard.evaluate(pay(f"e{i}", i)) for i in range(5)])
        assert guard.evaluate_fresh(pay("e4", 4))[1] is False, "a repeated id is recognised"
        guard.close()
    resp2, resp3 = decisions
    assert [(d.action, d.features) for d in resp2] == [(d.action, d.features) for d in resp3]
    assert all(d.error is None for d in resp3)


def test_an_event_stalled_past_its_lease_is_refused_at_commit_and_held(replicas: Replicas) -> None:
    audit: list[dict[str, Any]] = []

    def stall(record: dict[str, Any]) -> None:
        audit.append(record)
        if record.get("event_id") == "slow" and record["record"] == "decision":
            import time

            time.sleep(0.5)  # past the lease: another replica may take the accounts meanwhile

    (slow,) = replicas(1, audit=stall, store={"lease": 0.2, "wait": 5.0})
    (other,) = replicas(1)
    decision = slow.evaluate(pay("slow", 0))
    assert decision.action is Action.HOLD
    assert decision.error is not None
    assert "expired before the commit" in decision.error
    assert [r["action"] for r in audit] == ["review", "hold"], "the record made, then the hold that stands"
    with other.store.transaction() as txn:
        assert txn.decision("slow") is None, "nothing of the refused event was written"
    assert history(other.store, PAYEE) == AccountHistory()
    assert other.evaluate(pay("slow", 0)).action is Action.REVIEW


def test_an_account_leased_by_a_stuck_replica_gives_a_hold_after_wait(
    redis_server: RedisServer, redis_prefix: str, lifecycle_rules: RuleSet
) -> None:
    client = redis_server.client()
    client.set(f"{redis_prefix}k:{PAYEE}", "a replica that never finishes", px=60_000)
    store = RedisStore(redis_server.url, prefix=redis_prefix, wait=0.3)
    guard = Guard(lifecycle_rules, engine="python", store=store, max_future=None)
    decision = guard.evaluate(pay("e1", 0))
    assert decision.action is Action.HOLD
    assert decision.error is not None
    assert "account …4444 stayed leased by another event for 0.3 s" in decision.error
    assert store.lease_waits > 1
    guard.close()
    client.close()


# -- the bulk path and bounded state ---------------------------------------------------------------------
def test_recorded_history_over_redis_is_the_history_one_process_records(replicas: Replicas) -> None:
    (guard,) = replicas(1)
    local = Guard(guard.rules, engine="python", max_future=None)
    events = [pay(f"h{n}", n, payee=f"62220000777700{n % 7:02}", amount=f"{n + 1}.00") for n in range(1200)]
    trips = guard.store.round_trips  # type: ignore[attr-defined]
    assert guard.record(events) == local.record(events) == 1200
    assert guard.store.round_trips - trips <= 2, "two round trips a batch of 5,000"  # type: ignore[attr-defined]
    for account in ["6222000011112222", *(f"62220000777700{n:02}" for n in range(7))]:
        assert history(guard.store, account) == history(local.store, account)


def test_a_merchant_keeps_at_most_max_inbound_credits_the_newest(replicas: Replicas) -> None:
    merchant = AccountHistory()
    for n in range(MAX_INBOUND + 300):
        merchant.add_inbound(1_000 + n, 100 + n, payer=n)
    assert len(merchant.inbound) // INBOUND_WIDTH == MAX_INBOUND
    assert merchant.inbound[0] == 1_000 + 300, "the oldest credits went"
    assert len(merchant.inbound_rows(0, 10**9).distinct(2)) == MAX_INBOUND, "distinct payers saturate"


def test_histories_and_decisions_expire_after_their_ttls(
    redis_server: RedisServer, redis_prefix: str, lifecycle_rules: RuleSet
) -> None:
    store = RedisStore(
        redis_server.url, prefix=redis_prefix, history_ttl=timedelta(hours=1), decision_ttl=timedelta(days=2)
    )
    guard = Guard(lifecycle_rules, engine="python", store=store, max_future=None)
    held = guard.evaluate(pay("e1", 0, amount="50000.00"))
    client = redis_server.client()
    assert 3_500_000 < client.pttl(f"{redis_prefix}h:6222000011112222") <= 3_600_000
    assert 2 * 86_400_000 - 60_000 < client.pttl(f"{redis_prefix}d:e1") <= 2 * 86_400_000
    assert client.pttl(f"{redis_prefix}s:{held.decision_id}") == -1, (
        "a stopped payment waits for its resolution"
    )
    client.close()
    guard.close()


# -- reloads across replicas ---------------------------------------------------------------------------
def test_a_reload_that_cannot_be_published_leaves_the_running_rule_set_in_force(
    lifecycle_rules: RuleSet, tmp_path: Path
) -> None:
    unreachable = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="gone:")
    guard = Guard(lifecycle_rules, engine="python", store=unreachable, max_future=None)
    newer = tmp_path / "newer.yaml"
    newer.write_text(rules_text(LIFECYCLE_RULES.replace("gte: 20000", "gte: 500")), encoding="utf-8")
    with pytest.raises(StoreError, match="unreachable"):
        guard.reload(newer)
    assert guard.ruleset.digest == lifecycle_rules.digest, "not swapped in where no other replica has it"
    guard.close()


def test_a_replica_that_cannot_load_the_reloaded_rule_set_keeps_its_own_and_says_so(
    replicas: Replicas, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit: list[dict[str, Any]] = []
    first, second = replicas(2, audit=audit.append)
    newer = tmp_path / "newer.yaml"
    newer.write_text(rules_text(LIFECYCLE_RULES.replace("gte: 20000", "gte: 500")), encoding="utf-8")
    ref = first.reload(newer)
    own = second.ruleset.digest
    newer.write_text(rules_text(LIFECYCLE_RULES), encoding="utf-8")  # this host's files differ
    with caplog.at_level("WARNING", logger="payguard"):
        second.evaluate(pay("e1", 0))
    assert second.ruleset.digest == own
    assert f"another process reloaded rule set {ref.digest[:12]}" in caplog.text
    decision = second.evaluate(pay("e2", 1, amount="900.00"))
    assert decision.action is Action.REVIEW, "decided with its own rules"
    behind = audit[-1]["ruleset_in_force"]
    assert (behind["digest"], behind["path"]) == (ref.digest, str(newer.resolve()))
    assert "on this host have digest" in behind["error"]
