"""ISO 20022: pain.001 customer credit transfers (any version, country variants) and pacs.008 interbank
transfers, namespace-agnostic, parsed with DTDs and entities refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from .base import CHUNK, MAX_TEXT_NODE, Record, _open_binary
from .tabular import _OTHER_ROOTS, _PAYMENT_ROOTS, _STREAM_ERRORS


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


def read_iso20022(name: str) -> Iterator[Record]:
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
