"""ISO 20022 messages as banks receive them: headers and envelopes, ids unique across messages, counts
and control sums checked before a transfer is read, possible duplicates said as such."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard._cli import main
from payguard._io import read_records

from ..conftest import SHARED_DATA

FIXTURES = Path(__file__).parent / "fixtures"
ISO = SHARED_DATA / "iso20022"
needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared/data is not beside the checkout")
WriteRules = Callable[..., Path]
EUR = 'ruleset:\n  id: test\n  version: "1"\n  timezone: Europe/Berlin\n  currency: EUR\n'
RULES = """
rules:
  - {id: large, description: a large payment, when: {amount: {gte: 10000}}, action: hold, reason: r}
"""

TRANSFER = """
      <CdtTrfTxInf>
        <PmtId><EndToEndId>{e2e}</EndToEndId></PmtId>
        <Amt><InstdAmt Ccy="EUR">{amount}</InstdAmt></Amt>
        <CdtrAcct><Id><IBAN>{payee}</IBAN></Id></CdtrAcct>
      </CdtTrfTxInf>"""


def pain001(
    msg_id: str,
    amounts: list[str],
    *,
    declared: str = "",
    block: str = "",
    e2e: str = "INVOICE-1",
    payee: str = "DE02100100109307118603",
) -> str:
    """A pain.001 of one payment information block, its group header and block declaring ``declared`` and
    ``block`` (NbOfTxs, CtrlSum elements)."""
    transfers = "".join(TRANSFER.format(e2e=e2e, amount=amount, payee=payee) for amount in amounts)
    return f"""<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn>
    <GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>2026-03-16T09:00:00+01:00</CreDtTm>{declared}</GrpHdr>
    <PmtInf>
      <PmtInfId>{msg_id}-B1</PmtInfId>{block}
      <ReqdExctnDt><Dt>2026-03-16</Dt></ReqdExctnDt>
      <DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct>{transfers}
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>"""


def header(biz_id: str, possible_duplicate: bool = False) -> str:
    flag = "<PssblDplct>true</PssblDplct>" if possible_duplicate else ""
    return (
        '<AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">'
        f"<BizMsgIdr>{biz_id}</BizMsgIdr><MsgDefIdr>pain.001.001.09</MsgDefIdr>"
        f"<CreDt>2026-03-16T09:00:00+01:00</CreDt>{flag}</AppHdr>"
    )


def envelope(*parts: str) -> str:
    return '<Envelope xmlns="urn:swift:xsd:envelope">' + "".join(parts) + "</Envelope>"


def records(path: Path) -> list[tuple[int, str | None, Any]]:
    return [(r.line, r.error, r.event) for r in read_records(str(path))]


# -- messages as banks receive them ---------------------------------------------------------------------
def test_a_pacs008_in_a_swift_envelope_beside_its_application_header_is_read() -> None:
    (record,) = read_records(str(FIXTURES / "cbpr_envelope_pacs008.xml"))
    assert record.error is None, "today's reader said: not a payment message: a AppHdr message"
    event = record.event
    assert event is not None
    # the document has no MsgId and no date: the header's BizMsgIdr and CreDt serve (not the related one's)
    assert event["id"] == "CBPR-20260316-0001//INSTR-0001/1"
    assert event["timestamp"] == "2026-03-16T09:25:00+08:00"
    assert (event["amount"], event["currency"], event["memo"]) == (
        "150000.00",
        "CNY",
        "transfer to safe account",
    )
    assert event["attributes"] == {
        "iso20022": "pacs.008",
        "end_to_end_id": "INVOICE-42",
        "uetr": "8a562c67-ca16-48ba-b074-65581be6f001",
    }
    assert not record.possible_duplicate


def test_an_rtgs_file_of_wrapped_messages_is_read_message_by_message() -> None:
    found = [r.event["id"] for r in read_records(str(FIXTURES / "rtgs_bizdata_pacs008.xml")) if r.event]
    assert found == [
        "RTGS-MSG-0001//RENT-MARCH/1",
        "RTGS-MSG-0001//RENT-MARCH/2",
        "RTGS-MSG-0002//RENT-MARCH/1",
    ]


def test_a_header_without_a_document_is_not_an_iso_20022_document(tmp_path: Path) -> None:
    path = tmp_path / "header.xml"
    path.write_text(envelope(header("H-1")))
    assert records(path) == [(1, "not an ISO 20022 document", None)]


# -- event ids --------------------------------------------------------------------------------------------
def test_two_messages_reusing_an_end_to_end_id_give_two_events_each_decided(
    tmp_path: Path, write_rules: WriteRules
) -> None:
    # EndToEndId is the customer's reference: two invoices may carry the same one, and ids must not collide
    for name, msg_id, amount in (("a.xml", "MSG-A", "15.00"), ("b.xml", "MSG-B", "150000.00")):
        (tmp_path / name).write_text(pain001(msg_id, [amount], e2e="INVOICE-1"))
    ids = [
        r.event["id"] for name in ("a.xml", "b.xml") for r in read_records(str(tmp_path / name)) if r.event
    ]
    assert ids == ["MSG-A/MSG-A-B1/INVOICE-1/1", "MSG-B/MSG-B-B1/INVOICE-1/1"]
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(tmp_path / "a.xml"),
            str(tmp_path / "b.xml"),
            "--rules",
            str(write_rules(RULES, header=EUR)),
            "--out",
            "-",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["action"] for line in result.stdout.splitlines()] == ["allow", "hold"]


def test_a_slash_inside_an_id_part_is_escaped_so_that_ids_of_different_parts_never_meet(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.xml").write_text(pain001("M/1", ["1.00"], e2e="X"))
    (event,) = [r.event for r in read_records(str(tmp_path / "a.xml"))]
    assert event is not None
    assert event["id"] == "M%2F1/M%2F1-B1/X/1"


# -- counts and control sums --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("declared", "block", "reason"),
    [
        pytest.param(
            "<NbOfTxs>3</NbOfTxs>",
            "",
            "the group header says NbOfTxs 3, and it holds 2 credit transfers",
            id="count",
        ),
        pytest.param(
            "<NbOfTxs>2</NbOfTxs><CtrlSum>30.00</CtrlSum>",
            "",
            "the group header says CtrlSum 30.00, and its amounts add up to 20.00",
            id="control sum",
        ),
        pytest.param(
            "<NbOfTxs>2</NbOfTxs><CtrlSum>20</CtrlSum>",
            "<NbOfTxs>2</NbOfTxs><CtrlSum>19.99</CtrlSum>",
            "payment information M-B1 says CtrlSum 19.99, and its amounts add up to 20.00",
            id="a block's control sum",
        ),
        pytest.param(
            "<NbOfTxs>two</NbOfTxs>",
            "",
            "the group header says NbOfTxs two, and it holds 2",
            id="not a number",
        ),
    ],
)
def test_a_message_whose_counts_do_not_match_is_rejected_whole_with_the_reason(
    tmp_path: Path, declared: str, block: str, reason: str
) -> None:
    path = tmp_path / "m.xml"
    path.write_text(pain001("M", ["10.00", "10.00"], declared=declared, block=block))
    ((line, error, event),) = records(path)
    assert (line, event) == (1, None)
    assert error is not None
    assert error.startswith(f"message M: {reason}")
    assert error.endswith("none of its credit transfers is evaluated")


def test_a_message_whose_counts_match_is_read_whatever_the_number_format(tmp_path: Path) -> None:
    path = tmp_path / "m.xml"
    declared = "<NbOfTxs>2</NbOfTxs><CtrlSum>20</CtrlSum>"
    message = pain001("M", ["10.00", "10.0"], declared=declared, block="<NbOfTxs>2</NbOfTxs>")
    path.write_text(envelope(header("H-1"), message))
    assert [error for _, error, _ in records(path)] == [None, None]


@needs_data
def test_the_postfinance_sample_whose_header_counts_7_of_its_8_transfers_is_rejected() -> None:
    ((_, error, event),) = records(ISO / "moov-io_iso20022/musterfile_pain.001_Nov2020.xml")
    assert event is None
    assert error == (
        "message MsgId-001: the group header says NbOfTxs 7, and it holds 8 credit transfers; "
        "none of its credit transfers is evaluated"
    )


def test_of_a_file_that_breaks_off_only_the_messages_it_holds_whole_are_read(tmp_path: Path) -> None:
    whole = pain001("WHOLE", ["1.00"], declared="<NbOfTxs>1</NbOfTxs>")
    cut = pain001("CUT", ["2.00", "3.00"], declared="<NbOfTxs>2</NbOfTxs>")
    path = tmp_path / "cut.xml"
    path.write_text(envelope(whole, cut)[: -len("</Envelope>") - 120])
    found = records(path)
    assert [event["id"] for _, _, event in found if event] == ["WHOLE/WHOLE-B1/INVOICE-1/1"]
    (error,) = [error for _, error, event in found if event is None]
    assert error is not None
    assert error.startswith("invalid XML")


# -- possible duplicates ------------------------------------------------------------------------------------
def test_a_message_resent_as_a_possible_duplicate_is_reported_as_one_and_not_decided_twice(
    tmp_path: Path, write_rules: WriteRules
) -> None:
    original = envelope(header("BIZ-1"), pain001("M-1", ["15.00", "20.00"]))
    resent = envelope(header("BIZ-1", possible_duplicate=True), pain001("M-1", ["15.00", "20.00"]))
    (tmp_path / "original.xml").write_text(original)
    (tmp_path / "resent.xml").write_text(resent)
    assert [r.possible_duplicate for r in read_records(str(tmp_path / "resent.xml"))] == [True, True]
    assert [r.possible_duplicate for r in read_records(str(tmp_path / "original.xml"))] == [False, False]
    rules = str(write_rules(RULES, header=EUR))
    both = [
        "replay",
        str(tmp_path / "original.xml"),
        str(tmp_path / "resent.xml"),
        "--rules",
        rules,
        "--out",
        "-",
    ]
    result = CliRunner().invoke(main, [*both, "--summary-json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2, "decided once"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["possible_duplicates"], summary["duplicates"], summary["conflicts"]) == (2, 2, 0)
    assert "possible duplicates 2" in result.stderr
    # a possible duplicate whose original never came is decided, and says what it is
    alone = CliRunner().invoke(main, ["replay", str(tmp_path / "resent.xml"), "--rules", rules, "--out", "-"])
    assert [json.loads(line).get("possible_duplicate") for line in alone.stdout.splitlines()] == [True, True]


def test_a_message_on_stdin_is_read_twice_like_a_file(tmp_path: Path, write_rules: WriteRules) -> None:
    message = pain001("M", ["10.00", "10.00"], declared="<NbOfTxs>2</NbOfTxs>")
    result = CliRunner().invoke(
        main,
        ["replay", "-", "--format", "iso20022", "--rules", str(write_rules(RULES, header=EUR)), "--out", "-"],
        input=message,
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    bad = CliRunner().invoke(
        main,
        ["replay", "-", "--format", "iso20022", "--rules", str(write_rules(RULES, header=EUR))],
        input=message.replace("<NbOfTxs>2", "<NbOfTxs>3"),
    )
    assert bad.exit_code == 3
    assert "-:1: rejected: message M: the group header says NbOfTxs 3" in bad.stderr
