"""The analyst's workbench: rows to join, no silent currency no-ops, parameter sweeps and an explain that
reproduces the replay's decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from payguard._cli import main

from .conftest import ROOT, make_event

WriteRules = Callable[..., Path]
RULES = """
params:
  large: 1000
rules:
  - {id: large, description: large, when: {amount: {gte: $large}}, action: hold, reason: r}
  - {id: again, description: retry, when: {recent_stops_60m: {gte: 1}}, action: interrupt, reason: r}
"""


def event(n: int, minute: int, amount: str, **extra: Any) -> dict[str, Any]:
    return make_event(id=f"e{n}", timestamp=f"2026-03-02T10:{minute:02d}:00+08:00", amount=amount, **extra)


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def run(args: list[str]) -> Any:
    return CliRunner().invoke(main, args)


def test_out_rows_carry_what_an_analyst_joins_on(write_rules: WriteRules, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl", [event(1, 0, "1500", label={"is_fraud": True}), event(2, 5, "10")]
    )
    old = write_rules(RULES.replace("gte: $large", "gte: 5000"), name="old.yaml")
    out = tmp_path / "out.jsonl"
    args = [
        "replay",
        str(events),
        "--rules",
        str(write_rules(RULES)),
        "--out",
        str(out),
        "--compare",
        str(old),
    ]
    assert run([*args, "--audit-key", "a-key-of-16-bytes-or-more"]).exit_code == 0
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first == {
        "event_id": "e1",
        "timestamp": "2026-03-02T10:00:00+08:00",
        "type": "transfer_out",
        "amount": "1500",
        "currency": "CNY",
        "account": first["account"],
        "label": "fraud",
        "action": "hold",
        "score": 0,
        "hits": ["large"],
        "old_action": "allow",
        "old_hits": [],
    }
    # masked as the audit trail masks it: the last four characters and a keyed hash, never the number
    assert first["account"].startswith("…2222#")
    assert "6222000011112222" not in out.read_text()
    assert (second["label"], second["action"], second["hits"]) == (None, "interrupt", ["again"])


def test_money_events_in_another_currency_than_the_rules_are_warned_about(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "e.jsonl", [event(n, n, "5000", currency="EUR") for n in range(3)])
    summary = tmp_path / "s.json"
    result = run(["replay", str(events), "--rules", str(write_rules(RULES)), "--summary-json", str(summary)])
    assert result.exit_code == 0
    assert (
        "warning: 3 money events are in EUR but the rule set's money tests are in CNY: none of its 1 money "
        "tests (in 1 rules) could apply to them"
    ) in result.stderr
    assert json.loads(summary.read_text())["currency_mismatch"] == {
        "events_by_currency": {"EUR": 3},
        "rule_currencies": ["CNY"],
        "money_tests_not_applied": 1,
        "rules_with_money_tests": 1,
    }
    same = write_events(tmp_path / "cny.jsonl", [event(1, 1, "5000")])
    assert "warning" not in run(["replay", str(same), "--rules", str(write_rules(RULES))]).stderr


def test_set_overrides_a_parameter_and_is_recorded(write_rules: WriteRules, tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl", [event(1, 0, "600")])
    rules, summary, out = write_rules(RULES), tmp_path / "s.json", tmp_path / "o.jsonl"
    result = run(
        ["replay", str(events), "--rules", str(rules), "--set", "large=500", "--summary-json", str(summary),
         "--out", str(out)]
    )  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(out.read_text())["action"] == "hold"
    assert json.loads(summary.read_text())["settings"] == {"large": 500}
    assert "parameters set: large=500" in result.stderr
    result = run(["replay", str(events), "--rules", str(rules), "--set", "larg=500"])
    assert result.exit_code == 2
    assert "--set:1:1: unknown_param: the rule set declares no parameter 'larg'" in result.stderr
    assert "(did you mean 'large'?)" in result.stderr


def test_explain_decides_the_events_before_as_replay_does(write_rules: WriteRules, tmp_path: Path) -> None:
    # e1 is held; e2 is interrupted because of that stop, which a history of executed payments would hide
    events = write_events(tmp_path / "e.jsonl", [event(1, 0, "1500"), event(2, 5, "10"), event(3, 6, "20")])
    rules, out = write_rules(RULES), tmp_path / "o.jsonl"
    run(["replay", str(events), "--rules", str(rules), "--out", str(out)])
    replayed = {row["event_id"]: row["action"] for row in map(json.loads, out.read_text().splitlines())}
    result = run(["explain", "--rules", str(rules), "--event-id", "e2", "--why-not", "large", str(events)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"event e2 ({events}:2) -> {replayed['e2']}" == f"event e2 ({events}:2) -> interrupt"
    assert (
        "after 0 history records and 1 events decided before it as replay decides them (1 of them" in lines[1]
    )
    assert "  amount                               10" in lines
    assert "  recent_stops_60m                     1" in lines
    assert "      evidence: recent_stops_60m=1" in lines
    assert lines[-2:] == [
        f"why not large ({rules}:10): did not fire",
        "  NO    amount gte 1000.00 CNY                         event: 10",
    ]


def test_explain_names_a_missing_event_and_an_unknown_rule(write_rules: WriteRules, tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl", [event(1, 0, "10")])
    rules = str(write_rules(RULES))
    result = run(["explain", "--rules", rules, "--event-id", "nope", str(events)])
    assert (result.exit_code, result.stderr.strip()) == (
        3,
        f"{events}: no event with id 'nope' (rejected records: 0)",
    )
    result = run(["explain", "--rules", rules, "--why-not", "larg", str(events)])
    assert result.exit_code == 2
    assert "--why-not 'larg': the rule set 'test' has no such rule (did you mean 'large'?)" in result.stderr


def test_explain_with_history_matches_the_demo_replay(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    demo = [
        str(ROOT / "examples" / "transactions.jsonl"),
        "--history",
        str(ROOT / "examples" / "history.jsonl.gz"),
    ]
    run(["replay", *demo, "--rules", str(ROOT / "rules"), "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    retried = next(
        row for row in rows if "PG25_retry_after_stop" in row["hits"]
    )  # depends on an earlier stop
    result = run(["explain", "--rules", str(ROOT / "rules"), "--event-id", retried["event_id"], *demo])
    assert result.exit_code == 0, result.stderr
    assert f"-> {retried['action']} (score {retried['score']})" in result.stdout.splitlines()[0]
    assert "PG25_retry_after_stop" in result.stdout
