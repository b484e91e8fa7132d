"""Replay and backtest: what a rule set would have stopped, from transaction files."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard import Guard
from payguard._cli import main
from payguard._replay import parse_duration, replay

from .conftest import make_event

WriteRules = Callable[..., Path]
RULES = """
lists:
  fraud_accounts: []
rules:
  - {id: listed, description: payee on the fraud list, when: {payee.account: {in_list: fraud_accounts}}, action: interrupt, reason: r}
  - {id: large, description: large, when: {amount: {gte: 1000}}, action: hold, reason: r}
  - {id: medium, description: medium, mode: shadow, when: {amount: {gte: 500}}, action: review, reason: r}
"""


def event(n: int, hour: int, amount: str, fraud: bool | None = None, payee: str = "B") -> dict[str, Any]:
    data = make_event(
        id=f"e{n}", timestamp=f"2026-03-02T{hour:02d}:00:00+00:00", amount=amount, payee={"account": payee}
    )
    if fraud is not None:
        data["label"] = {"is_fraud": fraud}
    return data


def write_events(path: Path, events: list[Any]) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


def run(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_events_are_replayed_in_event_time_order_stable_for_equal_times(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = write_events(
        tmp_path / "e.jsonl", [event(1, 5, "10"), event(2, 1, "10"), event(3, 5, "10"), event(4, 3, "10")]
    )
    result = run(["replay", str(events), "--rules", str(write_rules(RULES)), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e2", "e4", "e1", "e3"]


def test_rejected_records_are_reported_counted_and_written_never_dropped(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = write_events(
        tmp_path / "e.jsonl",
        [event(1, 1, "10"), "{broken", {**event(2, 2, "10"), "amount": "-3"}, event(3, 3, "10")],
    )
    rejects = tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"
    result = run(
        [
            "replay",
            str(events),
            "--rules",
            str(write_rules(RULES)),
            "--rejects",
            str(rejects),
            "--summary-json",
            str(summary),
        ]
    )
    assert result.exit_code == 3
    assert f"{events}:2: rejected: invalid JSON" in result.stderr
    assert f"{events}:3: rejected: invalid event 'e2': amount: must be greater than 0" in result.stderr
    assert [json.loads(line)["line"] for line in rejects.read_text().splitlines()] == [2, 3]
    data = json.loads(summary.read_text())
    assert (data["records"], data["evaluated"], data["rejected"]) == (4, 2, 2)


def test_the_summary_counts_actions_amounts_and_rules(write_rules: WriteRules, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl",
        [event(1, 1, "10"), event(2, 2, "1500"), event(3, 3, "700"), event(4, 4, "2000")],
    )
    summary = tmp_path / "s.json"
    result = run(["replay", str(events), "--rules", str(write_rules(RULES)), "--summary-json", str(summary)])
    assert result.exit_code == 0
    data = json.loads(summary.read_text())
    assert data["events_by_type"] == {"transfer_out": 4}
    assert data["decisions"]["hold"] == {"count": 2, "amount": {"CNY": "3500"}}
    assert data["decisions"]["allow"] == {"count": 2, "amount": {"CNY": "710"}}
    assert data["top_rules_by_count"] == [{"rule_id": "large", "count": 2}]
    assert data["shadow_rules"] == {"medium": 3}
    assert data["events_per_second"] > 0
    assert "hold" in result.stderr
    assert "events/s" in result.stderr


def test_a_backtest_scores_stopped_payments_against_labels(write_rules: WriteRules, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl",
        [
            event(1, 1, "1500", fraud=True),
            event(2, 2, "1500", fraud=False),
            event(3, 3, "50", fraud=True),
            event(4, 4, "50", fraud=False),
            event(5, 5, "50", fraud=False),
        ],
    )
    summary = tmp_path / "s.json"
    run(["replay", str(events), "--rules", str(write_rules(RULES)), "--summary-json", str(summary)])
    backtest = json.loads(summary.read_text())["backtest"]
    assert backtest["confusion"] == {
        "stopped_fraud": 1,
        "stopped_legit": 1,
        "missed_fraud": 1,
        "allowed_legit": 2,
    }
    assert (backtest["precision"], backtest["recall"], backtest["legit_stopped_share"]) == (0.5, 0.5, 0.3333)
    assert backtest["fraud_money_stopped_share"] == {"CNY": round(1500 / 1550, 4)}
    assert backtest["rules"]["large"] == {"fraud_hits": 1, "legit_hits": 1, "precision": 0.5}


def test_feedback_delay_lists_a_fraud_payee_once_the_label_would_be_known(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = [
        event(1, 0, "10", fraud=True, payee="MULE"),
        event(2, 5, "10", payee="MULE"),
        event(3, 7, "10", payee="MULE"),
    ]
    guard = Guard.from_path(write_rules(RULES))
    lines: list[dict[str, Any]] = []
    summary = replay(
        [str(write_events(tmp_path / "e.jsonl", events))],
        guard,
        write=lines.append,
        feedback_delay=parse_duration("6h"),
    )
    assert [line["action"] for line in lines] == ["allow", "allow", "interrupt"]
    assert summary.listed_by_feedback == 1


def test_compare_reports_what_changed_and_which_rules_did_it(write_rules: WriteRules, tmp_path: Path) -> None:
    old = write_rules(RULES, name="old.yaml")
    new = write_rules(RULES.replace("gte: 1000", "gte: 600"), name="new.yaml")
    events = write_events(
        tmp_path / "e.jsonl",
        [event(1, 1, "700", fraud=True), event(2, 2, "800", fraud=False), event(3, 3, "5000")],
    )
    summary = tmp_path / "s.json"
    result = run(
        ["replay", str(events), "--rules", str(new), "--compare", str(old), "--summary-json", str(summary)]
    )
    assert result.exit_code == 0
    compare = json.loads(summary.read_text())["compare"]
    assert compare["changed"] == [
        {"old": "allow", "new": "hold", "count": 2, "rules": {"+large": 2}, "examples": ["e1", "e2"]}
    ]
    assert compare["old_backtest"]["recall"] == 0.0
    assert "allow -> hold" in result.stderr


def test_duplicates_and_late_events_are_counted(write_rules: WriteRules, tmp_path: Path) -> None:
    guard = Guard.from_path(write_rules(RULES), max_future=None)
    events = [event(1, 5, "10"), event(2, 6, "10"), event(3, 7, "10"), event(4, 1, "10"), event(1, 5, "10")]
    summary = replay([str(write_events(tmp_path / "e.jsonl", events))], guard, window=2)
    assert (summary.evaluated, summary.duplicates, summary.late["out_of_order"]) == (4, 1, 1)
    assert summary.conflicts == 0


def test_an_event_id_reused_for_another_event_is_a_conflict_reported_apart_and_exits_3(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = [event(1, 5, "15"), event(2, 6, "10"), event(1, 5, "15"), event(1, 7, "150000", payee="SAFE")]
    # and a replay decides in event time: an event dated after today is no reason to refuse one
    events.append(make_event(id="e3", timestamp="2099-01-01T00:00:00+00:00", amount="10"))
    path = write_events(tmp_path / "e.jsonl", events)
    rules = str(write_rules(RULES))
    result = run(
        ["replay", str(path), "--rules", rules, "--out", "-", "--summary-json", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 3
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e1", "e2", "e3"]
    assert "e.jsonl:4: rejected: invalid event 'e1': id: was decided before" in result.stderr
    assert "duplicates 1  conflicts 1" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["rejected"], summary["duplicates"], summary["conflicts"]) == (0, 1, 1)
    assert run(["replay", str(path), "--rules", rules, "--audit", str(tmp_path / "a.jsonl")]).exit_code == 3
    audit = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["record"] for r in audit] == ["decision", "decision", "rejected", "decision"]
    assert audit[2]["duplicate_of"] == audit[0]["decision_id"]


def test_stdin_and_gzip_inputs(write_rules: WriteRules, tmp_path: Path) -> None:
    payload = "".join(json.dumps(event(n, n, "10")) + "\n" for n in range(3))
    result = CliRunner().invoke(
        main, ["replay", "-", "--rules", str(write_rules(RULES)), "--out", "-"], input=payload
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(payload.encode()))
    assert run(["replay", str(packed), "--rules", str(write_rules(RULES))]).exit_code == 0


def test_exit_codes_for_usage_and_internal_errors(
    write_rules: WriteRules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = write_events(tmp_path / "e.jsonl", [event(1, 1, "10")])
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [")
    assert run(["replay", str(events), "--rules", str(broken)]).exit_code == 2
    assert (
        run(["replay", str(events), "--rules", str(write_rules(RULES)), "--feedback-delay", "soon"]).exit_code
        == 2
    )
    assert run(["replay", str(events), "--rules", str(write_rules(RULES)), "--format", "xls"]).exit_code == 2

    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("payguard._cli.replay", explode)
    result = run(["replay", str(events), "--rules", str(write_rules(RULES))])
    assert result.exit_code == 4
    assert "internal error: RuntimeError: disk on fire" in result.stderr


def test_durations() -> None:
    assert [parse_duration(t) for t in ("7d", "12h", "30m", "45s", "90")] == [604800, 43200, 1800, 45, 90]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("a week")


SCORED_HEADER = "ruleset: {id: s, version: '1', currency: CNY, scoring: {review: 20, hold: 50}}\n"
SCORED = """
rules:
  - {id: big, description: big, when: {amount: {gte: 1000}}, score: 40, reason: r}
  - {id: huge, description: huge, when: {amount: {gte: 5000}}, score: 20, reason: r}
  - {id: known, description: mitigating, when: {payee.type: business}, score: -30, reason: r}
"""


def test_replay_shows_scores_in_the_out_lines_the_summary_and_the_comparison(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    new = write_rules(SCORED, header=SCORED_HEADER, name="new.yaml")
    old = write_rules(SCORED.replace("score: 20", "score: 0"), header=SCORED_HEADER, name="old.yaml")
    business = make_event(
        id="e3",
        timestamp="2026-03-02T03:00:00+00:00",
        amount="6000",
        payee={"account": "C", "type": "business"},
    )
    events = write_events(tmp_path / "e.jsonl", [event(1, 1, "10"), event(2, 2, "6000"), business])
    summary_path = tmp_path / "s.json"
    result = run(
        [
            "replay",
            str(events),
            "--rules",
            str(new),
            "--out",
            "-",
            "--summary-json",
            str(summary_path),
            "--compare",
            str(old),
        ]
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["action"], line["score"], line["old_score"]) for line in lines] == [
        ("allow", 0, 0),
        ("hold", 60, 40),
        ("review", 30, 10),
    ]
    summary = json.loads(summary_path.read_text())
    assert summary["scores"]["decisions_by_score"] == {"0": 1, "30": 1, "60": 1}
    assert (summary["compare"]["score_changed"], summary["compare"]["score_delta_total"]) == (2, 40)


def test_out_lines_mask_accounts_as_the_audit_trail_does_with_or_without_audit(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "e.jsonl", [event(1, 1, "10"), event(2, 2, "2000")])
    key = ["--audit-key", "bank-secret-of-32-bytes-for-test"]
    common = ["replay", str(events), "--rules", str(write_rules(RULES)), *key]
    alone = run([*common, "--out", str(tmp_path / "alone.jsonl")])
    audited = run([*common, "--out", str(tmp_path / "audited.jsonl"), "--audit", str(tmp_path / "a.jsonl")])
    assert (alone.exit_code, audited.exit_code) == (0, 0)
    lines = (tmp_path / "alone.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "audited.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    payers = {r["event_id"]: r["payer"] for r in records if r.get("record") == "decision"}
    assert {json.loads(line)["event_id"]: json.loads(line)["account"] for line in lines} == payers


# A rule set declaring an attribute's type, and a rule that reads history: a payee the history paid is known
DECLARED = """
attributes: {segment: int}
rules:
  - {id: new_payee, description: first payment to a payee, when: {is_new_payee: true}, action: review, reason: r}
"""


def history_and_events(tmp_path: Path) -> tuple[Path, Path]:
    """A history paying B and (with a ``segment`` the rule set declares int, as text) C, then a payment to
    each: only the valid history record can make its payee known."""
    history = write_events(
        tmp_path / "h.jsonl",
        [event(1, 1, "10", payee="B"), {**event(2, 2, "10", payee="C"), "attributes": {"segment": "x"}}],
    )
    events = write_events(tmp_path / "e.jsonl", [event(3, 5, "10", payee="B"), event(4, 6, "10", payee="C")])
    return history, events


def test_a_history_record_whose_attributes_break_the_rule_sets_declaration_is_rejected_not_recorded(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    history, events = history_and_events(tmp_path)
    rejected: list[tuple[str, int, str]] = []
    actions: dict[str, str] = {}
    summary = replay(
        [str(events)],
        Guard.from_path(write_rules(DECLARED), max_future=None),
        history=[str(history)],
        reject=lambda record, reason: rejected.append((record.source, record.line, reason)),
        write=lambda row: actions.update({row["event_id"]: row["action"]}),
    )
    assert rejected == [
        (str(history), 2, "invalid event 'e2': attributes.segment: the rule set declares it int, got str")
    ]
    assert (summary.history, summary.rejected, summary.evaluated) == (1, 1, 2)
    assert actions == {"e3": "allow", "e4": "review"}  # C was never recorded as paid


def test_the_command_reports_a_history_record_the_rule_set_rejects_with_file_and_line_and_exits_3(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    history, events = history_and_events(tmp_path)
    rejects, summary = tmp_path / "rejects.jsonl", tmp_path / "summary.json"
    result = run(
        [
            "replay",
            str(events),
            "--rules",
            str(write_rules(DECLARED)),
            "--history",
            str(history),
            "--rejects",
            str(rejects),
            "--summary-json",
            str(summary),
        ]
    )
    assert result.exit_code == 3, result.stderr
    assert (
        f"{history}:2: rejected: invalid event 'e2': attributes.segment: the rule set declares it int, got str"
        in result.stderr
    )
    assert "error:" not in result.stderr
    assert [(r["file"], r["line"]) for r in map(json.loads, rejects.read_text().splitlines())] == [
        (str(history), 2)
    ]
    data = json.loads(summary.read_text())
    assert (data["history_records"], data["rejected"], data["evaluated"]) == (1, 1, 2)
