"""Readers: every record becomes an event or a rejection with its file, line and reason."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from payguard import parse_event
from payguard._io import read_records
from payguard._io.base import Limits, ReaderError, guess_format

from ..conftest import SHARED_DATA

ISO = SHARED_DATA / "iso20022"
needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared/data is not beside the checkout")


def test_formats_are_guessed_from_the_file_name() -> None:
    assert [guess_format(n) for n in ("a.jsonl", "a.csv.gz", "B.XML", "-", "x.ndjson")] == [
        "jsonl",
        "csv",
        "iso20022",
        "jsonl",
        "jsonl",
    ]


def test_json_lines_report_bad_lines_and_keep_going(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": "a"}\n\nnot json\n[1, 2]\n{"id": "b"}\n')
    found = [(r.line, r.event, r.error) for r in read_records(str(path))]
    assert [f[0] for f in found] == [1, 3, 4, 5]
    assert found[0][1] == {"id": "a"}
    assert found[1][2] is not None
    assert found[1][2].startswith("invalid JSON")
    assert found[2][2] == "expected a JSON object, got list"


def test_gzip_is_detected_by_content_and_a_truncated_stream_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    payload = "".join(f'{{"id": "e{n}"}}\n' for n in range(2000)).encode()
    path.write_bytes(gzip.compress(payload))
    assert sum(r.event is not None for r in read_records(str(path))) == 2000
    path.write_bytes(gzip.compress(payload)[:-200])
    records = list(read_records(str(path)))
    assert records[-1].error is not None
    assert "cannot read the file" in records[-1].error
    assert all(r.event is not None for r in records[:-1])


def test_binary_garbage_is_one_rejection_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(bytes(range(256)) * 10)
    records = list(read_records(str(path)))
    assert records
    assert all(r.event is None for r in records)


def test_a_csv_mapping_file_maps_columns_constants_and_time_zones(tmp_path: Path) -> None:
    (tmp_path / "bank.yaml").write_text(
        "columns:\n  id: ref\n  timestamp: booked\n  amount: amt\n  payer.account: from\n  payee.account: to\n"
        "  label.is_fraud: fraud\nconstants:\n  currency: CNY\ntimezone: Asia/Shanghai\n"
        "timestamp_format: '%Y/%m/%d %H:%M'\n"
    )
    (tmp_path / "tx.csv").write_text(
        "ref,booked,amt,from,to,fraud\nr1,2026/03/02 10:00,12.50,A,B,1\nr2,bad,1,A,B,0\n"
    )
    first, second = read_records(str(tmp_path / "tx.csv"), mapping=str(tmp_path / "bank.yaml"))
    event = parse_event(first.event)
    assert (event.id, event.timestamp.isoformat(), str(event.amount)) == (
        "r1",
        "2026-03-02T10:00:00+08:00",
        "12.50",
    )
    assert event.label is not None
    assert event.label.is_fraud
    assert second.event is None
    assert second.line == 3
    assert "cannot map the row" in (second.error or "")


def test_a_csv_with_the_wrong_mapping_says_which_columns_are_missing(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text("a,b\n1,2\n")
    (record,) = read_records(str(tmp_path / "tx.csv"), mapping="paysim")
    assert record.error is not None
    assert record.error.startswith("missing column(s) step, type, amount")
    with pytest.raises(ReaderError, match="unknown mapping"):
        read_records(str(tmp_path / "tx.csv"), mapping="nosuchmapping")
    with pytest.raises(ReaderError, match="needs --mapping"):
        read_records(str(tmp_path / "tx.csv"))


@needs_data
@pytest.mark.parametrize(
    ("name", "mapping", "first_id"),
    [
        ("paysim/paysim_sample.csv", "paysim", "paysim-2"),
        ("handbook/handbook_2018-04.csv.gz", "handbook", "handbook-0"),
        ("amlsim/fanin200/transactions.csv", "amlsim", "amlsim-2"),
    ],
)
def test_built_in_mappings_read_the_public_data_sets(name: str, mapping: str, first_id: str) -> None:
    records = read_records(str(SHARED_DATA / name), mapping=mapping)
    first = [next(records) for _ in range(50)]
    assert first[0].event is not None
    assert first[0].event["id"] == first_id
    for record in first:
        assert record.event is not None, record.error
        event = parse_event(record.event)
        assert event.label is not None


@needs_data
def test_amlsim_labels_transfers_inside_laundering_patterns() -> None:
    labelled = [
        r.event["label"]["is_fraud"]
        for r in read_records(str(SHARED_DATA / "amlsim/fanin200/transactions.csv"), mapping="amlsim")
        if r.event
    ]
    assert (len(labelled), sum(labelled)) == (118_250, 3_435)


@needs_data
def test_all_iso20022_files_read_without_a_crash() -> None:
    files = sorted(ISO.rglob("*.xml"))
    assert len(files) == 119
    events = rejects = 0
    for path in files:
        for record in read_records(str(path)):
            if record.event is not None:
                parse_event(record.event)
                events += 1
            else:
                rejects += 1
                assert record.error
    assert events >= 130
    assert rejects <= 10


@needs_data
def test_a_pain001_transfer_maps_debtor_creditor_amount_date_and_remittance() -> None:
    (record,) = read_records(
        str(ISO / "pain001_market_corpus/sg/instant-payment/sg.fast.single.pain.001.001.09.xml")
    )
    event = parse_event(record.event)
    # message id / payment information id / end-to-end id / position: unique across messages
    assert event.id == "MTP-20260921-01/MTP-FAST-260921-01/MTP-2026-0921-001/1"
    assert (event.attributes["end_to_end_id"], str(event.amount), event.currency) == (
        "MTP-2026-0921-001",
        "45200.00",
        "SGD",
    )
    assert event.payer.account == "0123456789"
    assert event.timestamp.isoformat() == "2026-09-21T00:00:00+00:00"


@needs_data
def test_statements_are_not_payments_and_say_so() -> None:
    (record,) = read_records(str(ISO / "moov-io_iso20022/FI_camt_053_sample.xml.xml"))
    assert record.error is not None
    assert "not a payment message: a camt.053 account statement" in record.error


def test_xml_bombs_and_external_entities_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
        "<Document><CstmrCdtTrfInitn>&lol2;</CstmrCdtTrfInitn></Document>"
    )
    (record,) = read_records(str(bomb))
    assert record.error is not None
    assert record.error.startswith("refused")
    external = tmp_path / "xxe.xml"
    external.write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>'
    )
    (record,) = read_records(str(external))
    assert record.error is not None
    assert record.error.startswith("refused")


def test_a_large_xml_file_is_streamed(tmp_path: Path) -> None:
    transfer = (
        "<CdtTrfTxInf><PmtId><EndToEndId>E{n}</EndToEndId></PmtId><Amt><InstdAmt Ccy='EUR'>10.00</InstdAmt></Amt>"
        "<CdtrAcct><Id><IBAN>DE02100100109307118603</IBAN></Id></CdtrAcct><RmtInf><Ustrd>invoice {n}</Ustrd></RmtInf>"
        "</CdtTrfTxInf>"
    )
    path = tmp_path / "big.xml"
    with path.open("w") as handle:
        handle.write(
            "<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'><CstmrCdtTrfInitn>"
            "<GrpHdr><MsgId>M</MsgId><CreDtTm>2026-01-05T09:00:00</CreDtTm></GrpHdr><PmtInf><PmtInfId>P</PmtInfId>"
            "<ReqdExctnDt>2026-01-05</ReqdExctnDt><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct>\n"
        )
        for n in range(20000):
            handle.write(transfer.format(n=n) + "\n")
        handle.write("</PmtInf></CstmrCdtTrfInitn></Document>\n")
    count = 0
    for record in read_records(str(path)):
        assert record.event is not None, record.error
        count += 1
    assert count == 20000
    assert record.line == 20001


def test_an_invalid_utf8_byte_rejects_its_json_line_alone_and_later_lines_are_read(tmp_path: Path) -> None:
    # before: the decoding error ended the file at line 2, and was reported at line 1 + 1
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n\n{"id": "c"}\n')
    found = [(r.line, r.event, r.error) for r in read_records(str(path))]
    assert found == [
        (1, {"id": "a"}, None),
        (2, None, "not valid UTF-8 (byte 12 of the record)"),
        (4, {"id": "c"}, None),
    ]


def test_an_over_long_json_line_is_rejected_unread_and_the_next_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": "a"}\n{"memo": "' + "x" * 5000 + '"}\n{"id": "c"}\n')
    found = [(r.line, r.error) for r in read_records(str(path), limits=Limits(max_line=1000))]
    assert found == [(1, None), (2, "line longer than 1,000 bytes"), (3, None)]


def test_a_json_line_nested_beyond_the_parser_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + '\n{"id": "b"}\n')
    found = [(r.line, r.error) for r in read_records(str(path))]
    assert found == [(1, "invalid JSON: nested too deeply"), (2, None)]


CSV_MAPPING = (
    "columns:\n  id: ref\n  timestamp: booked\n  amount: amt\n  payer.account: from\n  payee.account: to\n"
)


def test_a_csv_field_over_the_limit_rejects_its_record_alone(tmp_path: Path) -> None:
    # before: csv's "field larger than field limit (131072)" ended the file at the long field
    (tmp_path / "bank.yaml").write_text(CSV_MAPPING)
    long = "x" * 131_073
    (tmp_path / "tx.csv").write_text(
        "ref,booked,amt,from,to\n"
        "r1,2026-03-02T10:00:00+08:00,1,A,B\n"
        f'r2,2026-03-02T10:00:00+08:00,1,"{long}",B\n'
        "r3,2026-03-02T10:00:00+08:00,1,A,B\n"
    )
    found = [
        (r.line, r.event["id"] if r.event else r.error)
        for r in read_records(str(tmp_path / "tx.csv"), mapping=str(tmp_path / "bank.yaml"))
    ]
    assert found == [(2, "r1"), (3, "a field longer than 131,072 characters"), (4, "r3")]
    tight = read_records(
        str(tmp_path / "tx.csv"), mapping=str(tmp_path / "bank.yaml"), limits=Limits(max_field=1)
    )
    assert [r.error for r in tight][:2] == [
        "longer than 1 characters: column(s) ref, booked",
        "a field longer than 1 characters",
    ]


def test_a_csv_record_with_undecodable_bytes_is_rejected_at_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "bank.yaml").write_text(CSV_MAPPING)
    (tmp_path / "tx.csv").write_bytes(
        b"ref,booked,amt,from,to\n"
        b'r1,2026-03-02T10:00:00+08:00,1,"A\nsecond line",B\n'  # a quoted field over two lines
        b"r2,2026-03-02T10:00:00+08:00,1,\xff\xfe,B\n"
        b"r3,2026-03-02T10:00:00+08:00,1,A,B\n"
    )
    found = [
        (r.line, r.event["id"] if r.event else r.error)
        for r in read_records(str(tmp_path / "tx.csv"), mapping=str(tmp_path / "bank.yaml"))
    ]
    assert found == [(2, "r1"), (4, "not valid UTF-8 (byte 32 of the record)"), (5, "r3")]


def test_a_csv_value_that_cannot_be_mapped_is_named_by_its_column_never_quoted(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text(
        "step,type,amount,nameOrig,oldbalanceOrg,nameDest,isFraud\n1,C6217555500001111,9,C1,0,M2,0\n"
    )
    (record,) = read_records(str(tmp_path / "tx.csv"), mapping="paysim")
    assert record.error is not None
    assert record.error.startswith("cannot map the row: column 'type': not one of PAYMENT")
    assert "6217555500001111" not in record.error


def test_limits_are_checked() -> None:
    with pytest.raises(ReaderError, match="max_field"):
        Limits(max_field=200_000)
