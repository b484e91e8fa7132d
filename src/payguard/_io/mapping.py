"""Mapping files, validated when they load, and the ``currency`` / ``timezone`` overrides of any mapping.

A mapping file names canonical fields (``payer.account``) for CSV columns and constants. A misspelled field
would otherwise only show as every record rejected, or worse, as a field silently missing from every event;
so each key is checked here, with its line and a suggestion. ``base: handbook`` starts from a built-in
mapping; ``currency:`` then relabels every money event's currency and ``timezone:`` reads its times as wall
clock in that zone (a data set whose money or times are known to be in another unit than assumed).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from .._common.time import zone
from .base import ReaderError

__all__ = ["CANONICAL_FIELDS", "MappingSpec", "read_mapping_file", "with_overrides"]

_PARTY = (
    "account",
    "name",
    "bank",
    "customer_id",
    "type",
    "age",
    "account_opened",
    "balance_before",
    "vulnerability",
    "own_account",
    "timezone",
)
# the canonical event's fields by dotted path (tests/io/test_mapping.py keeps it equal to the event model)
CANONICAL_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "type",
        "timestamp",
        "amount",
        "currency",
        "channel",
        "memo",
        "purpose",
        "cop_result",
        "at_maturity",
        *(f"{role}.{name}" for role in ("payer", "payee") for name in _PARTY),
        *(
            f"session.{name}"
            for name in (
                "device_id",
                "ip",
                "on_call",
                "caller_in_contacts",
                "screen_sharing",
                "remote_access",
                "device_age_hours",
            )
        ),
        *(f"intel.{name}" for name in ("payee_risk_level", "payee_reported_scam_count", "payee_mule_score")),
        "label.is_fraud",
        "label.typology",
    }
)
_KEYS = ("base", "columns", "constants", "timezone", "currency", "timestamp_format", "id_prefix", "delimiter")
_BUILT_IN = ("paysim", "handbook", "amlsim")


@dataclass(frozen=True)
class MappingSpec:
    """A mapping file, validated."""

    path: Path
    base: str | None
    columns: Mapping[str, str]
    constants: Mapping[str, Any]
    timezone: str | None
    currency: str | None
    timestamp_format: str | None
    id_prefix: str


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_mapping_file(path: Path) -> MappingSpec:
    """The mapping file at ``path``; ``ReaderError`` naming each problem's line and key."""
    try:
        doc = YAML(typ="rt", pure=True).load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise ReaderError(f"cannot read mapping {str(path)!r}: {exc}") from exc
    if not isinstance(doc, CommentedMap):
        raise ReaderError(f"{path}: a mapping file is a YAML mapping with 'columns' (or 'base')")
    problems: list[str] = []

    def at(node: CommentedMap, key: Any) -> str:
        try:
            return f"{path}:{node.lc.key(key)[0] + 1}"
        except (AttributeError, KeyError, TypeError):
            return str(path)

    for key in doc:
        if key not in _KEYS:
            problems.append(f"{at(doc, key)}: unknown mapping key {key!r}{_suggest(str(key), _KEYS)}")
    base = doc.get("base")
    if base is not None and base not in _BUILT_IN:
        problems.append(
            f"{at(doc, 'base')}: base must be one of {', '.join(_BUILT_IN)}{_suggest(str(base), _BUILT_IN)}"
        )
    columns = doc.get("columns")
    if base is None and not isinstance(columns, CommentedMap):
        problems.append(f"{path}: a mapping needs 'columns', a map of canonical fields to CSV columns")
    for section in ("columns", "constants"):
        node = doc.get(section)
        if node is None:
            continue
        if base is not None:
            problems.append(
                f"{at(doc, section)}: {section} cannot be combined with base (a built-in mapping)"
            )
            continue
        if not isinstance(node, CommentedMap):
            problems.append(f"{at(doc, section)}: {section} must be a mapping of canonical fields")
            continue
        for name, value in node.items():
            if name not in CANONICAL_FIELDS:
                problems.append(
                    f"{at(node, name)}: {section}: unknown canonical field {name!r}"
                    f"{_suggest(str(name), CANONICAL_FIELDS)}"
                )
            elif section == "columns" and (not isinstance(value, str) or not value):
                problems.append(f"{at(node, name)}: columns: {name} must name a CSV column")
    zone_name = doc.get("timezone")
    if zone_name is not None:
        try:
            zone(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{at(doc, 'timezone')}: unknown time zone {zone_name!r} (use an IANA name)")
    currency = doc.get("currency")
    if currency is not None and (not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency)):
        problems.append(f"{at(doc, 'currency')}: currency must be an ISO 4217 code such as EUR")
    fmt = doc.get("timestamp_format")
    if fmt is not None and (not isinstance(fmt, str) or "%" not in fmt):
        problems.append(
            f"{at(doc, 'timestamp_format')}: timestamp_format is a strptime format such as %Y-%m-%d"
        )
    if problems:
        raise ReaderError("invalid mapping:\n  " + "\n  ".join(problems))
    return MappingSpec(
        path=path,
        base=None if base is None else str(base),
        columns={str(k): str(v) for k, v in (columns or {}).items()},
        constants=dict(doc.get("constants") or {}),
        timezone=None if zone_name is None else str(zone_name),
        currency=currency,
        timestamp_format=fmt,
        id_prefix=str(doc.get("id_prefix", path.stem)),
    )


Convert = Callable[[Mapping[str, str], int], dict[str, Any]]


def with_overrides(convert: Convert, currency: str | None, timezone: str | None) -> Convert:
    """``convert`` whose money events carry ``currency`` and whose times are read in ``timezone``."""
    if currency is None and timezone is None:
        return convert
    tz = zone(timezone) if timezone is not None else None

    def overridden(row: Mapping[str, str], line: int) -> dict[str, Any]:
        event = convert(row, line)
        if currency is not None and "amount" in event:
            event["currency"] = currency
        stamp = event.get("timestamp")
        if tz is not None and isinstance(stamp, str):
            # the same wall-clock time, in the zone the data was recorded in
            event["timestamp"] = datetime.fromisoformat(stamp).replace(tzinfo=tz).isoformat()
        return event

    return overridden
