"""The stored history format: a history an earlier payguard wrote reads back as it was, with the same
features; one this payguard cannot read is refused with a ``StoreError`` naming the account, never misread.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import struct
from array import array
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from payguard import Action, Guard, SQLiteStore, StoreError
from payguard._rules.fields import FEATURES
from payguard._stores.codec import decode, encode
from payguard._stores.history import FORMAT, MAX_PAYEES, AccountHistory

WriteRules = Callable[..., Path]

PAYER = "6222000011112222"
RULES = """\
ruleset:
  id: history-format
  version: "1"
  timezone: Asia/Shanghai
  currency: CNY
rules:
  - id: big_to_new
    description: hold large payments to new payees
    when: {is_new_payee: true, amount: {gte: 10000}}
    action: hold
    reason: a large payment to a new payee
"""
# A day of one customer that fills every part of a history: a device bound, money, a loan and a broken
# deposit received, payments to a known payee and to a crypto platform, and a large one held.
EVENTS = [
    {"id": "f1", "type": "device_bound", "timestamp": "2026-03-02T10:00:00+08:00",
     "payer": {"account": "6222000011112222"}},
    {"id": "f2", "type": "transfer_in", "timestamp": "2026-03-02T10:10:00+08:00", "amount": "5000.00",
     "currency": "CNY", "payer": {"account": "6222000055556666", "type": "personal"},
     "payee": {"account": "6222000011112222"}},
    {"id": "f3", "type": "loan_disbursement", "timestamp": "2026-03-02T10:20:00+08:00", "amount": "20000.00",
     "currency": "CNY", "payer": {"account": "LENDER-0001", "type": "lender"},
     "payee": {"account": "6222000011112222"}},
    {"id": "f4", "type": "deposit_redemption", "timestamp": "2026-03-02T10:30:00+08:00", "amount": "8000.00",
     "currency": "CNY", "payer": {"account": "6222000011112222-TD"}, "payee": {"account": "6222000011112222"}},
    {"id": "f5", "type": "transfer_out", "timestamp": "2026-03-02T11:00:00+08:00", "amount": "300.00",
     "currency": "CNY", "payer": {"account": "6222000011112222", "balance_before": "33000.00"},
     "payee": {"account": "6222000033334444", "type": "personal"}},
    {"id": "f6", "type": "transfer_out", "timestamp": "2026-03-02T12:00:00+08:00", "amount": "450.00",
     "currency": "CNY", "payer": {"account": "6222000011112222", "balance_before": "32700.00"},
     "payee": {"account": "6222000033334444", "type": "personal"}},
    {"id": "f7", "type": "transfer_out", "timestamp": "2026-03-02T13:00:00+08:00", "amount": "1200.00",
     "currency": "CNY", "payer": {"account": "6222000011112222", "balance_before": "32250.00"},
     "payee": {"account": "VASP-00000001", "type": "vasp"}},
    {"id": "f8", "type": "transfer_out", "timestamp": "2026-03-02T14:00:00+08:00", "amount": "30000.00",
     "currency": "CNY", "payer": {"account": "6222000011112222", "balance_before": "31050.00"},
     "payee": {"account": "6222000077778888", "type": "personal"}},
]  # fmt: skip
PROBE = {
    "id": "probe", "type": "transfer_out", "timestamp": "2026-03-02T15:00:00+08:00", "amount": "600.00",
    "currency": "CNY", "payer": {"account": "6222000011112222", "balance_before": "31050.00"},
    "payee": {"account": "6222000033334444", "type": "personal"},
}  # fmt: skip

# The accounts rows payguard 0.1 wrote for EVENTS: format 1, which has no "format" key. Produced at commit
# 2a50bdc (the last before the format was versioned), built and installed as released (compiled), by
# Guard(load_rule_set(RULES), engine="python", store=SQLiteStore(path)).evaluate(event) for each event,
# then `SELECT key, history FROM accounts ORDER BY key`.
FORMAT_1_ROWS: dict[str, str] = {
    "6222000011112222": (
        '{"out":[[1772420400,30000,4625808437758161208,1,3300000],[1772424000,45000,4625808437758161208,'
        "0,3270000],[1772427600,120000,2051524307048737467,1,3225000],[1772431200,3000000,"
        '3815872818292003622,1,3105000]],"payees":[[4625808437758161208,1772420400,2,1772424000,30000,'
        '45000,1],[2051524307048737467,1772427600,1,1772427600,120000,120000,1]],"sample":[[1772420400,'
        '30000],[1772424000,45000],[1772427600,120000]],"maxima":[[1772427600,120000]],'
        '"inbound":[[1772417400,500000,6843477079555725195,1]],"loans":[[1772418000,2000000,'
        '3178087936988798338]],"deposits":[[1772418600,800000]],"stops":[[1772431200,'
        '3815872818292003622]],"device_time":1772416800,"vasp_time":1772427600,"seen":1772431200,'
        '"pruned":1772431200}'
    ),
    "6222000033334444": (
        '{"out":[],"payees":[],"sample":[],"maxima":[],"inbound":[[1772420400,30000,4471363094493025359,'
        '1],[1772424000,45000,4471363094493025359,1]],"loans":[],"deposits":[],"stops":[],'
        '"device_time":null,"vasp_time":null,"seen":1772424000,"pruned":1772424000}'
    ),
    "vasp00000001": (
        '{"out":[],"payees":[],"sample":[],"maxima":[],"inbound":[[1772427600,120000,4471363094493025359,'
        '1]],"loans":[],"deposits":[],"stops":[],"device_time":null,"vasp_time":null,"seen":1772427600,'
        '"pruned":1772427600}'
    ),
}


def rules_reading_every_feature() -> str:
    """RULES and a shadow rule that reads every feature, so that a decision shows them all."""
    reads = "\n".join(f"        - {{{name}: {{exists: true}}}}" for name in FEATURES)
    shadow = "  - id: reads_everything\n    description: d\n    mode: shadow\n    when:\n      any:\n"
    return RULES + shadow + reads + "\n    action: review\n    reason: r\n"


@pytest.fixture
def guard_over(tmp_path: Path) -> Callable[[str], Guard]:
    """A guard reading every feature over the SQLite store in ``tmp_path/<name>.db``."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_reading_every_feature(), encoding="utf-8")

    def make(name: str) -> Guard:
        return Guard.from_path(rules, engine="python", store=SQLiteStore(tmp_path / f"{name}.db"))

    return make


def unclocked(history: AccountHistory) -> dict[str, Any]:
    """A history's stored form without the clock, and when pruning last ran on it."""
    return {k: v for k, v in history.to_json().items() if k not in ("clock", "pruned")}


def write_rows(path: Path, rows: dict[str, str]) -> None:
    """Write ``rows`` into the accounts table of the SQLite store at ``path``, as another payguard did."""
    SQLiteStore(path).close()  # creates the tables
    with sqlite3.connect(path) as db:
        db.executemany("INSERT OR REPLACE INTO accounts (key, history) VALUES (?, ?)", rows.items())
    db.close()


def stored_rows(path: Path) -> dict[str, bytes | str]:
    """The accounts rows of the SQLite store at ``path``: a history in binary form, or JSON text."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, history FROM accounts").fetchall()
    db.close()
    return dict(rows)


def test_a_history_in_format_2_has_no_snoozes_and_reads_back_as_it_was() -> None:
    # format 2 (payguard 0.2 before snoozes) is format 1 with its version key; format 3 adds "snoozes"
    for text in FORMAT_1_ROWS.values():
        row = json.loads(text)
        assert AccountHistory.from_json({**row, "format": 2}) == AccountHistory.from_json(row)
        assert AccountHistory.from_json({**row, "format": 2}).snoozes == ()
        written = AccountHistory.from_json(row).to_json()
        assert (written["format"], written["snoozes"]) == (FORMAT, [])


def test_a_history_in_format_3_has_no_clock_and_prunes_from_its_latest_time_as_it_did() -> None:
    # format 4 adds "clock": the second latest event time, which pruning is measured from since
    for text in FORMAT_1_ROWS.values():
        row = {**json.loads(text), "format": 3, "snoozes": []}
        history = AccountHistory.from_json(row)
        assert history.clock == row["seen"]
        widened = [[*out, 1, 0] for out in row["out"]]  # format 3 as first written had five columns
        assert history.to_json() == {
            **row,
            "format": FORMAT,
            "clock": row["seen"],
            "out": widened,
            "woke": 0,
            "dormant": 0,
            "names": [],
            "senders": [],
        }


def test_a_history_in_format_4_remembers_no_payee_names_and_otherwise_reads_back_as_it_was() -> None:
    # format 5 adds "names": the names payees were paid under (invoice redirection, PG36)
    for text in FORMAT_1_ROWS.values():
        history = AccountHistory.from_json({**json.loads(text), "format": 3, "snoozes": []})
        row = {k: v for k, v in history.to_json().items() if k not in ("names", "senders")}
        again = AccountHistory.from_json({**row, "format": 4})
        assert again == history
        assert again.names == array("q")
        assert again.to_json() == {**row, "format": FORMAT, "names": [], "senders": []}


def test_a_history_in_format_5_remembers_no_senders_and_otherwise_reads_back_as_it_was() -> None:
    # format 6 adds "senders": the persons who sent the account money, and when they first did (PG17)
    history = AccountHistory.from_json(json.loads(FORMAT_1_ROWS[PAYER]))
    history.add_name(11, 21)
    row = {k: v for k, v in history.to_json().items() if k != "senders"}
    again = AccountHistory.from_json({**row, "format": 5})
    assert again == history
    assert again.first_credited(31) is None
    assert again.senders == array("q")
    assert again.to_json() == {**row, "format": FORMAT, "senders": []}


def test_persons_who_sent_money_are_remembered_with_their_first_credit_in_both_stored_forms() -> None:
    history = AccountHistory.from_json(json.loads(FORMAT_1_ROWS[PAYER]))
    history.add_inbound(1_000, 500, payer=31)
    history.add_inbound(2_000, 700, payer=32)
    history.add_inbound(3_000, 500, payer=31)  # sent again: moved last, its first credit kept
    history.add_inbound(500, 100, payer=32)  # a late event older than the first credit seen
    history.add_inbound(4_000, 90_000, payer=33, personal=False)  # a salary: institutions are not kept
    history.add_inbound(5_000, 13_000, payer=34, own=True)  # the customer's own account at another bank
    assert list(history.senders) == [31, 1_000, 0, 32, 500, 0, 34, 5_000, 1]
    assert history.first_credited(31) == (1_000, False)
    assert history.first_credited(32) == (500, False)
    assert history.first_credited(33) is None
    assert history.first_credited(34) == (5_000, True)
    assert decode(encode(history)) == history
    assert AccountHistory.from_json(json.loads(json.dumps(history.to_json()))) == history
    # binary format 2 had nine lists and no senders: its header is one length shorter
    plain = dataclasses.replace(history, senders=array("q"))
    blob = encode(plain)
    lengths = struct.unpack_from("<10I", blob, 4)
    assert lengths[9] == 0
    assert decode(b"PGH\x02" + struct.pack("<9I", *lengths[:9]) + blob[4 + 40 :]) == plain


def test_senders_are_bounded_like_known_payees_the_least_recently_credited_forgotten_first() -> None:
    history = AccountHistory()
    for payer in range(1, MAX_PAYEES + 2):
        history.add_inbound(payer, 100, payer=payer)
    assert len(history.senders) == MAX_PAYEES * 3
    assert history.first_credited(1) is None  # forgotten: it counts as a new sender again
    assert history.first_credited(2) == (2, False)


def test_payee_names_survive_both_stored_forms_and_an_old_binary_form_reads_without_them() -> None:
    history = AccountHistory.from_json(json.loads(FORMAT_1_ROWS[PAYER]))
    history.add_name(11, 21)
    history.add_name(12, 22)
    history.add_name(11, 21)  # paid again under the same name: moved last, not repeated
    assert list(history.names) == [12, 22, 11, 21]
    assert history.name_paid_elsewhere(11, 23)
    assert not history.name_paid_elsewhere(11, 21)
    assert decode(encode(history)) == history
    assert AccountHistory.from_json(json.loads(json.dumps(history.to_json()))) == history
    # binary format 1 had eight lists and no names: its header is one length shorter
    plain = dataclasses.replace(history, names=array("q"))
    blob = encode(plain)
    lengths = struct.unpack_from("<10I", blob, 4)
    assert lengths[8] == lengths[9] == 0
    old = b"PGH\x01" + struct.pack("<8I", *lengths[:8]) + blob[4 + 40 :]
    assert decode(old) == plain


def test_a_history_written_in_format_1_reads_back_as_it_was_with_the_same_features(
    guard_over: Callable[[str], Guard], tmp_path: Path
) -> None:
    assert "format" not in json.loads(FORMAT_1_ROWS[PAYER]), "format 1 has no version key"
    write_rows(tmp_path / "previous.db", FORMAT_1_ROWS)
    previous = guard_over("previous")
    current = guard_over("current")  # decides the same events today
    for event in EVENTS:
        current.evaluate(event)

    assert set(stored_rows(tmp_path / "current.db")) == set(FORMAT_1_ROWS)
    with previous.store.transaction() as old, current.store.transaction() as new:
        for key in FORMAT_1_ROWS:
            before, now = old.account(key), new.account(key)
            # format 1 kept no clock: pruning went on from the latest time, and goes on from it once
            assert before.clock == before.seen
            # format 3 added two columns to the outgoing rows that format 1 cannot know (whether the payee
            # is a person, whether the payment is stopped): read back as "a person", "executed"
            assert before.to_json()["out"] == [[*row[:5], 1, 0] for row in now.to_json()["out"]], key
            # and format 6 the persons who sent money, which an older history read back has not remembered
            assert before.senders == array("q")
            assert unclocked(dataclasses.replace(before, out=now.out, senders=now.senders)) == unclocked(
                now
            ), key
    probe_previous, probe_current = previous.evaluate(PROBE), current.evaluate(PROBE)
    # the features that read format 3's new columns (a person? stopped?) differ; every other is the same
    unknowable = {
        "new_personal_payee_count_24h",
        "new_stranger_count_24h",
        "stranger_share_24h",
        "drain_ratio_24h",
        "out_to_loans_24h",
    }
    assert {k: v for k, v in probe_previous.features.items() if k not in unknowable} == {
        k: v for k, v in probe_current.features.items() if k not in unknowable
    }
    assert probe_current.features["loan_inflow_24h"] == "20000.00"  # the probe reads a full history
    assert probe_current.features["recent_stops_30d"] == 1
    assert probe_current.features["payee_payment_count"] == 2
    previous.close()
    current.close()
    written = stored_rows(tmp_path / "previous.db")[PAYER]
    assert isinstance(written, bytes), "written back in today's binary form, not the JSON text it was"
    assert decode(written).seen == datetime.fromisoformat(PROBE["timestamp"]).timestamp(), "the probe's time"


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        pytest.param(
            lambda row: {**row, "format": 99},
            "in format 99: this payguard reads formats 1, 2, 3, 4, 5, 6",
            id="a newer format",
        ),
        pytest.param(lambda row: {**row, "format": "2"}, "in format '2'", id="a format that is not a number"),
        pytest.param(lambda row: [row], "not an account history but a JSON list", id="not a history"),
        pytest.param(
            lambda row: {k: v for k, v in row.items() if k != "seen"},
            "damaged: KeyError('seen')",
            id="a missing column",
        ),
        pytest.param(
            lambda row: {**row, "out": [r[:4] for r in row["out"]]},
            "a row of 4 numbers where there are 5 columns",
            id="rows that lost a column",
        ),
        pytest.param(
            lambda row: {**row, "payees": [[*r, 0] for r in row["payees"]]},
            "a row of 8 numbers",
            id="payees with a column too many",
        ),
        pytest.param(
            lambda row: {**row, "seen": "yesterday"},
            "seen is a str, not an integer",
            id="a time that is not a number",
        ),
        pytest.param(lambda row: {**row, "sample": [[1.5, 2]]}, "damaged: TypeError", id="a fraction"),
        pytest.param(lambda row: json.dumps(row)[:-9], "line 1 column", id="truncated JSON"),
    ],
)
def test_a_history_this_payguard_cannot_read_is_refused_naming_the_account_never_misread(
    tmp_path: Path, damage: Callable[[Any], Any], says: str
) -> None:
    damaged = damage(json.loads(FORMAT_1_ROWS[PAYER]))
    write_rows(tmp_path / "damaged.db", {PAYER: damaged if isinstance(damaged, str) else json.dumps(damaged)})
    store = SQLiteStore(tmp_path / "damaged.db")
    with pytest.raises(StoreError) as raised, store.transaction() as txn:
        txn.account(PAYER)
    message = str(raised.value)
    assert f"the history of account …{PAYER[-4:]} (accounts row 1) cannot be read" in message
    assert says in message
    store.close()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        pytest.param(lambda blob: blob[:-20], "cut short", id="truncated"),
        pytest.param(lambda blob: b"PGH\x07" + blob[4:], "in binary format 7", id="a newer binary format"),
        pytest.param(lambda blob: b"XYZ" + blob[3:], "not an account history", id="not a history"),
    ],
)
def test_a_binary_history_this_payguard_cannot_read_is_refused_naming_the_account(
    tmp_path: Path, damage: Callable[[bytes], bytes], says: str
) -> None:
    # the form this store writes since it stopped writing JSON text
    blob = encode(AccountHistory.from_json(json.loads(FORMAT_1_ROWS[PAYER])))
    SQLiteStore(tmp_path / "damaged.db").close()
    with sqlite3.connect(tmp_path / "damaged.db") as db:
        db.execute("INSERT INTO accounts (key, history) VALUES (?, ?)", (PAYER, damage(blob)))
    db.close()
    store = SQLiteStore(tmp_path / "damaged.db")
    with pytest.raises(StoreError) as raised, store.transaction() as txn:
        txn.account(PAYER)
    assert f"the history of account …{PAYER[-4:]} (accounts row 1) cannot be read" in str(raised.value)
    assert says in str(raised.value)
    store.close()


def test_a_guard_holds_a_payment_whose_history_it_cannot_read_and_the_audit_names_no_account(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    write_rows(
        tmp_path / "damaged.db", {PAYER: json.dumps({**json.loads(FORMAT_1_ROWS[PAYER]), "format": 99})}
    )
    audit = tmp_path / "audit.jsonl"
    rules = write_rules(RULES, header="")
    with Guard.from_path(rules, store=SQLiteStore(tmp_path / "damaged.db"), audit=audit) as guard:
        decision = guard.evaluate(PROBE)
    assert decision.action is Action.HOLD
    assert decision.error is not None
    assert "StoreError" in decision.error
    assert "…2222 (accounts row 1) cannot be read: an account history in format 99" in decision.error
    text = audit.read_text(encoding="utf-8")
    assert "format 99" in text
    assert PAYER not in text, "the audit trail masks account numbers, error messages included"
