"""Parameters overridden without editing files: ``payguard replay --set PARAM=VALUE`` for sweeps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .._errors import RuleProblem
from .model import _ID
from .parser import suggest

__all__ = ["override_params", "parse_setting"]


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def parse_setting(text: str) -> tuple[str, Any]:
    """``PARAM=VALUE`` as a name and a YAML scalar: ``5000`` is a number, ``true`` a boolean, anything
    else a string. Raises ``ValueError``."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not _ID.match(name):
        raise ValueError(f"not PARAM=VALUE: {text!r}")
    try:
        value = YAML(typ="safe", pure=True).load(raw) if raw.strip() else ""
    except YAMLError:
        value = raw
    if not isinstance(value, str | int | float | bool):
        value = raw  # a list or mapping written by accident stays the text it was
    return name, value


def override_params(
    declared: dict[str, Any], overrides: Mapping[str, Any], digest: _Digest
) -> list[RuleProblem]:
    """Replace ``declared`` parameters by ``overrides`` before the rules read them, in the digest too;
    the problems of overrides that name no declared parameter."""
    problems = []
    for name, value in overrides.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(
                RuleProblem(
                    "--set",
                    1,
                    1,
                    "unknown_param",
                    f"the rule set declares no parameter {name!r} (parameters: {known})",
                    suggest(name, declared),
                )
            )
            continue
        declared[name] = value
        digest.update(b"set\0" + name.encode() + b"\0" + repr(value).encode() + b"\0")
    return problems
