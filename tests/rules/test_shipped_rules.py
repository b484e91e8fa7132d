"""The shipped rule set, its examples and the ordinary traffic it must leave alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from payguard import Action, Guard, load_rule_set
from payguard._cli import main, rules_table
from payguard._features.calculator import FeatureEngine
from payguard._rules.fields import FEATURES
from payguard._synthetic import benign_traffic, demo_day

from ..conftest import ROOT

RULES = ROOT / "rules"


def test_every_rule_is_fired_by_a_case_and_every_case_and_invariant_passes() -> None:
    result = CliRunner().invoke(main, ["test", str(RULES), "--fail-under", "100", "--fuzz", "60"])
    assert result.exit_code == 0, result.stdout
    assert "rule coverage: 100.0%" in result.stdout
    assert "(invariant)" in result.stdout


def test_every_rule_states_its_rationale_and_source() -> None:
    for rule in load_rule_set(RULES).rules:
        assert re.search(r"\[S\d+\]", rule.description), rule.id
        assert len(rule.description) > 30, rule.id


def test_the_rules_readme_table_matches_the_rule_files() -> None:
    readme = (RULES / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- rules-table:start -->", "<!-- rules-table:end -->"
    table = readme.split(start)[1].split(end)[0].strip()
    assert table == rules_table(load_rule_set(RULES)), "regenerate with: payguard table rules/"


def test_the_fraud_list_ships_empty_with_instructions() -> None:
    ruleset = load_rule_set(RULES)
    assert ruleset.lists["fraud_accounts"] == frozenset()
    assert "set_list" in (RULES / "lists" / "fraud_accounts.txt").read_text(encoding="utf-8")


def test_every_feature_in_the_catalogue_is_computed() -> None:
    assert FeatureEngine.names() == frozenset(FEATURES)


def test_ordinary_traffic_is_rarely_stopped() -> None:
    history, month = benign_traffic(300, seed=11, start=datetime(2026, 3, 1, tzinfo=UTC))
    guard = Guard.from_path(RULES)
    guard.record(history)
    outgoing = [guard.evaluate(e) for e in month if e["type"] == "transfer_out"]
    stopped = sum(d.action.stops for d in outgoing)
    interrupted = sum(d.action is Action.INTERRUPT for d in outgoing)
    assert len(outgoing) > 8000
    # issue 17's targets, on ordinary traffic with its life events (moving home, payroll, a new phone...)
    assert stopped / len(outgoing) <= 0.005
    assert interrupted / len(outgoing) <= 0.0005


def test_the_demo_files_are_what_the_generator_makes(tmp_path: Path) -> None:
    history, day = demo_day()
    lines = (ROOT / "examples" / "transactions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == day
    assert len(history) > 20000


def test_the_demo_replay_stops_every_scam_story(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    decisions = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(ROOT / "examples" / "transactions.jsonl"),
            "--history",
            str(ROOT / "examples" / "history.jsonl.gz"),
            "--rules",
            str(RULES),
            "--out",
            str(decisions),
            "--summary-json",
            str(summary),
        ],
    )
    assert result.exit_code == 0, result.stderr
    actions = {d["event_id"]: d["action"] for d in map(json.loads, decisions.read_text().splitlines())}
    assert actions["scam-t1-2"] == actions["scam-t1-3"] == "interrupt"
    assert actions["scam-t6-3"] == actions["scam-t6-4"] == "interrupt"
    assert actions["scam-mule-out"] == "interrupt"
    backtest = json.loads(summary.read_text())["backtest"]
    assert backtest["legit_stopped_share"] <= 0.01


@pytest.mark.parametrize("script", ["embed_sync.py", "embed_asyncio.py"])
def test_the_embedding_examples_run(script: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(audit)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if script == "embed_sync.py":
        assert result.stdout.splitlines() == [
            "pay-1: executed",
            'pay-2: stopped: 公检法不会要求转账到"安全账户"，征信也无法注销。No police, court or bank ever asks you to move money to a "safe account" or to cancel a credit record.',
            "pay-3: rejected: invalid event 'pay-3': amount: must be greater than 0",
        ]
    else:
        assert len(result.stdout.splitlines()) == 20
        assert "async-0: hold" in result.stdout
    assert len(audit.read_text().splitlines()) >= 3


def test_the_lifecycle_example_resolves_a_hold_and_a_scam_as_the_readme_says(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lifecycle.py"), str(tmp_path / "audit.jsonl")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:5] == [
        "car-1: hold",
        "car-1 resolved: legitimate",
        "car-2: allow",
        "safe-1: interrupt",
        lines[4],
    ]
    assert lines[4].startswith("safe-2: interrupt")
    assert "PG01_fraud_payee" in lines[4]
    assert lines[5] == "audit: 6 records, intact"


def test_the_readme_embedding_example_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = readme.split("## Embedding", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace('"rules/"', repr(str(RULES))).replace(
        '"audit.jsonl"', repr(str(tmp_path / "audit.jsonl"))
    )
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    decision = namespace["decision"]
    assert decision.action is Action.INTERRUPT  # type: ignore[attr-defined]
    assert decision.reason  # type: ignore[attr-defined]
    namespace["guard"].close()  # type: ignore[attr-defined]
