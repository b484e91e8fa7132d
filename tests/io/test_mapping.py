"""Mapping files are validated when they load, and any mapping takes currency and timezone overrides."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from payguard._event import Event, Intel, Label, Party, Session
from payguard._io import read_records
from payguard._io.base import ReaderError
from payguard._io.mapping import CANONICAL_FIELDS

HANDBOOK_CSV = (
    "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,"
    "TX_FRAUD_SCENARIO\n0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0\n"
)


def test_the_canonical_fields_a_mapping_may_name_are_the_event_model_s() -> None:
    nested = {"payer": Party, "payee": Party, "session": Session, "intel": Intel, "label": Label}
    expected = {
        f"{name}.{sub}" if name in nested else name
        for name in Event.model_fields
        if name != "attributes"
        for sub in (nested[name].model_fields if name in nested else [""])
    }
    assert expected == CANONICAL_FIELDS


def test_a_mapping_file_with_mistakes_is_refused_naming_each_line(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "columns:\n  payer.acount: customer\n  amount: value\ntimezone: Mars/Base\ncurrency: eur\ncolums: {}\n"
    )
    (tmp_path / "t.csv").write_text("customer,value\nA,1\n")
    with pytest.raises(ReaderError) as caught:
        read_records(str(tmp_path / "t.csv"), "csv", str(mapping))
    message = str(caught.value)
    assert (
        f"{mapping}:2: columns: unknown canonical field 'payer.acount' (did you mean 'payer.account'?)"
        in message
    )
    assert f"{mapping}:4: unknown time zone 'Mars/Base'" in message
    assert f"{mapping}:5: currency must be an ISO 4217 code" in message
    assert f"{mapping}:6: unknown mapping key 'colums' (did you mean 'columns'?)" in message


def test_a_built_in_mapping_takes_currency_and_timezone_overrides(tmp_path: Path) -> None:
    data = tmp_path / "cards.csv.gz"
    data.write_bytes(gzip.compress(HANDBOOK_CSV.encode()))
    [plain] = read_records(str(data), "csv", "handbook")
    assert plain.event is not None
    assert (plain.event["currency"], plain.event["timestamp"]) == ("EUR", "2018-04-01T00:00:31+00:00")
    mapping = tmp_path / "cards.yaml"
    mapping.write_text("base: handbook\ncurrency: CNY\ntimezone: Asia/Shanghai\n")
    [record] = read_records(str(data), "csv", str(mapping))
    assert record.event is not None
    assert (record.event["currency"], record.event["timestamp"]) == ("CNY", "2018-04-01T00:00:31+08:00")
    assert record.event["amount"] == "57.16"  # relabelled, not converted: the rules' thresholds now apply


def test_a_mapping_file_s_currency_applies_to_money_events(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "columns: {payer.account: a, payee.account: b, amount: v, timestamp: t}\ncurrency: EUR\n"
    )
    (tmp_path / "t.csv").write_text("a,b,v,t\nA,B,10,2026-03-02T10:00:00+00:00\n")
    [record] = read_records(str(tmp_path / "t.csv"), "csv", str(mapping))
    assert record.event is not None
    assert record.event["currency"] == "EUR"
