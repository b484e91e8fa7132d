"""ISO 20022: pain.001 customer credit transfers (any version, country variants) and pacs.008 interbank
transfers, namespace-agnostic, parsed with DTDs and entities refused.

Messages are read as banks receive them: a ``Document`` alone, or beside its Business Application
Header (head.001 ``AppHdr``) inside any envelope (SWIFT, CBPR+, an RTGS wrapper), several to a file. The
header's ``BizMsgIdr`` and ``CreDt`` serve where the document has no message id or creation time, and a
message it marks ``PssblDplct`` yields records marked ``possible_duplicate``.

A file is read twice, streamed both times: first to check each message's ``NbOfTxs`` and ``CtrlSum``
(of its group header and of each payment information block) against the transfers it holds, then to
map them. A message whose counts or sums do not match is one rejected record with the reason, and none
of its transfers is evaluated; nor is any of a message the file breaks off in.

An event's id names its transfer across messages: message id, payment information id, instruction id
(else end-to-end id) and position in the message, joined by ``/`` (a ``/`` or ``%`` inside a part is
escaped as ``%2F``, ``%25``). The end-to-end id (customer-set, not unique) and the UETR are kept in
the event's attributes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from .base import CHUNK, MAX_TEXT_NODE, Record, _open_binary
from .tabular import _OTHER_ROOTS, _PAYMENT_ROOTS, _STREAM_ERRORS

_AMOUNT_TAGS = ("InstdAmt", "EqvtAmt", "IntrBkSttlmAmt")
_HEADER_FIELDS = ("BizMsgIdr", "CreDt", "PssblDplct")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _part(text: str) -> str:
    return text.replace("%", "%25").replace("/", "%2F")


@dataclass
class _Count:
    """What a group header or a payment information block declares, and what it holds."""

    declared: dict[str, str] = field(default_factory=dict)  # NbOfTxs, CtrlSum as written
    count: int = 0
    total: Decimal = Decimal(0)
    unreadable: int = 0  # the position of the first amount that is not a number (0: none)

    def add(self, position: int, amount: str | None) -> None:
        self.count += 1
        try:
            self.total += Decimal(amount or "0")
        except InvalidOperation:
            self.unreadable = self.unreadable or position

    def problems(self, what: str) -> list[str]:
        found = []
        count, total = self.declared.get("NbOfTxs"), self.declared.get("CtrlSum")
        if count is not None and (not count.isdigit() or int(count) != self.count):
            found.append(f"{what} says NbOfTxs {count}, and it holds {self.count} credit transfers")
        if total is None:
            return found
        try:
            declared = Decimal(total)
        except InvalidOperation:
            found.append(f"{what} says CtrlSum {total!r}, which is not a number")
            return found
        if self.unreadable:
            found.append(
                f"{what} says CtrlSum {total}, and credit transfer {self.unreadable}'s amount is not a number"
            )
        elif declared != self.total:
            found.append(f"{what} says CtrlSum {total}, and its amounts add up to {self.total}")
        return found


@dataclass
class _Message:
    """One message as the first pass found it: its Business Application Header, and its problem."""

    header: dict[str, str]
    complete: bool = False
    problem: str | None = None


class _Iso20022Target:
    """Streams one pass over a file while expat parses it; keeps no tree.

    The first pass (``survey``) fills ``messages`` with each message's header and problem; the second
    maps the transfers of the messages the first found sound into events.
    """

    def __init__(self, source: str, messages: list[_Message], survey: bool) -> None:
        self.source = source
        self.survey = survey
        self.messages = messages  # filled by the first pass, read by the second
        self.index = 0  # of the next message
        self.parser: Any = None
        self.path: list[str] = []
        self.text: list[str] = []
        self.app_header: dict[str, str] | None = None  # the AppHdr being read
        self.next_header: dict[str, str] = {}  # the last AppHdr read: for the next message
        # the depth whose element's end ends the message being read (0: none), and of its root element
        self.end_depth = 0
        self.root_depth = 0
        self.message: _Message | None = None
        self.kind: str | None = None
        self.skip = False  # the rest of this message is not read
        self.broken = False  # the second pass reached the message the file breaks off in
        self.found = False  # whether any message was found
        self.header: dict[str, str] = {}
        self.batch: dict[str, str] = {}
        self.group = _Count()  # the group header's counts
        self.block = _Count()  # the payment information block's
        self.problems: list[str] = []
        self.tx: dict[str, Any] | None = None
        self.ready: list[Record] = []
        self.count = 0

    # -- expat's callbacks --------------------------------------------------------------------------
    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = _local(tag)
        self.path.append(name)
        self.text = []
        depth = len(self.path)
        if not self.end_depth:  # between messages: a Document, a message without one, or a header
            if name == "Document":
                self._begin(depth, depth + 1)
            elif name in _PAYMENT_ROOTS or name in _OTHER_ROOTS:
                self._begin(depth, depth)
                self._root(name)
            elif name == "AppHdr":
                self.app_header = {}
            return
        if self.skip:
            return
        if depth == self.root_depth:
            self._root(name)
        elif name == "PmtInf" and self.kind == "pain.001":
            self.batch, self.block = {}, _Count()
        elif name == "CdtTrfTxInf" and self.kind is not None:
            self.tx = {"ustrd": []}
        if self.tx is not None and name in ("InstdAmt", "IntrBkSttlmAmt"):
            self.tx[f"{name}.Ccy"] = attrib.get("Ccy", "")
        elif self.tx is not None and name == "Amt" and depth >= 2 and self.path[-2] == "EqvtAmt":
            self.tx["EqvtAmt.Ccy"] = attrib.get("Ccy", "")

    def data(self, text: str) -> None:
        if sum(map(len, self.text)) < MAX_TEXT_NODE:
            self.text.append(text)

    def end(self, tag: str) -> None:
        name = _local(tag)
        value = "".join(self.text).strip()
        self.text = []
        path = self.path
        if self.app_header is not None:
            if name == "AppHdr":
                self.next_header, self.app_header = self.app_header, None
            elif path[-2] == "AppHdr" and name in _HEADER_FIELDS:  # not those of a related message (Rltd)
                self.app_header[name] = value
        elif self.end_depth and not self.skip and self.kind is not None:
            self._message_field(name, value)
        if len(path) == self.end_depth:
            self._finish()
        path.pop()

    def close(self) -> None:
        return None

    # -- messages -----------------------------------------------------------------------------------
    def _line(self) -> int:
        return int(getattr(self.parser, "CurrentLineNumber", 0) or 0)

    def _begin(self, end_depth: int, root_depth: int) -> None:
        self.found = True
        self.end_depth, self.root_depth = end_depth, root_depth
        self.kind, self.skip, self.count, self.problems = None, False, 0, []
        self.header, self.batch, self.group, self.block = {}, {}, _Count(), _Count()
        if self.survey:
            self.message = _Message(self.next_header)
            self.messages.append(self.message)
        else:
            index, self.index = self.index, self.index + 1
            self.message = self.messages[index] if index < len(self.messages) else None
            if self.message is None or not self.message.complete:
                self.broken = self.skip = True  # the first pass found the file breaking off here
            elif self.message.problem is not None:
                self.skip = True
                self.ready.append(Record(self.source, self._line(), None, self.message.problem))
        self.next_header = {}

    def _root(self, name: str) -> None:
        self.kind = _PAYMENT_ROOTS.get(name)
        if self.kind is None:
            self.skip = True
            if not self.survey and not self.broken:
                what = _OTHER_ROOTS.get(name, f"a {name} message")
                self.ready.append(
                    Record(
                        self.source,
                        self._line(),
                        None,
                        f"not a payment message: {what}; payguard reads pain.001 and pacs.008",
                    )
                )

    def _finish(self) -> None:
        message = self.message
        if self.survey and message is not None:
            message.complete = True
            if self.kind is not None:
                problems = self.group.problems("the group header") + self.problems
                if not self.count and not problems:
                    message.problem = "the payment message holds no credit transfer (CdtTrfTxInf)"
                elif problems:
                    name = self.header.get("MsgId") or message.header.get("BizMsgIdr") or "without an id"
                    message.problem = (
                        f"message {name}: {'; '.join(problems)}; none of its credit transfers is evaluated"
                    )
        self.end_depth = self.root_depth = 0
        self.kind, self.message, self.tx = None, None, None

    def _message_field(self, name: str, value: str) -> None:
        path = self.path
        parent = path[-2] if len(path) > 1 else ""
        if self.tx is not None:
            self._transaction_field(name, "/".join(path[-3:]), value)
            if name == "CdtTrfTxInf":
                self._transfer()
        elif "GrpHdr" in path:
            if name in ("MsgId", "CreDtTm"):
                self.header.setdefault(name, value)
            elif parent == "GrpHdr" and name in ("NbOfTxs", "CtrlSum"):
                self.group.declared[name] = value
        elif name == "PmtInf":
            what = f"payment information {self.batch.get('PmtInfId') or '(no PmtInfId)'}"
            self.problems += self.block.problems(what)
        elif "PmtInf" in path:
            if parent == "PmtInf" and name in ("NbOfTxs", "CtrlSum"):
                self.block.declared[name] = value
            else:
                self._batch_field(name, "/".join(path[-3:]), value)

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
        elif tail.endswith("PmtId/InstrId"):
            tx["instruction"] = value
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

    # -- one credit transfer ------------------------------------------------------------------------
    def _transfer(self) -> None:
        tx = self.tx or {}
        self.tx = None
        self.count += 1
        amount_tag = next((t for t in _AMOUNT_TAGS if t in tx), "InstdAmt")
        if self.survey:
            self.group.add(self.count, tx.get(amount_tag))
            self.block.add(self.count, tx.get(amount_tag))
        else:
            self.ready.append(self._event(tx, amount_tag))

    def _event(self, tx: dict[str, Any], amount_tag: str) -> Record:
        batch, header, line = self.batch, self.header, self._line()
        app = self.message.header if self.message is not None else {}
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
            return Record(
                self.source, line, None, f"credit transfer {self.count}: no {', no '.join(missing)}"
            )
        when = batch.get("date") or tx.get("date") or header.get("CreDtTm") or app.get("CreDt", "")
        try:
            stamp = datetime.fromisoformat(when)
        except ValueError:
            return Record(
                self.source,
                line,
                None,
                f"credit transfer {self.count}: no usable execution date or creation time",
            )
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)  # ISO 20022 local times without offset: read as UTC
        e2e = tx.get("e2e")
        e2e = e2e if e2e and e2e.upper() != "NOTPROVIDED" else None
        parts = (
            header.get("MsgId") or app.get("BizMsgIdr") or self.source,
            batch.get("PmtInfId", ""),
            tx.get("instruction") or e2e or "",
            str(self.count),
        )
        attributes: dict[str, Any] = {"iso20022": self.kind or ""}
        if e2e:
            attributes["end_to_end_id"] = e2e[:256]
        if tx.get("uetr"):
            attributes["uetr"] = tx["uetr"][:256]
        event: dict[str, Any] = {
            "id": "/".join(map(_part, parts)),
            "type": "transfer_out",
            "timestamp": stamp.isoformat(),
            "amount": tx[amount_tag],
            "currency": tx.get(f"{amount_tag}.Ccy", ""),
            "payer": {"account": payer},
            "payee": {"account": payee},
            "attributes": attributes,
        }
        debtor_name = tx.get("debtor_name") or batch.get("debtor_name")
        if debtor_name:
            event["payer"]["name"] = debtor_name[:256]
        if tx.get("creditor_name"):
            event["payee"]["name"] = tx["creditor_name"][:256]
        if tx["ustrd"]:
            event["memo"] = " ".join(tx["ustrd"])
        possible = app.get("PssblDplct", "").lower() in ("true", "1")
        return Record(self.source, line, event, possible_duplicate=possible)


Opener = Callable[[], IO[bytes]]


def _pass(name: str, opener: Opener, messages: list[_Message], survey: bool) -> Iterator[Record]:
    """One pass over the file: the second's records; the first's say only why it cannot be read."""
    target = _Iso20022Target(name, messages, survey)
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = getattr(parser, "parser", None)
    failure: str | None = None
    try:
        with opener() as handle:
            while not target.broken and (chunk := handle.read(CHUNK)):
                parser.feed(chunk)
                yield from target.ready
                target.ready.clear()
            if not target.broken:
                parser.close()
    except DefusedXmlException as exc:
        failure = f"refused: {type(exc).__name__} (DTDs and entities are not allowed)"
    except (*_STREAM_ERRORS, SyntaxError) as exc:  # ParseError is a SyntaxError
        failure = f"invalid XML: {exc}"
    yield from target.ready
    if not survey:  # both passes read the same bytes: the first tells how the file ends
        return
    if failure is not None:
        yield Record(name, target._line() or 1, None, failure)
    elif not target.found:
        yield Record(name, 1, None, "not an ISO 20022 document")


def read_iso20022(name: str) -> Iterator[Record]:
    with _reopenable(name) as opener:
        messages: list[_Message] = []
        ending = list(_pass(name, opener, messages, survey=True))  # why it cannot be read to its end
        yield from _pass(name, opener, messages, survey=False)
        yield from ending


@contextmanager
def _reopenable(name: str) -> Iterator[Opener]:
    """An opener of ``name`` for each pass; stdin, which can be read once, is first copied to a file."""
    if name != "-":
        yield lambda: _open_binary(name)
        return
    with tempfile.NamedTemporaryFile(prefix="payguard-stdin-") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, CHUNK)
        spool.flush()
        yield lambda: _open_binary(spool.name)
