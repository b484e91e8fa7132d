"""CSV files with a column mapping: a YAML file, or one of the built-in ones for the public data sets
(``paysim``, ``handbook``, ``amlsim``)."""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, TypeVar

from .base import Limits, ReaderError, Record, _open_binary, _open_text, lines, set_path, undecodable
from .mapping import read_mapping_file, with_overrides

__all__ = ["load_mapping"]

_STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, gzip.BadGzipFile)


# -- CSV -------------------------------------------------------------------------------------------

RowMapper = Callable[[Mapping[str, str], int], dict[str, Any]]


@dataclass(frozen=True)
class CsvMapping:
    """How the columns of a CSV file become canonical fields."""

    name: str
    convert: RowMapper
    required: tuple[str, ...]


T = TypeVar("T")


class ColumnError(ValueError):
    """A CSV value that cannot be mapped, named by its column; the value itself is never repeated (it may
    be an account number or free text)."""

    def __init__(self, column: str, expected: str) -> None:
        super().__init__(f"column {column!r}: {expected}")


def _column(row: Mapping[str, str], column: str, parse: Callable[[str], T], expected: str) -> T:
    """``parse(row[column])``; ``ColumnError`` naming the column if it fails."""
    try:
        return parse(row[column])
    except (ValueError, InvalidOperation, KeyError, OverflowError):
        raise ColumnError(column, expected) from None


def _truthy(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "1.0", "true", "yes", "y", "t"):
        return True
    if text in ("0", "0.0", "false", "no", "n", "f", ""):
        return False
    raise ValueError("not a boolean")


def _timestamp(value: str, fmt: str | None, zone: str) -> str:
    text = value.strip()
    parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)  # noqa: DTZ007 (zone added below)
    if parsed.tzinfo is None:
        from .._common.time import zone as tz

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


def _file_mapping(path: Path, source: str) -> CsvMapping:
    """A mapping file (validated by ``read_mapping_file``): ``columns`` (field: column), ``constants``
    (field: value), ``timezone``, ``timestamp_format`` (strptime) and ``id_prefix`` (ids from line numbers
    when there is no id column); or ``base`` (a built-in mapping) with ``currency`` and ``timezone``
    overrides."""
    spec = read_mapping_file(path)
    if spec.base is not None:
        base = load_mapping(spec.base, source)
        convert = with_overrides(base.convert, spec.currency, spec.timezone)
        return CsvMapping(f"{spec.base} ({path})", convert, base.required)
    columns, constants = spec.columns, spec.constants
    zone = spec.timezone or "UTC"
    fmt, prefix = spec.timestamp_format, spec.id_prefix

    def convert_row(row: Mapping[str, str], line: int) -> dict[str, Any]:
        event: dict[str, Any] = {}
        for field, value in constants.items():
            set_path(event, field, value)
        for field, column in columns.items():
            raw = row[column]
            if raw is None or raw == "":
                continue
            if field == "timestamp":
                stamp = _column(row, column, lambda v: _timestamp(v, fmt, zone), "not a timestamp")
                set_path(event, field, stamp)
            elif field in _BOOL_FIELDS:
                set_path(event, field, _column(row, column, _truthy, "not a boolean"))
            else:
                set_path(event, field, raw)
        event.setdefault("id", f"{prefix}-{line}")
        return event

    return CsvMapping(str(path), with_overrides(convert_row, spec.currency, None), tuple(columns.values()))


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
    kind = _column(row, "type", _PAYSIM_TYPES.__getitem__, f"not one of {', '.join(_PAYSIM_TYPES)}")
    customer = {"account": row["nameOrig"], "balance_before": row["oldbalanceOrg"]}
    other = {
        "account": row["nameDest"],
        "type": "merchant" if row["nameDest"].startswith("M") else "personal",
    }
    payer, payee = (other, {"account": row["nameOrig"]}) if kind == "transfer_in" else (customer, other)
    return {
        "id": f"paysim-{line}",
        "type": kind,
        "timestamp": (_EPOCH + timedelta(hours=_column(row, "step", int, "not an integer"))).isoformat(),
        "amount": row["amount"],
        "currency": "USD",
        "payer": payer,
        "payee": payee,
        "attributes": {"paysim_type": row["type"]},
        "label": {"is_fraud": _column(row, "isFraud", _truthy, "not a boolean"), "typology": "paysim"},
    }


def _handbook(row: Mapping[str, str], line: int) -> dict[str, Any]:
    """The fraud-detection handbook's card transactions: customer pays terminal, times in UTC, EUR.

    The CSV was written from floats, so some amounts read ``85.64999999999999``: they are rounded to the
    cent (half even). Amounts of 0 stay 0 and are rejected as invalid events.
    """
    scenario = row["TX_FRAUD_SCENARIO"].strip()
    amount = _column(row, "TX_AMOUNT", lambda v: Decimal(v.strip()), "not a decimal number").quantize(
        _CENT, rounding=ROUND_HALF_EVEN
    )
    return {
        "id": f"handbook-{row['TRANSACTION_ID']}",
        "type": "transfer_out",
        # "2018-04-01 00:00:31", ISO enough
        "timestamp": _column(row, "TX_DATETIME", lambda v: _timestamp(v, None, "UTC"), "not a timestamp"),
        "amount": str(amount),
        "currency": "EUR",
        "channel": "other",
        "payer": {"account": f"C{row['CUSTOMER_ID']}"},
        "payee": {"account": f"T{row['TERMINAL_ID']}", "type": "merchant"},
        "label": {
            "is_fraud": _column(row, "TX_FRAUD", _truthy, "not a boolean"),
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
            "timestamp": (_EPOCH + timedelta(days=_column(row, "time", int, "not an integer"))).isoformat(),
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
    return _file_mapping(path, source)


def _csv_records(handle: IO[bytes], limits: Limits) -> Iterator[tuple[int, str | None, str | None]]:
    """(first line, text, reason it cannot be read) of each CSV record: physical lines joined while a
    quoted field is open (an odd number of quotes so far), each record decoded on its own."""
    pending: list[bytes] = []
    start = size = quotes = 0
    for number, raw in lines(handle, limits.max_line):
        if raw is None:
            if pending:
                yield start, None, "a quoted field is not closed before an over-long line"
                pending, size, quotes = [], 0, 0
            yield number, None, f"line longer than {limits.max_line:,} bytes"
            continue
        if not pending:
            start = number
        pending.append(raw)
        size += len(raw)
        quotes += raw.count(b'"')
        if size > limits.max_line:
            yield start, None, f"record longer than {limits.max_line:,} bytes"
            pending, size, quotes = [], 0, 0
        elif quotes % 2 == 0:
            data = b"".join(pending)
            pending, size, quotes = [], 0, 0
            try:
                yield start, data.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield start, None, undecodable(exc)
    if pending:
        yield start, None, "a quoted field is not closed at the end of the file"


def _fields(text: str) -> list[str]:
    """The fields of one CSV record; ``csv.Error`` for a malformed one (its message quotes no data)."""
    return next(csv.reader([text]), [])


def read_csv(name: str, mapping: CsvMapping, limits: Limits | None = None) -> Iterator[Record]:
    """The records of a CSV file; a record that cannot be read (bytes that are not UTF-8, a line or a
    field over ``limits``, malformed quoting) is rejected alone, named by its first line, and the records
    after it are still read."""
    limits = limits or Limits()
    line = 1
    header: list[str] | None = None
    try:
        with _open_binary(name) as handle:
            for line, text, unreadable in _csv_records(handle, limits):
                error, row = unreadable, []
                if text is not None:
                    try:
                        row = _fields(text)
                    except csv.Error as exc:  # the csv module's own field limit, or malformed quoting
                        limit = "field larger than field limit" in str(exc)
                        error = (
                            f"a field longer than {limits.max_field:,} characters"
                            if limit
                            else f"malformed CSV: {exc}"
                        )
                if error is not None:
                    yield Record(name, line, None, error if header is not None else f"header: {error}")
                    if header is None:
                        return
                    continue
                if not row:
                    continue  # a blank line
                if header is None:
                    header = row
                    missing = [c for c in mapping.required if c not in header]
                    if missing:
                        yield Record(
                            name,
                            line,
                            None,
                            f"missing column(s) {', '.join(missing)} for mapping {mapping.name}",
                        )
                        return
                    continue
                if len(row) != len(header):
                    yield Record(name, line, None, f"expected {len(header)} columns")
                    continue
                long = [
                    column for column, value in zip(header, row, strict=True) if len(value) > limits.max_field
                ]
                if long:
                    message = f"longer than {limits.max_field:,} characters: column(s) {', '.join(long)}"
                    yield Record(name, line, None, message)
                    continue
                try:
                    yield Record(name, line, mapping.convert(dict(zip(header, row, strict=True)), line))
                except ColumnError as exc:
                    yield Record(name, line, None, f"cannot map the row: {exc}")
                except (KeyError, ValueError, InvalidOperation, OverflowError) as exc:
                    # a mapping's own failure: named by its kind only, since its text may quote a value
                    yield Record(name, line, None, f"cannot map the row: {type(exc).__name__}")
    except _STREAM_ERRORS as exc:
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
