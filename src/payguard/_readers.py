"""Readers: transaction files into canonical event dicts, one ``Record`` per input record.

Every reader streams, and never raises for bad input: a record that cannot be read (bad JSON, a missing
column, a file that is not a payment message, a truncated gzip stream) becomes a ``Record`` with an
``error`` and its position, so that nothing is dropped without a trace.

- ``jsonl``: the canonical form, one JSON object per line.
- ``csv``: with a column mapping, a YAML file or one of the built-in ones (``paysim``, ``handbook``,
  ``amlsim``) for the public data sets.
- ``iso20022``: pain.001 customer credit transfers (any version, country variants) and pacs.008
  interbank transfers, namespace-agnostic, parsed with DTDs and entities refused.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ._errors import PayguardError

__all__ = ["FORMATS", "ReaderError", "Record", "guess_format", "load_mapping", "read_records", "set_path"]

FORMATS = ("jsonl", "csv", "iso20022")
MAX_TEXT_NODE = 10_000
CHUNK = 1 << 16


class ReaderError(PayguardError, ValueError):
    """A reader option is wrong (an unknown format or mapping); bad *data* becomes rejected records."""


@dataclass(frozen=True)
class Record:
    """One input record: the event dict it maps to, or the reason it could not be read."""

    source: str
    line: int
    event: dict[str, Any] | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def guess_format(name: str) -> str:
    """The reader for a file name: .jsonl, .csv or .xml, each maybe .gz; stdin is JSON Lines."""
    base = name.lower().removesuffix(".gz")
    if base.endswith(".csv"):
        return "csv"
    if base.endswith(".xml"):
        return "iso20022"
    return "jsonl"


def _open_binary(name: str) -> IO[bytes]:
    """A binary stream of ``name`` (``-`` is stdin), decompressed when it starts with the gzip magic."""
    if name == "-":
        stdin = (
            io.BufferedReader(sys.stdin.buffer.raw) if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
        )
        if isinstance(stdin, io.BufferedReader) and stdin.peek(2)[:2] == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=stdin)  # type: ignore[return-value]
        return stdin
    with Path(name).open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    return gzip.open(name, "rb") if compressed else Path(name).open("rb")  # type: ignore[return-value]


def _open_text(name: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(name), encoding="utf-8-sig", newline="")


_STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, gzip.BadGzipFile)


def _read_jsonl(name: str) -> Iterator[Record]:
    line = 0
    try:
        with _open_text(name) as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield Record(name, line, None, f"invalid JSON: {exc}")
                    continue
                if isinstance(value, dict):
                    yield Record(name, line, value)
                else:
                    yield Record(name, line, None, f"expected a JSON object, got {type(value).__name__}")
    except _STREAM_ERRORS as exc:
        yield Record(name, line + 1, None, f"cannot read the file: {exc}")


# -- CSV -------------------------------------------------------------------------------------------

RowMapper = Callable[[Mapping[str, str], int], dict[str, Any]]


@dataclass(frozen=True)
class CsvMapping:
    """How the columns of a CSV file become canonical fields."""

    name: str
    convert: RowMapper
    required: tuple[str, ...]


def set_path(event: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``payer.account``-style dotted paths in an event dict, creating the objects on the way."""
    target = event
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _truthy(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "1.0", "true", "yes", "y", "t"):
        return True
    if text in ("0", "0.0", "false", "no", "n", "f", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _timestamp(value: str, fmt: str | None, zone: str) -> str:
    text = value.strip()
    parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)  # noqa: DTZ007 (zone added below)
    if parsed.tzinfo is None:
        from ._event import zone as tz

        parsed = parsed.replace(tzinfo=tz(zone))
    return parsed.isoformat()


_BOOL_FIELDS = {
    "label.is_fraud",
    "session.on_call",
    "session.caller_in_contacts",
    "session.screen_sharing",
    "session.remote_access",
    "payer.own_account",
    "payee.own_account",
}


def _file_mapping(path: Path) -> CsvMapping:
    """A mapping file: ``columns`` (field: column), ``constants`` (field: value), ``timezone``,
    ``timestamp_format`` (strptime) and ``id_prefix`` (ids from line numbers when there is no id column)."""
    try:
        spec = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ReaderError(f"cannot read mapping {str(path)!r}: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise ReaderError(f"{path}: a mapping needs 'columns', a map of canonical fields to CSV columns")
    unknown = set(spec) - {"columns", "constants", "timezone", "timestamp_format", "id_prefix", "delimiter"}
    if unknown:
        raise ReaderError(f"{path}: unknown mapping keys {sorted(unknown)}")
    columns: dict[str, str] = {str(k): str(v) for k, v in spec["columns"].items()}
    constants: dict[str, Any] = dict(spec.get("constants") or {})
    zone = str(spec.get("timezone", "UTC"))
    fmt = spec.get("timestamp_format")
    prefix = str(spec.get("id_prefix", path.stem))

    def convert(row: Mapping[str, str], line: int) -> dict[str, Any]:
        event: dict[str, Any] = {}
        for field, value in constants.items():
            set_path(event, field, value)
        for field, column in columns.items():
            raw = row[column]
            if raw is None or raw == "":
                continue
            if field == "timestamp":
                set_path(event, field, _timestamp(raw, fmt, zone))
            else:
                set_path(event, field, _truthy(raw) if field in _BOOL_FIELDS else raw)
        event.setdefault("id", f"{prefix}-{line}")
        return event

    return CsvMapping(str(path), convert, tuple(columns.values()))


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_CENT = Decimal("0.01")
_PAYSIM_TYPES = {
    "PAYMENT": "transfer_out",
    "TRANSFER": "transfer_out",
    "DEBIT": "transfer_out",
    "CASH_OUT": "transfer_out",
    "CASH_IN": "transfer_in",
}


def _paysim(row: Mapping[str, str], line: int) -> dict[str, Any]:
    """PaySim: ``step`` is hours from 2026-01-01T00:00Z; amounts in USD (the data names none); CASH_IN is
    money credited to ``nameOrig`` by the agent ``nameDest``, every other type a payment from ``nameOrig``."""
    kind = _PAYSIM_TYPES[row["type"]]
    customer = {"account": row["nameOrig"], "balance_before": row["oldbalanceOrg"]}
    other = {
        "account": row["nameDest"],
        "type": "merchant" if row["nameDest"].startswith("M") else "personal",
    }
    payer, payee = (other, {"account": row["nameOrig"]}) if kind == "transfer_in" else (customer, other)
    return {
        "id": f"paysim-{line}",
        "type": kind,
        "timestamp": (_EPOCH + timedelta(hours=int(row["step"]))).isoformat(),
        "amount": row["amount"],
        "currency": "USD",
        "payer": payer,
        "payee": payee,
        "attributes": {"paysim_type": row["type"]},
        "label": {"is_fraud": _truthy(row["isFraud"]), "typology": "paysim"},
    }


def _handbook(row: Mapping[str, str], line: int) -> dict[str, Any]:
    """The fraud-detection handbook's card transactions: customer pays terminal, times in UTC, EUR.

    The CSV was written from floats, so some amounts read ``85.64999999999999``: they are rounded to the
    cent (half even). Amounts of 0 stay 0 and are rejected as invalid events.
    """
    scenario = row["TX_FRAUD_SCENARIO"].strip()
    amount = Decimal(row["TX_AMOUNT"].strip()).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    return {
        "id": f"handbook-{row['TRANSACTION_ID']}",
        "type": "transfer_out",
        "timestamp": _timestamp(row["TX_DATETIME"], None, "UTC"),  # "2018-04-01 00:00:31", ISO enough
        "amount": str(amount),
        "currency": "EUR",
        "channel": "other",
        "payer": {"account": f"C{row['CUSTOMER_ID']}"},
        "payee": {"account": f"T{row['TERMINAL_ID']}", "type": "merchant"},
        "label": {
            "is_fraud": _truthy(row["TX_FRAUD"]),
            "typology": f"scenario_{scenario}" if scenario != "0" else None,
        },
    }


def _amlsim(source: str) -> RowMapper:
    """AMLSim fan-in: ``time`` is days from 2026-01-01; amounts in USD. The data labels accounts, not
    transfers: a transfer is labelled fraud when both its accounts are fraud accounts, that is when it
    is one of the edges of a laundering pattern (3,435 of 118,250)."""
    nodes_path = Path(source).parent / "nodes.csv"
    fraud: set[str] = set()
    try:
        with _open_text(str(nodes_path)) as handle:
            fraud = {row["nodeid"] for row in csv.DictReader(handle) if row["isFraud"].strip() == "1"}
    except (*_STREAM_ERRORS, KeyError) as exc:
        raise ReaderError(f"the amlsim mapping needs nodes.csv beside {source}: {exc}") from exc

    def convert(row: Mapping[str, str], line: int) -> dict[str, Any]:
        source_id, target_id = row["sourceNodeId"], row["targetNodeId"]
        return {
            "id": f"amlsim-{line}",
            "type": "transfer_out",
            "timestamp": (_EPOCH + timedelta(days=int(row["time"]))).isoformat(),
            "amount": row["value"],
            "currency": "USD",
            "payer": {"account": f"N{source_id}"},
            "payee": {"account": f"N{target_id}", "type": "personal"},
            "label": {"is_fraud": source_id in fraud and target_id in fraud, "typology": "amlsim_fan_in"},
        }

    return convert


BUILT_IN_MAPPINGS = ("paysim", "handbook", "amlsim")


def load_mapping(name: str | None, source: str) -> CsvMapping:
    """A built-in mapping by name, or a mapping file by path."""
    if name is None:
        raise ReaderError(
            f"{source}: a CSV file needs --mapping (paysim, handbook, amlsim or a mapping file)"
        )
    if name == "paysim":
        return CsvMapping(
            "paysim", _paysim, ("step", "type", "amount", "nameOrig", "oldbalanceOrg", "nameDest", "isFraud")
        )
    if name == "handbook":
        return CsvMapping(
            "handbook",
            _handbook,
            (
                "TRANSACTION_ID",
                "TX_DATETIME",
                "CUSTOMER_ID",
                "TERMINAL_ID",
                "TX_AMOUNT",
                "TX_FRAUD",
                "TX_FRAUD_SCENARIO",
            ),
        )
    if name == "amlsim":
        return CsvMapping("amlsim", _amlsim(source), ("sourceNodeId", "targetNodeId", "value", "time"))
    path = Path(name)
    if not path.exists():
        raise ReaderError(
            f"unknown mapping {name!r}: use {', '.join(BUILT_IN_MAPPINGS)} or a mapping file path"
        )
    return _file_mapping(path)


def _read_csv(name: str, mapping: CsvMapping) -> Iterator[Record]:
    line = 1
    try:
        with _open_text(name) as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in mapping.required if c not in header]
            if missing:
                yield Record(
                    name, 1, None, f"missing column(s) {', '.join(missing)} for mapping {mapping.name}"
                )
                return
            for row in reader:
                line = reader.line_num
                if None in row or any(v is None for v in row.values()):
                    yield Record(name, line, None, f"expected {len(header)} columns")
                    continue
                try:
                    yield Record(name, line, mapping.convert(row, line))
                except (KeyError, ValueError, InvalidOperation) as exc:
                    yield Record(name, line, None, f"cannot map the row: {type(exc).__name__}: {exc}")
    except (*_STREAM_ERRORS, csv.Error) as exc:
        yield Record(name, line + 1, None, f"cannot read the file: {exc}")


# -- ISO 20022 ---------------------------------------------------------------------------------------

_PAYMENT_ROOTS = {"CstmrCdtTrfInitn": "pain.001", "FIToFICstmrCdtTrf": "pacs.008"}
_OTHER_ROOTS = {
    "BkToCstmrStmt": "a camt.053 account statement",
    "BkToCstmrDbtCdtNtfctn": "a camt.054 debit/credit notification",
    "BkToCstmrAcctRpt": "a camt.052 account report",
    "CstmrDrctDbtInitn": "a pain.008 direct debit initiation",
    "CstmrPmtStsRpt": "a pain.002 payment status report",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class _Iso20022Target:
    """Builds one event per credit transfer while expat streams the document; keeps no tree."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parser: Any = None
        self.path: list[str] = []
        self.text: list[str] = []
        self.kind: str | None = None
        self.header: dict[str, str] = {}
        self.batch: dict[str, str] = {}
        self.tx: dict[str, Any] | None = None
        self.ready: list[Record] = []
        self.count = 0
        self.rejected = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = _local(tag)
        self.path.append(name)
        self.text = []
        depth = len(self.path)
        if depth == 2:
            self.kind = _PAYMENT_ROOTS.get(name)
            if self.kind is None:
                self.rejected = True
                what = _OTHER_ROOTS.get(name, f"a {name} message")
                self.ready.append(
                    Record(
                        self.source,
                        self._line(),
                        None,
                        f"not a payment message: {what}; payguard reads pain.001 and pacs.008",
                    )
                )
        elif name == "PmtInf" and self.kind == "pain.001":
            self.batch = {}
        elif name == "CdtTrfTxInf" and self.kind is not None:
            self.tx = {"ustrd": []}
        if self.tx is not None and name in ("InstdAmt", "IntrBkSttlmAmt"):
            self.tx[f"{name}.Ccy"] = attrib.get("Ccy", "")
        elif self.tx is not None and name == "Amt" and depth >= 2 and self.path[-2] == "EqvtAmt":
            self.tx["EqvtAmt.Ccy"] = attrib.get("Ccy", "")

    def data(self, text: str) -> None:
        if sum(map(len, self.text)) < MAX_TEXT_NODE:
            self.text.append(text)

    def _line(self) -> int:
        return int(getattr(self.parser, "CurrentLineNumber", 0) or 0)

    def end(self, tag: str) -> None:
        name = _local(tag)
        value = "".join(self.text).strip()
        self.text = []
        path = self.path
        tail = "/".join(path[-3:])
        if self.kind is not None:
            if self.tx is not None:
                self._transaction_field(name, tail, value)
                if name == "CdtTrfTxInf":
                    self._emit()
            elif "GrpHdr" in path:
                if name in ("MsgId", "CreDtTm"):
                    self.header.setdefault(name, value)
            elif "PmtInf" in path:
                self._batch_field(name, tail, value)
        path.pop()

    def _batch_field(self, name: str, tail: str, value: str) -> None:
        if name == "PmtInfId":
            self.batch["PmtInfId"] = value
        elif (tail.endswith(("ReqdExctnDt/Dt", "ReqdExctnDt/DtTm")) or name == "ReqdExctnDt") and value:
            self.batch["date"] = value
        elif tail.endswith("Dbtr/Nm"):
            self.batch["debtor_name"] = value
        elif "DbtrAcct" in self.path and (name == "IBAN" or tail.endswith("Othr/Id")):
            self.batch.setdefault("debtor_account", value)

    def _transaction_field(self, name: str, tail: str, value: str) -> None:
        tx = self.tx
        assert tx is not None
        if tail.endswith("PmtId/EndToEndId"):
            tx["e2e"] = value
        elif tail.endswith("PmtId/UETR"):
            tx["uetr"] = value
        elif name in ("InstdAmt", "IntrBkSttlmAmt"):
            tx[name] = value
        elif tail.endswith("EqvtAmt/Amt"):
            tx["EqvtAmt"] = value  # the amount in the debtor's currency, for a transfer in another one
        elif name == "IntrBkSttlmDt":
            tx["date"] = value
        elif tail.endswith("Cdtr/Nm") and "CdtrAgt" not in self.path:
            tx["creditor_name"] = value
        elif tail.endswith("Dbtr/Nm") and "DbtrAgt" not in self.path:
            tx["debtor_name"] = value
        elif "CdtrAcct" in self.path and (name == "IBAN" or tail.endswith("Othr/Id")):
            tx.setdefault("creditor_account", value)
        elif "DbtrAcct" in self.path and (name == "IBAN" or tail.endswith("Othr/Id")):
            tx.setdefault("debtor_account", value)
        elif name == "Ustrd" and value:
            tx["ustrd"].append(value)

    def _emit(self) -> None:
        tx, batch, header = self.tx or {}, self.batch, self.header
        self.tx = None
        self.count += 1
        line = self._line()
        amount_tag = next((t for t in ("InstdAmt", "EqvtAmt", "IntrBkSttlmAmt") if t in tx), "InstdAmt")
        payer = tx.get("debtor_account") or batch.get("debtor_account")
        payee = tx.get("creditor_account")
        missing = [
            what
            for what, value in (
                ("debtor account (DbtrAcct)", payer),
                ("creditor account (CdtrAcct)", payee),
                ("amount (InstdAmt or IntrBkSttlmAmt)", tx.get(amount_tag)),
            )
            if not value
        ]
        if missing:
            self.ready.append(
                Record(self.source, line, None, f"credit transfer {self.count}: no {', no '.join(missing)}")
            )
            return
        when = batch.get("date") or tx.get("date") or header.get("CreDtTm", "")
        try:
            stamp = datetime.fromisoformat(when)
        except ValueError:
            self.ready.append(
                Record(
                    self.source,
                    line,
                    None,
                    f"credit transfer {self.count}: no usable execution date or creation time",
                )
            )
            return
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)  # ISO 20022 local times without offset: read as UTC
        e2e = tx.get("e2e")
        event_id = tx.get("uetr") or (e2e if e2e and e2e.upper() != "NOTPROVIDED" else None)
        if event_id is None:
            event_id = f"{header.get('MsgId', self.source)}/{batch.get('PmtInfId', '')}/{self.count}"
        event: dict[str, Any] = {
            "id": event_id,
            "type": "transfer_out",
            "timestamp": stamp.isoformat(),
            "amount": tx[amount_tag],
            "currency": tx.get(f"{amount_tag}.Ccy", ""),
            "payer": {"account": payer},
            "payee": {"account": payee},
            "attributes": {"iso20022": self.kind or ""},
        }
        debtor_name = tx.get("debtor_name") or batch.get("debtor_name")
        if debtor_name:
            event["payer"]["name"] = debtor_name[:256]
        if tx.get("creditor_name"):
            event["payee"]["name"] = tx["creditor_name"][:256]
        if tx["ustrd"]:
            event["memo"] = " ".join(tx["ustrd"])
        self.ready.append(Record(self.source, line, event))

    def close(self) -> None:
        return None


def _read_iso20022(name: str) -> Iterator[Record]:
    target = _Iso20022Target(name)
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = getattr(parser, "parser", None)
    try:
        with _open_binary(name) as handle:
            while chunk := handle.read(CHUNK):
                parser.feed(chunk)
                yield from target.ready
                target.ready.clear()
                if target.rejected:
                    return  # not a payment message: said once, no need to read the rest
            parser.close()
        yield from target.ready
        if target.kind is not None and target.count == 0:
            yield Record(
                name, target._line(), None, "the payment message holds no credit transfer (CdtTrfTxInf)"
            )
        elif target.kind is None and not target.rejected:
            yield Record(name, 1, None, "not an ISO 20022 document")
    except DefusedXmlException as exc:
        yield from target.ready
        yield Record(
            name, target._line(), None, f"refused: {type(exc).__name__} (DTDs and entities are not allowed)"
        )
    except (*_STREAM_ERRORS, SyntaxError) as exc:  # ParseError is a SyntaxError
        yield from target.ready
        yield Record(name, target._line() or 1, None, f"invalid XML: {exc}")


def read_records(name: str, fmt: str | None = None, mapping: str | None = None) -> Iterator[Record]:
    """The records of one file (``-`` is stdin), in file order. Raises ``ReaderError`` only for options."""
    chosen = fmt or guess_format(name)
    if chosen not in FORMATS:
        raise ReaderError(f"unknown format {chosen!r}: use {', '.join(FORMATS)}")
    if name != "-" and not Path(name).is_file():
        return iter([Record(name, 0, None, "no such file")])
    if chosen == "csv":
        return _read_csv(name, load_mapping(mapping, name))  # a bad mapping fails here, before reading
    if chosen == "iso20022":
        return _read_iso20022(name)
    return _read_jsonl(name)
