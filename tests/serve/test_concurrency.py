"""Many clients at once, a SIGTERM with requests in flight, and two workers on one SQLite store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from payguard import Guard, load_rule_set

from .conftest import AUDIT_KEY, RULES, client_events, essence

pytestmark = pytest.mark.slow

CLIENTS = 8


def library_decisions(per_client: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The library's decisions on the same events: no two clients share an account, so deciding one
    client's events after another's gives what any interleaving of the clients gives."""
    guard = Guard(load_rule_set(RULES), max_future=None)
    return {
        event["id"]: essence(guard.evaluate(event).to_dict()) for events in per_client for event in events
    }


def send_all(url: str, per_client: list[list[dict[str, Any]]], **client: Any) -> dict[str, dict[str, Any]]:
    """Each client sends its events in order, all clients at once; every answer, by event id."""

    def one(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        with httpx.Client(base_url=url, timeout=30, **client) as http:
            answers = {}
            for event in events:
                response = http.post("/v1/decisions", json=event)
                assert response.status_code == 200, response.text
                answers[event["id"]] = response.json()
            return answers

    with ThreadPoolExecutor(len(per_client)) as pool:
        results = list(pool.map(one, per_client))
    return {key: value for result in results for key, value in result.items()}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def verify(path: Path, public: Path, *more: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "payguard._cli", "audit", "verify", str(path), "--key", AUDIT_KEY]
    command += ["--public-key", str(public), *more]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[Path, Path]:
    subprocess.run(
        [sys.executable, "-m", "payguard._cli", "audit", "keygen", "--out", str(tmp_path / "keys")],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return tmp_path / "keys" / "audit.key", tmp_path / "keys" / "audit.pub"


def test_eight_clients_at_once_get_every_answer_and_the_librarys_decisions(start: Any) -> None:
    per_client = [client_events(client, 30) for client in range(CLIENTS)]
    server = start()
    answers = send_all(server.url, per_client)
    assert len(answers) == CLIENTS * 30
    assert {key: essence(value) for key, value in answers.items()} == library_decisions(per_client)
    assert {answer["action"] for answer in answers.values()} >= {"allow", "interrupt"}  # not vacuous
    assert server.stop() == 0


def test_sigterm_with_requests_in_flight_answers_them_all_audits_them_and_exits_0(
    start: Any, tmp_path: Path, signing_key: tuple[Path, Path]
) -> None:
    audit, witness = tmp_path / "audit.jsonl", tmp_path / "witness.jsonl"
    signing = ["--audit-signing-key", str(signing_key[0]), "--audit-checkpoints", str(witness)]
    server = start("--audit", str(audit), *signing)
    answered: dict[str, str] = {}  # event id -> decision id, for every 200
    refused = []  # requests the stopping server never took (connection refused or closed before reading)
    lock = threading.Lock()
    go = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for event in client_events(number, 400):
                try:
                    response = http.post("/v1/decisions", json=event)
                except httpx.TransportError:
                    refused.append(event["id"])
                    return
                assert response.status_code == 200
                with lock:
                    answered[event["id"]] = response.json()["decision_id"]
                    if len(answered) >= 40:
                        go.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert go.wait(30)
    started = time.monotonic()
    code = server.stop(timeout=10)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(30)
    assert code == 0
    assert took < 10
    assert len(refused) == CLIENTS  # every client was cut off by the shutdown, not by an error
    decided = {r["event_id"]: r["decision_id"] for r in records(audit) if r.get("record") == "decision"}
    assert decided == answered  # none lost: every answer audited, and nothing audited unanswered
    assert records(audit)[-1]["record"] == "checkpoint"  # sealed on the way out
    check = verify(audit, signing_key[1], "--checkpoints", str(witness))
    assert check.returncode == 0, check.stderr
    assert f"intact, {len(decided):,} records, 2 checkpoints agree" in check.stdout  # file and witness


def test_two_workers_on_one_sqlite_store_decide_as_the_library_and_each_audits_its_own_file(
    start: Any, tmp_path: Path, signing_key: tuple[Path, Path]
) -> None:
    store, audit, rules = tmp_path / "store.db", tmp_path / "audit.jsonl", tmp_path / "rules"
    shutil.copytree(RULES, rules)
    args = ["--workers", "2", "--store", f"sqlite:///{store}", "--audit", str(audit)]
    server = start(*args, "--audit-signing-key", str(signing_key[0]), rules=rules)
    per_client = [client_events(client, 20) for client in range(CLIENTS)]
    no_keepalive = {"limits": httpx.Limits(max_keepalive_connections=0)}  # spread over both workers
    answers = send_all(server.url, per_client, **no_keepalive)
    assert {key: essence(value) for key, value in answers.items()} == library_decisions(per_client)
    metrics = server.client.get("/metrics").text  # either worker answers for both
    total = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("payguard_decisions_total{")
    )
    assert total == len(answers)
    header = rules / "00_ruleset.yaml"
    shipped = load_rule_set(RULES).version
    header.write_text(header.read_text(encoding="utf-8").replace(f'"{shipped}"', '"9.9.9"'), encoding="utf-8")
    server.process.send_signal(signal.SIGHUP)  # the supervisor reloads every worker
    deadline = time.monotonic() + 20
    reloaded: set[int] = set()
    while time.monotonic() < deadline and len(reloaded) < 2:
        reloaded = {line["pid"] for line in server.log_lines() if line["event"] == "reloaded"}
        time.sleep(0.1)
    assert len(reloaded) == 2  # both workers
    versions = set()
    for _ in range(8):
        with httpx.Client(base_url=server.url) as fresh:  # a new connection: either worker may answer
            versions.add(fresh.get("/v1/ruleset").json()["version"])
    assert versions == {"9.9.9"}
    assert server.stop() == 0
    files = [tmp_path / "audit.1.jsonl", tmp_path / "audit.2.jsonl"]
    by_worker = [{r["event_id"] for r in records(path) if r.get("record") == "decision"} for path in files]
    assert all(by_worker)  # both workers served
    assert by_worker[0] | by_worker[1] == set(answers)
    assert not by_worker[0] & by_worker[1]
    for path in files:
        check = verify(path, signing_key[1])
        assert check.returncode == 0, check.stderr


def test_a_worker_that_dies_stops_the_server_with_exit_4_for_the_orchestrator_to_restart(
    start: Any, tmp_path: Path
) -> None:
    server = start("--workers", "2", "--store", f"sqlite:///{tmp_path / 'store.db'}")
    supervising = next(line for line in server.log_lines() if line["event"] == "supervising")
    os.kill(supervising["workers"][0], signal.SIGKILL)
    assert server.process.wait(15) == 4
    died = [line for line in server.log_lines() if line["event"] == "worker exited"]
    assert [line["pid"] for line in died] == [supervising["workers"][0]]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)
