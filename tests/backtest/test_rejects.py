"""The driver routes records as read and the partitions validate them, yet bad input is what it is
serially: the same rejections (file, line and message, in replay order), the same duplicates and
conflicts, the same feedback, the same exit code; and the plan's routing of a record as read is where the
valid event's histories are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from payguard import parse_event
from payguard._backtest.plan import routed
from payguard._features.context import accounts
from payguard._io import read_records

from ..conftest import make_event
from .worlds import DEMO, RUNS, SYNCHRONOUS, decided, dense_world, parted, replay_both, serial, write_jsonl

SMALL_RULES = """\
ruleset: {id: small, version: "1", timezone: UTC, currency: CNY}
attributes: {segment: int}
lists:
  fraud_accounts: []
rules:
  - {id: big, description: big, when: {amount: {gte: 800}}, action: hold, reason: r}
  - {id: listed, description: listed, when: {payee.account: {in_list: fraud_accounts}}, action: interrupt, reason: r}
  - {id: stops, description: stops, when: {recent_stops_60m: {gte: 1}}, action: review, reason: r}
"""


def at(minute: int) -> str:
    return f"2026-03-02T{10 + minute // 60:02d}:{minute % 60:02d}:00+00:00"


def payment(event_id: str, minute: int, payer: str, payee: str, amount: str = "100.00", **extra: Any) -> Any:
    return make_event(
        id=event_id,
        timestamp=at(minute),
        amount=amount,
        payer={"account": payer},
        payee={"account": payee},
        **extra,
    )


def bad_world() -> tuple[list[str], list[str]]:
    """Payments with every kind of bad record between them, as JSON lines (some not JSON)."""
    good = [payment(f"g{n}", n * 3, f"6222000{n % 4}", f"6222000{(n + 1) % 5}") for n in range(20)]
    good[2]["label"] = {"is_fraud": True}  # feedback lists its payee
    good[5]["label"] = {"is_fraud": True}
    lines = [json.dumps(event) for event in good]
    # an invalid record whose id a valid one takes later: that one is decided, not a duplicate
    lines.insert(3, json.dumps(payment("reused", 8, "62220001", "62220002", amount="-5")))
    lines.insert(12, json.dumps(payment("reused", 30, "62220001", "62220002")))
    lines.insert(4, "{not json")
    lines.insert(6, json.dumps({**good[0], "payer": {"name": "no account"}}))  # no payer account: partition 0
    lines.insert(7, json.dumps({**good[0], "id": 7}))  # an id that is not a string
    lines.insert(9, json.dumps({**good[0], "payee": "62220003"}))  # a payee that is not an object
    lines.insert(10, json.dumps({**good[0], "type": ["transfer_out"]}))  # a type that is not a string
    lines.append(json.dumps(good[1]))  # a duplicate, marked as maybe sent before
    lines.append(json.dumps({**good[4], "amount": "999.00"}))  # a conflict: the id of another event
    lines.append(json.dumps({**good[6], "unknown_field": 1}))
    lines.append(
        json.dumps({**good[7], "id": "typed", "attributes": {"segment": "x"}})
    )  # the rule set's type
    history = [
        json.dumps(payment("h1", -600, "62220001", "62220004")),
        json.dumps(payment("h2", -500, "62220002", "62220001", amount="abc")),
        "[1, 2",
        json.dumps({**payment("h3", -400, "62220003", "62220004"), "attributes": {"segment": "x"}}),
    ]
    return lines, history


def without_decision_id(text: str) -> str:
    """A decision id is a guard's random prefix and its count: the serial and partitioned ones differ."""
    return re.sub(r"decision \S+\)", "decision ...)", text)


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("partitions", [1, 3])
def test_bad_records_are_rejected_counted_and_reported_in_replay_order_as_serially(
    partitions: int, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SMALL_RULES, encoding="utf-8")
    events, history = bad_world()
    files = [write_lines(tmp_path / "e.jsonl", events)]
    past = [write_lines(tmp_path / "h.jsonl", history)]
    found: dict[str, list[tuple[str, int, str]]] = {"serial": [], "parted": []}

    def reporter(name: str) -> Any:
        return lambda record, reason: found[name].append(
            (record.source, record.line, without_decision_id(reason))
        )

    options = {"history": past, "feedback_delay": 60}
    expected = serial(files, rules, reject=reporter("serial"), **options)
    lines, summary = parted(files, rules, partitions, reject=reporter("parted"), **options)
    assert lines == expected[0]
    assert decided(summary.to_dict()) == decided(expected[1])
    data = summary.to_dict()
    assert (data["history_records"], data["rejected"], data["duplicates"], data["conflicts"]) == (1, 11, 1, 1)
    assert data["accounts_listed_by_feedback"] == 2
    assert "reused" in {line["event_id"] for line in lines}
    assert found["parted"] == found["serial"]
    assert len(found["parted"]) == 12  # 11 rejected, 1 conflict


def test_the_command_with_bad_input_writes_the_serial_rejects_and_exits_3(tmp_path: Path) -> None:
    events, history = bad_world()
    files = write_lines(tmp_path / "e.jsonl", events)
    past = write_lines(tmp_path / "h.jsonl", history)
    rules = tmp_path / "rules.yaml"
    rules.write_text(SMALL_RULES, encoding="utf-8")
    replays = replay_both(
        tmp_path,
        # the rejects' accounts masked alike
        [files, "--rules", str(rules), "--history", past, "--audit-key", "partitioned-rejects-test-key-0123"],
        ["--partitions", "3", *SYNCHRONOUS],
        files={"--rejects": "rejects.jsonl", "--out": "jsonl"},
        exit_code=3,
    )
    serial_stderr, parted_stderr = (
        [
            without_decision_id(line)
            for line in replays.results[run].stderr.splitlines()
            if ": rejected: " in line
        ]
        for run in RUNS
    )
    assert parted_stderr == serial_stderr
    for suffix in ("rejects.jsonl", "jsonl"):
        serial_text, parted_text = replays.read(suffix)
        assert without_decision_id(parted_text) == without_decision_id(serial_text)


def test_a_record_routed_as_read_goes_where_its_valid_event_touches_histories(tmp_path: Path) -> None:
    files = [*DEMO[0], *DEMO[1], write_jsonl(tmp_path / "dense.jsonl", dense_world(events=500))]
    checked = 0
    for name in files:
        for record in read_records(name, None, None, None):
            assert record.event is not None
            assert routed(record.event) == accounts(parse_event(record.event))
            checked += 1
    assert checked > 1000
