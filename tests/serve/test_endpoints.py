"""Every endpoint of ``payguard serve`` and every error status, over real HTTP to the real server."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, load_rule_set

from .conftest import RULES, client_events, essence, scam_event

SHIPPED = load_rule_set(RULES)  # the shipped rule set the server decides with

pytestmark = pytest.mark.slow


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the read-mostly tests of this module (each test uses its own event ids)."""
    from .conftest import Server

    tmp = tmp_path_factory.mktemp("serve")
    running = Server(tmp, "--audit", str(tmp / "audit.jsonl"), "--log-level", "debug")
    running.audit = tmp / "audit.jsonl"  # type: ignore[attr-defined]
    yield running
    assert running.stop() == 0


def test_a_decision_is_the_librarys_decision_as_json(server: Any) -> None:
    events = client_events(1, 6)
    library = Guard(load_rule_set(RULES), max_future=None)
    for event in events:
        response = server.client.post("/v1/decisions", json=event)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert essence(response.json()) == essence(library.evaluate(event).to_dict())


def test_the_same_event_again_gets_the_first_decision_back_counted_as_a_repeat(server: Any) -> None:
    event = client_events(2, 1)[0]
    first = server.client.post("/v1/decisions", json=event).json()
    before = server.client.get("/metrics").text
    again = server.client.post("/v1/decisions", json=event).json()
    assert again["decision_id"] == first["decision_id"]
    after = server.client.get("/metrics").text
    assert (
        metric(after, "payguard_repeated_events_total")
        == metric(before, "payguard_repeated_events_total") + 1
    )
    assert metric(after, "payguard_decision_seconds_count") == metric(
        before, "payguard_decision_seconds_count"
    )


def test_an_event_id_reused_for_other_content_is_a_409_naming_the_first_decision(server: Any) -> None:
    event = client_events(3, 1)[0]
    first = server.client.post("/v1/decisions", json=event).json()
    response = server.client.post("/v1/decisions", json={**event, "amount": "7.00"})
    assert response.status_code == 409
    body = response.json()
    assert body["decision_id"] == first["decision_id"]
    assert [e["loc"] for e in body["errors"]] == ["id"]


def test_an_invalid_event_is_a_422_naming_every_bad_field_by_its_path(server: Any) -> None:
    event = client_events(4, 1)[0]
    event["payer"] = {"name": "no account"}
    event["amount"] = "-5"
    del event["timestamp"]
    response = server.client.post("/v1/decisions", json=event)
    assert response.status_code == 422
    locs = {error["loc"] for error in response.json()["errors"]}
    assert locs == {"payer.account", "amount", "timestamp"}
    assert all(error["msg"] for error in response.json()["errors"])


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_a_body_that_is_not_json_is_a_400(server: Any, body: bytes) -> None:
    response = server.client.post("/v1/decisions", content=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "not_json"


def test_json_that_is_not_an_object_is_a_422(server: Any) -> None:
    response = server.client.post("/v1/decisions", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "event"


def test_a_held_payment_is_resolved_once(server: Any) -> None:
    event = scam_event(5)
    decision = server.client.post("/v1/decisions", json=event).json()
    assert decision["action"] in ("hold", "interrupt")
    path = f"/v1/decisions/{decision['decision_id']}/resolution"
    resolved = server.client.post(path, json={"outcome": "fraud", "note": "customer confirmed the scam"})
    assert resolved.status_code == 200
    assert resolved.json()["outcome"] == "fraud"
    assert server.client.post(path, json={"outcome": "fraud"}).status_code == 200
    conflict = server.client.post(path, json={"outcome": "legitimate"})
    assert conflict.status_code == 409
    assert "resolved as fraud" in conflict.json()["errors"][0]["msg"]


def test_resolving_an_unknown_decision_is_a_404_and_an_allow_a_409(server: Any) -> None:
    unknown = server.client.post("/v1/decisions/nope-1/resolution", json={"outcome": "legitimate"})
    assert unknown.status_code == 404
    allowed = server.client.post("/v1/decisions", json=client_events(6, 1)[0]).json()
    assert allowed["action"] == "allow"
    path = f"/v1/decisions/{allowed['decision_id']}/resolution"
    assert server.client.post(path, json={"outcome": "legitimate"}).status_code == 409


def test_a_resolution_with_a_bad_outcome_or_note_is_a_422_naming_them(server: Any) -> None:
    response = server.client.post(
        "/v1/decisions/x/resolution", json={"outcome": "maybe", "note": 5, "who": 1}
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == ["outcome", "note", "who"]
    assert server.client.post("/v1/decisions/x/resolution", content=b"{").status_code == 400


def test_a_list_set_over_http_interrupts_the_next_payment_to_a_listed_payee(server: Any) -> None:
    event = client_events(7, 1)[0]
    event["memo"] = "rent"
    listed = {**event, "id": "c7-listed"}
    put = server.client.put("/v1/lists/fraud_accounts", json={"entries": [event["payee"]["account"]]})
    assert put.status_code == 200
    assert put.json()["entries"] == 1
    decision = server.client.post("/v1/decisions", json=listed).json()
    assert decision["action"] == "interrupt"
    assert "PG01_fraud_payee" in [hit["rule_id"] for hit in decision["hits"]]
    info, set_to = server.client.get("/v1/ruleset").json(), put.json()
    assert info["lists"]["fraud_accounts"] == {"entries": 1, **{k: set_to[k] for k in ("version", "digest")}}
    assert decision["lists"] == {"fraud_accounts": set_to["version"]}  # the version the decision read
    assert server.client.put("/v1/lists/fraud_accounts", json={"entries": []}).status_code == 200


def test_an_unknown_list_is_a_404_and_entries_that_are_not_a_list_of_strings_a_422(server: Any) -> None:
    assert server.client.put("/v1/lists/nope", json={"entries": []}).status_code == 404
    assert server.client.put("/v1/lists/fraud_accounts", json={"entries": "6222"}).status_code == 422
    wrong = server.client.put("/v1/lists/fraud_accounts", json={"entries": ["6222", 7]})
    assert wrong.status_code == 422
    assert "string" in wrong.json()["errors"][0]["msg"]
    assert server.client.get("/v1/ruleset").json()["lists"]["fraud_accounts"]["entries"] == 0


def test_the_ruleset_endpoint_names_what_decides(server: Any) -> None:
    info = server.client.get("/v1/ruleset").json()
    ruleset = load_rule_set(RULES)
    assert (info["id"], info["version"], info["digest"]) == (ruleset.id, ruleset.version, ruleset.digest)
    assert info["rules"] == len(ruleset.rules)
    assert set(info["lists"]) == set(ruleset.lists)


def test_health_ready_and_the_openapi_document(server: Any) -> None:
    assert server.client.get("/health").json()["status"] == "ok"
    ready = server.client.get("/ready").json()
    assert ready == {
        "ready": True,
        "checks": {"rules": f"payguard-default@{SHIPPED.version}", "store": "ok", "audit": "ok"},
    }
    document = server.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/v1/decisions",
        "/v1/decisions/{decision_id}/resolution",
        "/v1/lists/{name}",
        "/v1/ruleset",
        "/v1/ruleset/reload",
        "/health",
        "/ready",
        "/metrics",
    }
    assert "payer" in document["components"]["schemas"]["Event"]["properties"]


def test_an_unknown_path_is_a_json_404_and_a_wrong_method_a_405(server: Any) -> None:
    assert server.client.get("/v2/nothing").status_code == 404
    assert server.client.get("/v1/decisions").status_code == 405


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_decisions_hits_rejections_and_time(server: Any) -> None:
    before = server.client.get("/metrics").text
    event = scam_event(8)
    decision = server.client.post("/v1/decisions", json=event).json()
    server.client.post("/v1/decisions", content=b"nope")
    after = server.client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    labels = {"action": decision["action"], "ruleset": f"payguard-default@{SHIPPED.version}"}
    assert (
        metric(text, "payguard_decisions_total", **labels)
        == metric(before, "payguard_decisions_total", **labels) + 1
    )
    rule = decision["hits"][0]["rule_id"]
    assert (
        metric(text, "payguard_rule_hits_total", rule=rule)
        == metric(before, "payguard_rule_hits_total", rule=rule) + 1
    )
    assert metric(text, "payguard_rejected_events_total", reason="not_json") >= 1
    assert metric(text, "payguard_decision_seconds_count") >= 1
    for name in ("payguard_audit_write_failures_total", "payguard_store_failures_total"):
        assert f"\n{name} 0.0\n" in text  # exported, and nothing failed


def test_every_request_is_one_json_log_line_without_account_numbers(server: Any) -> None:
    event = client_events(9, 1)[0]
    server.client.post("/v1/decisions", json=event)
    lines = server.log_lines()  # every line is JSON, or this raises
    requests = [line for line in lines if line["event"] == "request"]
    mine = [line for line in requests if line.get("event_id") == event["id"]]
    assert len(mine) == 1
    assert mine[0]["route"] == "/v1/decisions"
    assert mine[0]["payer"].startswith("…" + event["payer"]["account"][-4:] + "#")
    text = server.log.read_text(encoding="utf-8")
    for account in (event["payer"]["account"], event["payee"]["account"], event["payer"]["name"]):
        assert account not in text


def test_the_audit_trail_holds_every_decision_and_refusal_and_verifies(server: Any) -> None:
    event = client_events(10, 1)[0]
    decision = server.client.post("/v1/decisions", json=event).json()
    records = audit_records(server.audit)
    assert decision["decision_id"] in {record.get("decision_id") for record in records}
    assert any(record["record"] == "rejected" for record in records)


def test_a_reload_with_a_broken_rule_file_is_a_422_and_the_running_rule_set_stays(
    start: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    running = start(rules=rules)
    header = rules / "00_ruleset.yaml"
    good = header.read_text(encoding="utf-8")
    header.write_text(good.replace(f'version: "{SHIPPED.version}"', 'version: "9.9.9"'), encoding="utf-8")
    (rules / "amounts.yaml").write_text(
        "rules:\n  - id: X1\n    when: {amout: 5}\n    action: hold\n", encoding="utf-8"
    )
    broken = running.client.post("/v1/ruleset/reload")
    assert broken.status_code == 422
    problems = broken.json()["errors"]
    assert problems
    assert all(p["loc"].startswith(str(rules)) and p["line"] >= 1 for p in problems)
    assert running.client.get("/v1/ruleset").json()["version"] == SHIPPED.version
    shutil.copy(RULES / "amounts.yaml", rules / "amounts.yaml")
    reloaded = running.client.post("/v1/ruleset/reload")
    assert reloaded.status_code == 200
    assert reloaded.json()["version"] == "9.9.9"
    info = [
        line
        for line in running.client.get("/metrics").text.splitlines()
        if line.startswith("payguard_ruleset_info{")
    ]
    shown = {line.split('version="')[1].split('"')[0]: float(line.split()[-1]) for line in info}
    assert shown == {"9.9.9": 1.0, SHIPPED.version: 0.0}  # the replaced one stays, at 0
    assert (
        running.client.post("/v1/decisions", json=client_events(1, 1)[0]).json()["ruleset"]["version"]
        == "9.9.9"
    )
    assert running.stop() == 0


def test_a_store_that_fails_gives_the_audited_hold_with_a_customer_safe_reason(
    start: Any, tmp_path: Path
) -> None:
    database, audit = tmp_path / "store.db", tmp_path / "audit.jsonl"
    running = start("--store", f"sqlite:///{database}", "--audit", str(audit))
    events = client_events(11, 2)
    assert running.client.post("/v1/decisions", json=events[0]).status_code == 200
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):  # the disk goes bad
        if path.exists():
            with path.open("r+b") as handle:
                handle.write(b"garbage!" * (os.path.getsize(path) // 8))
    response = running.client.post("/v1/decisions", json=events[1])
    assert response.status_code == 200
    held = response.json()
    assert held["action"] == "hold"
    assert [hit["rule_id"] for hit in held["hits"]] == ["payguard.internal_error"]
    assert "SQLite" not in json.dumps(held)
    assert "StoreError" not in json.dumps(held)
    record = next(r for r in audit_records(audit) if r.get("decision_id") == held["decision_id"])
    assert record["error"].startswith("StoreError")
    text = running.client.get("/metrics").text
    assert metric(text, "payguard_store_failures_total") == 1
    assert metric(text, "payguard_internal_error_holds_total") == 1
    ready = running.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"].startswith("unreachable")
    errors = [line for line in running.log_lines() if line["level"] == "error"]
    assert any("StoreError" in line.get("internal_error", "") for line in errors)


def test_options_that_cannot_run_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "payguard._cli", "serve", "--rules", str(RULES), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    memory = serve("--workers", "2")
    assert memory.returncode == 2
    assert "--workers 2 needs a shared store" in memory.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [{id: X, when: {amout: 1}, action: hold}]\n", encoding="utf-8")
    rules = serve("--rules", str(broken))
    assert rules.returncode == 2
    assert "unknown_field" in rules.stderr
    store = serve("--store", "ftp://x")
    assert store.returncode == 2
    assert "unknown scheme" in store.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for workers in ("1", "2"):
            busy = serve("--port", port, "--workers", workers, "--store", str(tmp_path / "store.db"))
            assert busy.returncode == 2
            assert "address already in use" in busy.stderr.lower()


def test_a_body_past_the_limit_is_a_413_and_the_server_goes_on(server: Any) -> None:
    from payguard._serve.app import MAX_BODY

    response = server.client.post("/v1/decisions", content=b" " * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "too_large"
    assert server.client.get("/health").status_code == 200


def test_the_openapi_event_schema_accepts_the_events_payguard_accepts(server: Any) -> None:
    import jsonschema

    document = server.client.get("/openapi.json").json()
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/Event", **document})
    for event in [*client_events(12, 6), scam_event(12)]:
        assert list(validator.iter_errors(event)) == []
    assert list(validator.iter_errors({"id": "x", "type": "transfer_out"}))  # no timestamp, no payer


def test_the_log_level_leaves_out_the_lines_below_it(start: Any) -> None:
    running = start("--log-level", "warning")
    assert running.client.post("/v1/decisions", json=client_events(13, 1)[0]).status_code == 200
    assert running.client.post("/v1/decisions", json={"id": "bad"}).status_code == 422
    assert running.stop() == 0
    requests = [line for line in running.log_lines() if line["event"] == "request"]
    assert [(line["level"], line["status"]) for line in requests] == [("warning", 422)]


def test_an_audit_record_that_cannot_be_written_is_a_503_and_nothing_is_decided(
    start: Any, tmp_path: Path
) -> None:
    full = tmp_path / "audit.jsonl"
    full.symlink_to("/dev/full")  # every write fails: no space left on device
    running = start("--audit", str(full))
    event = client_events(14, 1)[0]
    response = running.client.post("/v1/decisions", json=event)
    assert response.status_code == 503
    # not stored either: a stored decision would come back for the same event without a new record
    assert running.client.post("/v1/decisions", json=event).status_code == 503
    problem = response.json()["errors"][0]
    assert problem["code"] == "audit_unavailable"
    assert "treat it as held" in problem["msg"]
    assert "space" not in problem["msg"]  # the cause is in the log, not the answer
    assert metric(running.client.get("/metrics").text, "payguard_audit_write_failures_total") == 2
    ready = running.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["audit"] == "failing"
    errors = [line for line in running.log_lines() if line["level"] == "error"]
    assert any("No space left" in line.get("internal_error", "") for line in errors)
