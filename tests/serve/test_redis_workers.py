"""``payguard serve --workers 2`` over a shared store (Redis, or one SQLite file): a list set or a reload
sent to one worker is published to every worker, and while Redis is down it is refused whole (a JSON 503),
never half done."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from payguard import load_rule_set

from ..stores.redis_server import RedisServer
from .conftest import RULES, client_events
from .test_concurrency import records


def bump(rules: Path, version: str) -> None:
    header = rules / "00_ruleset.yaml"
    text = header.read_text(encoding="utf-8")
    current = load_rule_set(rules).version
    header.write_text(text.replace(f'"{current}"', f'"{version}"'), encoding="utf-8")


def lists_and_reloads_reach_both_workers(server: Any, audits: Path, rules: Path) -> dict[str, Any]:
    """A list set on one worker, then payments spread over both: every one decided with it; then a
    reload sent to one worker. The list as the PUT answered it."""
    payments = [client_events(client, 1)[0] for client in range(40)]
    for payment in payments:
        payment["payee"] = {**payments[0]["payee"]}  # every customer pays the one account listed below
        payment["memo"] = "rent"
    put = server.client.put("/v1/lists/fraud_accounts", json={"entries": [payments[0]["payee"]["account"]]})
    assert put.status_code == 200, put.text
    listed: dict[str, Any] = put.json()
    assert listed["version"] >= 1
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # each request may reach either worker
    with httpx.Client(base_url=server.url, limits=no_keepalive, timeout=30) as spread:
        decisions = [spread.post("/v1/decisions", json=payment).json() for payment in payments]
        infos = [spread.get("/v1/ruleset").json()["lists"]["fraud_accounts"] for _ in range(8)]
    assert {d["action"] for d in decisions} == {"interrupt"}
    assert {d["lists"]["fraud_accounts"] for d in decisions} == {listed["version"]}
    by_worker = [
        {r["event_id"] for r in records(path) if r.get("record") == "decision"}
        for path in (audits / "audit.1.jsonl", audits / "audit.2.jsonl")
    ]
    assert all(by_worker), "both workers decided with the list set on one of them"
    assert all(info == {k: listed[k] for k in ("entries", "version", "digest")} for info in infos)

    bump(rules, "9.9.9")
    reloaded = server.client.post("/v1/ruleset/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["version"] == "9.9.9"
    return listed


def test_two_workers_over_one_sqlite_file_share_lists_and_reloads(start: Any, tmp_path: Path) -> None:
    rules, audit = tmp_path / "rules", tmp_path / "audit.jsonl"
    shutil.copytree(RULES, rules)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    server = start("--workers", "2", "--store", store, "--audit", str(audit), rules=rules)
    lists_and_reloads_reach_both_workers(server, tmp_path, rules)
    assert server.stop() == 0


def test_two_workers_over_redis_share_lists_and_reloads_and_refuse_them_whole_while_redis_is_down(
    start: Any, tmp_path: Path
) -> None:
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis", appendfsync="always")  # what it acknowledged survives a restart
    rules, audit = tmp_path / "rules", tmp_path / "audit.jsonl"
    shutil.copytree(RULES, rules)
    store = f"{redis.url}?prefix=w2:"
    server = start("--workers", "2", "--store", store, "--audit", str(audit), rules=rules)
    try:
        listed = lists_and_reloads_reach_both_workers(server, tmp_path, rules)

        redis.stop()
        bump(rules, "9.9.10")
        for refused in (
            server.client.put("/v1/lists/fraud_accounts", json={"entries": []}),
            server.client.post("/v1/ruleset/reload"),
            server.client.get("/v1/ruleset"),
        ):
            assert refused.status_code == 503, refused.text
            assert refused.json()["errors"][0]["code"] == "store"
        redis.start()
        info = server.client.get("/v1/ruleset").json()  # the worker the refused reload reached
        assert info["version"] == "9.9.9", "a reload that could not be published did not take effect"
        assert info["lists"]["fraud_accounts"]["version"] == listed["version"]
        assert info["lists"]["fraud_accounts"]["entries"] == 1
        failures = [line for line in server.log_lines() if line.get("status") == 503]
        assert len(failures) == 3
        assert all("unreachable" in line.get("internal_error", "") for line in failures), failures
    finally:
        try:
            assert server.stop() == 0
        finally:
            redis.stop()  # even when the server's exit code is wrong: no redis-server left running
