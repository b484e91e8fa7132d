"""A server without Redis 7 Functions: Redis 6.2, which has no ``FUNCTION`` command, a 7.0 server with it
renamed away, and a managed service whose user may not run it. The store falls back to EVALSHA scripts and
decides as it does with Functions. (The whole store contract runs on Redis 6.2 too: test_contract.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from payguard import Guard, MemoryStore, RedisStore, StoreError, load_rule_set

from ..conftest import ROOT
from .redis_server import RedisServer

RULES = ROOT / "rules"
IGNORED = {"decision_id": None, "evaluated_at": None}


@pytest.fixture(scope="module")
def like_redis_6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis6"), options=("--rename-command", "FUNCTION", ""))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose user ``payguard`` may run every command but ``FUNCTION``; that user's URL."""
    server = RedisServer(tmp_path_factory.mktemp("managed"))
    admin = server.client()
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "payguard", "on", ">a-password", "~*", "&*", "+@all", "-function"
    )
    admin.close()
    yield f"redis://payguard:a-password@127.0.0.1:{server.port}/0"
    server.stop()


def demo_day() -> list[dict[str, object]]:
    lines = (ROOT / "examples" / "transactions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def decided_as_in_memory(store: RedisStore) -> list[str]:
    """The ids of the demo day's events the store's guard decides otherwise than one in memory."""
    rules = load_rule_set(RULES)
    over_redis = Guard(rules, engine="python", store=store, max_future=None)
    in_memory = Guard(rules, engine="python", store=MemoryStore(), max_future=None)
    differing = [
        str(event["id"])
        for event in demo_day()
        if over_redis.evaluate(event).to_dict() | IGNORED != in_memory.evaluate(event).to_dict() | IGNORED
    ]
    over_redis.close()
    return differing


def test_on_a_server_without_the_function_command_the_store_runs_scripts_and_decides_as_in_memory(
    like_redis_6: RedisServer,
) -> None:
    with pytest.raises(redis.ResponseError, match="unknown command"):
        like_redis_6.client().execute_command("FUNCTION", "LIST")  # type: ignore[no-untyped-call]
    store = RedisStore(like_redis_6.url, prefix="six:")
    assert store.functions is False
    assert decided_as_in_memory(store) == []


def test_on_redis_6_2_the_store_runs_scripts_and_decides_as_in_memory(redis_6_2_server: RedisServer) -> None:
    version = redis_6_2_server.client().info("server")["redis_version"]
    assert str(version).startswith("6.2."), version
    store = RedisStore(redis_6_2_server.url, prefix="six-two:")
    assert store.functions is False
    assert decided_as_in_memory(store) == []


def test_a_user_who_may_not_run_function_gets_scripts_and_the_same_decisions(managed: str) -> None:
    store = RedisStore(managed, prefix="managed:")
    assert store.functions is False
    assert decided_as_in_memory(store) == []


def test_scripts_the_server_forgot_are_loaded_again_by_the_next_call(like_redis_6: RedisServer) -> None:
    store = RedisStore(like_redis_6.url, prefix="flushed:")
    guard = Guard(load_rule_set(RULES), engine="python", store=store, max_future=None)
    first, second = demo_day()[:2]
    decided = guard.evaluate(first)
    assert decided.error is None
    like_redis_6.client().script_flush()  # as a restarted server without persistence would
    decision = guard.evaluate(second)
    assert decision.error is None, decision.error
    assert guard.evaluate(first).decision_id == decided.decision_id  # remembered, not decided again
    guard.close()


def test_a_store_that_must_use_functions_where_there_are_none_holds_each_payment_saying_why(
    like_redis_6: RedisServer,
) -> None:
    store = RedisStore(like_redis_6.url, prefix="wanted:", functions=True)
    guard = Guard(load_rule_set(RULES), engine="python", store=store, max_future=None)
    decision = guard.evaluate(demo_day()[0])
    assert decision.action.value == "hold"
    assert decision.error is not None
    assert "cannot load Functions" in decision.error
    assert f"127.0.0.1:{like_redis_6.port}" in decision.error
    with pytest.raises(StoreError, match="cannot load Functions"):
        store.call("release", ["wanted:k:x"], ["token"])
    guard.close()
