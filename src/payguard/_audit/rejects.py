"""Rejected records as ``replay --rejects`` writes them: masked as the audit masks, unless asked raw.

A rejected record is raw input that failed validation, so it can hold anything in any shape: identifiers
are masked wherever the canonical form puts them (a string at ``payer.account``, or a bare string where a
party belongs), names, memos, purposes and vulnerabilities are erased (their length kept), the bank's
attributes are masked unless the rule set declares them public, and a field payguard does not know (most
often a misspelt one, which may hold anything) is erased.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from .processors import Masker, _erased

__all__ = ["mask_rejected"]

# the canonical fields kept as they are (codes, times, amounts: nothing that names a person)
_PLAIN = frozenset(
    {"id", "type", "timestamp", "amount", "currency", "channel", "cop_result", "intel", "label"}
)
_PARTY_MASKED = frozenset({"account", "customer_id"})
_PARTY_ERASED = frozenset({"name", "vulnerability"})
_PARTY_PLAIN = frozenset(
    {"bank", "type", "age", "account_opened", "balance_before", "own_account", "timezone"}
)
_SESSION_MASKED = frozenset({"device_id", "ip"})
_SESSION_PLAIN = frozenset(
    {"on_call", "caller_in_contacts", "screen_sharing", "remote_access", "device_age_hours"}
)


def mask_rejected(
    masker: Masker, event: Any, public: Collection[str] = ()
) -> tuple[Any, list[str], list[str]]:
    """``event`` (a rejected record's data) masked, and the dotted paths masked and erased."""
    masked: list[str] = []
    erased: list[str] = []

    def mask(path: str, value: Any) -> Any:
        if value is None:
            return None
        masked.append(path)
        return masker.mask(value if isinstance(value, str) else json.dumps(value, default=str))

    def erase(path: str, value: Any) -> Any:
        erased.append(path)
        return _erased(value) or {"erased": True}

    def section(path: str, value: Any, masked_keys: frozenset[str], plain: frozenset[str]) -> Any:
        if not isinstance(value, dict):
            return mask(path, value)  # a bare account number where a party belongs, say
        found: dict[str, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in masked_keys:
                found[key] = mask(where, item)
            elif key in plain:
                found[key] = item
            else:
                found[key] = erase(where, item)
        return found

    if not isinstance(event, dict):
        return (None if event is None else erase("record", event)), masked, erased
    result: dict[str, Any] = {}
    for key, value in event.items():
        if key in _PLAIN:
            result[key] = value
        elif key in ("payer", "payee"):
            result[key] = section(key, value, _PARTY_MASKED, _PARTY_PLAIN)
        elif key == "session":
            result[key] = section(key, value, _SESSION_MASKED, _SESSION_PLAIN)
        elif key == "attributes" and isinstance(value, dict):
            result[key] = {
                name: item if name in public else mask(f"attributes.{name}", item)
                for name, item in value.items()
            }
        else:  # memo, purpose, and any field payguard does not know
            result[key] = erase(str(key), value)
    return result, masked, erased
