"""The audit trail: one tamper-evident, privacy-masked record for every evaluated event.

Records are built and written by a chain of structlog processors, plain callables
``(logger, method_name, event_dict) -> event_dict``, on payguard's own wrapped logger: payguard never calls
``structlog.configure()`` and never touches the host application's logging.

    build record -> unpack_record -> mask_private_data -> chain_hashes -> render_canonical_json -> sink

Each record carries ``key_id`` (which ``audit_key`` wrote it, ``None`` for none), ``prev_hash`` (the previous
record's ``hash``) and ``hash``: the HMAC-SHA256, under the chain key derived from ``audit_key``
(``keys.py``), of its own canonical JSON (sorted keys, no spaces) without the ``hash`` field; without an
``audit_key``, the plain SHA-256. ``verify_file`` checks a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

import orjson

from .._common.cache import remember
from .logger import WHOLE

__all__ = [
    "GENESIS",
    "chain_hashes",
    "mask_private_data",
    "record_hash",
    "render_canonical_json",
    "unpack_record",
]

GENESIS: Final = "0" * 64
EventDict = MutableMapping[str, Any]

# Record keys that hold account-like identifiers: shown as last four characters plus a keyed hash.
MASKED_KEYS: Final = ("payer", "payee", "payer_customer", "payee_customer", "device_id", "ip")
# Evidence entries that are masked or erased the same way.
MASKED_FIELDS: Final = frozenset(
    {
        "payer.account",
        "payee.account",
        "payer.customer_id",
        "payee.customer_id",
        "session.device_id",
        "session.ip",
    }
)
ERASED_FIELDS: Final = frozenset(
    {"payer.name", "payee.name", "memo", "purpose", "payer.vulnerability", "payee.vulnerability"}
)
# Evidence of the bank's own attributes is masked, unless the rule set declares the attribute public.
ATTRIBUTE_PREFIX: Final = "attributes."
# The key under which a decision record hands the masking processor its public attributes (removed).
PUBLIC: Final = "_public_attributes"


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON of ``record`` as UTF-8: sorted keys, no whitespace, non-ASCII kept as is.

    orjson writes it (far faster than the standard library); an integer beyond 64 bits, which orjson
    refuses, falls back to the standard library's encoder. Both writing and ``verify_file`` go through
    this one function, so a record always hashes the same way.
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return text.encode()


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    """The hash a record must carry: HMAC-SHA256 under the chain ``key``, or SHA-256 for an unkeyed chain."""
    return seal(canonical({k: v for k, v in record.items() if k != "hash"}), key)


def seal(body: bytes, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.digest(key, body, "sha256").hex()


class Masker:
    """Masks identifiers with a keyed hash so records about one account can be joined, never read."""

    def __init__(self, key: bytes | str | None) -> None:
        if key is None:
            key = os.urandom(32)  # records still mask; they just cannot be joined across processes
        self._key = key.encode() if isinstance(key, str) else key
        self._cache: dict[str, str] = {}

    def mask(self, value: str) -> str:
        found = self._cache.get(value)
        if found is None:
            digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:16]
            shown = f"…{value[-4:]}#{digest}" if len(value) > 8 else f"#{digest}"
            found = remember(self._cache, value, shown)
        return found


def unpack_record(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: the record ``AuditTrail.write`` hands over whole becomes the event dict of the chain.

    The record travels through structlog's bound logger as one value: its twenty fields passed as keyword
    arguments would be unpacked and packed again on the way, which costs more than hashing it.
    """
    record = event_dict.get(WHOLE)
    if not isinstance(record, dict):
        return event_dict
    record["record"] = event_dict["record"]
    return record


def mask_private_data(masker: Masker) -> Callable[[Any, str, EventDict], EventDict]:
    """Processor: mask identifiers and drop names and free text, listing what it did on the record."""

    def processor(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        record = _as_dict(event_dict)
        masked: list[str] = []
        erased: list[str] = []
        for key in MASKED_KEYS:
            value = record.get(key)
            if isinstance(value, str):
                record[key] = masker.mask(value)
                masked.append(key)
        for key in ("payer_name", "payee_name", "memo", "purpose"):
            if record.pop(key, None) is not None:
                erased.append(key)
        public = record.pop(PUBLIC, None) or frozenset()
        evidence = record.get("evidence")
        if isinstance(evidence, dict) and evidence:
            for name in sorted(evidence):
                value = evidence[name]
                if name in MASKED_FIELDS and isinstance(value, str):
                    evidence[name] = masker.mask(value)
                    masked.append(f"evidence.{name}")
                elif name in ERASED_FIELDS:
                    evidence[name] = _erased(value)
                    erased.append(f"evidence.{name}")
                elif value is not None and _private_attribute(name, public):
                    evidence[name] = masker.mask(value if isinstance(value, str) else json.dumps(value))
                    masked.append(f"evidence.{name}")
        record["masked"] = masked
        record["erased"] = erased
        return record

    return processor


def _private_attribute(name: str, public: frozenset[str]) -> bool:
    """Whether evidence ``name`` is a bank attribute the rule set does not declare public."""
    return name.startswith(ATTRIBUTE_PREFIX) and name[len(ATTRIBUTE_PREFIX) :] not in public


def _erased(value: Any) -> Any:
    """What the audit keeps of a free text (its length) or a list of them (its length in items)."""
    if isinstance(value, str):
        return {"erased": True, "length": len(value)}
    if isinstance(value, (list, tuple)):
        return {"erased": True, "items": len(value)}
    return None


def _as_dict(event_dict: EventDict) -> dict[str, Any]:
    """The event dict as a plain dict (structlog passes one), which compiled code reads fastest."""
    return event_dict if isinstance(event_dict, dict) else dict(event_dict)


class chain_hashes:  # noqa: N801 (a processor, named like structlog's)
    """Processor: link the record to the previous one and seal it with its own keyed hash.

    ``key`` is the chain key (``None``: an unkeyed chain, plain SHA-256) and ``key_id`` the id every record
    carries. The canonical JSON it hashed is kept on ``body`` so that ``render_canonical_json`` does not
    serialise the record a second time.
    """

    def __init__(self, previous: str = GENESIS, key: bytes | None = None, key_id: str | None = None) -> None:
        self.previous = previous
        self.key_id = key_id
        self.body: bytes | None = None
        # HMAC (RFC 2104) from its two keyed SHA-256 states, copied per record: half the cost of hmac.digest,
        # which sets the key up again on every call; record_hash computes the same with hmac.digest.
        self._inner: Any = None
        self._outer: Any = None
        if key is not None:
            block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
            self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
            self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        record = _as_dict(event_dict)
        record["key_id"] = self.key_id
        record["prev_hash"] = self.previous
        record.pop("hash", None)
        self.body = body = canonical(record)
        if self._inner is None:
            digest = hashlib.sha256(body).hexdigest()
        else:
            inner = self._inner.copy()
            inner.update(body)
            outer = self._outer.copy()
            outer.update(inner.digest())
            digest = outer.hexdigest()
        record["hash"] = digest
        self.previous = digest
        return record


def render_canonical_json(chain: chain_hashes | None = None) -> Callable[[Any, str, EventDict], bytes]:
    """Processor: the record as one line of UTF-8 JSON (its canonical body, then its hash)."""

    def render(_logger: Any, _method: str, event_dict: EventDict) -> bytes:
        if chain is None or chain.body is None:
            return canonical(event_dict)
        body, chain.body = chain.body, None
        return b'%s,"hash":"%s"}' % (body[:-1], event_dict["hash"].encode())

    return render
