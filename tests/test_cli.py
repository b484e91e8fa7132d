"""The payguard command: check, explain and the exit codes the README documents."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from payguard._cli import main

from .conftest import ROOT, make_event

WriteRules = Callable[..., Path]
VALID = """
rules:
  - {id: new_large, description: d, when: {is_new_payee: true, amount: {gte: 1000}}, action: hold, reason: Large to new payee.}
"""


def test_check_exits_0_for_valid_rules_and_3_with_every_problem(write_rules: WriteRules) -> None:
    good = write_rules(VALID, name="good.yaml")
    result = CliRunner().invoke(main, ["check", str(good)])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"ok: {good}: test 1, 1 rules, sha256:")
    bad = write_rules(VALID.replace("is_new_payee", "is_new_paye").replace("hold", "hodl"), name="bad.yaml")
    result = CliRunner().invoke(main, ["check", str(good), str(bad)])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"{bad}:8:44: unknown_field: unknown field or feature 'is_new_paye' (did you mean 'is_new_payee'?)",
        f"{bad}:8:93: invalid_value: action must be one of allow, review, hold, interrupt (did you mean 'hold'?)",
    ]


def test_check_runs_as_an_installed_command(write_rules: WriteRules) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "payguard._cli", "check", str(write_rules(VALID))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_explain_shows_features_and_hits_after_the_history_in_the_file(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    history = [
        make_event(id=f"h{n}", timestamp=f"2026-03-0{n + 1}T10:00:00+08:00", amount="10") for n in range(2)
    ]
    target = make_event(
        id="now", timestamp="2026-03-05T10:00:00+08:00", amount="5000", payee={"account": "NEW"}
    )
    events.write_text("".join(json.dumps(e) + "\n" for e in [*history, target]))
    result = CliRunner().invoke(main, ["explain", "--rules", str(write_rules(VALID)), str(events)])
    assert result.exit_code == 0, result.stderr
    assert "event now" in result.stdout
    assert "-> hold" in result.stdout
    assert "is_new_payee                         True" in result.stdout
    assert "new_large" in result.stdout
    result = CliRunner().invoke(
        main, ["explain", "--rules", str(write_rules(VALID)), "--event-id", "h1", str(events)]
    )
    assert "event h1" in result.stdout
    assert "is_new_payee                         False" in result.stdout


def test_check_reports_a_condition_nested_1000_deep_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    when = "{not: " * 1000 + "{type: transfer_out}" + "}" * 1000
    path.write_text(
        'ruleset: {id: deep, version: "1"}\n'
        f"rules:\n  - {{id: r, description: d, action: hold, reason: r, when: {when}}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "payguard._cli", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 3
    message = "the YAML nests too deeply to read (a condition nests at most 32 all/any/not groups deep)"
    assert result.stderr.splitlines() == [f"{path}:1:1: too_deep: {message}"]


def test_replay_rejects_are_masked_as_the_audit_masks_unless_asked_raw(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    # before: --rejects wrote the raw record, full account numbers and memo included
    events = tmp_path / "events.jsonl"
    bad = make_event(
        id="bad", amount="-5", memo="for Wang Fang's operation", payee={"account": "6217555500001111"}
    )
    events.write_text(json.dumps(bad) + "\n")
    rules = str(write_rules(VALID))
    masked, raw = tmp_path / "rejects.jsonl", tmp_path / "raw.jsonl"
    key = ["--audit-key", "bank-secret-of-16-bytes"]
    result = CliRunner().invoke(
        main, ["replay", str(events), "--rules", rules, "--rejects", str(masked), *key]
    )
    assert result.exit_code == 3
    (line,) = [json.loads(text) for text in masked.read_text().splitlines()]
    assert (line["file"], line["line"]) == (str(events), 1)
    assert "amount" in line["reason"]
    text = masked.read_text()
    for secret in ("6217555500001111", "6222000011112222", "Wang Fang", "operation"):
        assert secret not in text
    assert line["record"]["payee"]["account"].startswith("…1111#")
    assert line["record"]["memo"] == {"erased": True, "length": len(bad["memo"])}
    assert {"payer.account", "payee.account"} <= set(line["masked"])
    assert {"memo", "payer.name", "payee.name"} <= set(line["erased"])
    assert line["record"]["amount"] == "-5"
    args = ["replay", str(events), "--rules", rules, "--rejects", str(raw), "--rejects-raw", *key]
    CliRunner().invoke(main, args)
    assert json.loads(raw.read_text())["record"] == bad
