"""A JSON Schema for rule files, generated from the vocabulary (``fields.py``) so that it never drifts.

Editors (the YAML language server, IntelliJ) validate and complete rule YAML with it: every section, every
rule key, every field and feature a condition may read with the operators its kind allows and the operand
type they take. It checks the shape; what needs the whole rule set (a ``$param`` or a keyword set that is
declared, a currency for money, regular expressions, the lint) only ``payguard check`` tells. The package
ships the generated file (``rules.schema.json``); ``payguard schema rules`` prints it and a test keeps the
two in step.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

from .._decision import Action
from .fields import EVENT_FIELDS, FEATURES, FieldSpec, Kind

__all__ = ["SCHEMA_FILE", "render", "rules_schema", "shipped_schema"]

SCHEMA_FILE: Final = "rules.schema.json"
_NAME: Final = "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_PARAM: Final = {"type": "string", "pattern": r"^\$", "description": "a parameter: $name (params:)"}
_CURRENCY: Final = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"}
_COMPARISONS: Final = ("eq", "ne", "gt", "gte", "lt", "lte")


def _operand(spec: FieldSpec) -> dict[str, Any]:
    """What one value compared with ``spec`` may be (or a ``$param``)."""
    kind = spec.kind
    if kind is Kind.BOOL:
        own: dict[str, Any] = {"type": "boolean"}
    elif kind in (Kind.INT, Kind.FLOAT):
        own = {"type": "number"}
    elif kind is Kind.MONEY:
        own = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}]}
    elif kind is Kind.ENUM:
        own = {"enum": list(spec.values)}
    else:
        own = {"type": "string"}
    return {"anyOf": [own, _PARAM]}


def _names(what: str) -> dict[str, Any]:
    one = {"type": "string", "description": f"a {what} declared in the rule set"}
    return {"anyOf": [one, {"type": "array", "minItems": 1, "items": one}]}


def _tests(spec: FieldSpec) -> dict[str, Any]:
    """The tests of one field: a value (eq), a list (in), or a mapping of its operators."""
    operand = _operand(spec)
    members = {"anyOf": [{"type": "array", "minItems": 1, "items": operand}, _PARAM]}
    ops: dict[str, Any] = {}
    for op in spec.operators:
        if op in _COMPARISONS:
            ops[op] = operand
        elif op in ("in", "not_in"):
            ops[op] = members
        elif op == "exists":
            ops[op] = {"type": "boolean"}
        elif op == "matches":
            ops[op] = {"type": "string", "minLength": 1, "description": "an RE2 regular expression"}
        elif op == "contains_any":
            ops[op] = _names("keyword set")
        elif op == "in_list":
            ops[op] = _names("list")
    mapping = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": ops}
    shorthand = [operand, {"type": "array", "minItems": 1, "items": operand}] if "in" in ops else [operand]
    return {"description": f"{spec.kind.value}: {spec.description}", "anyOf": [*shorthand, mapping]}


def _field(spec: FieldSpec, shared: dict[str, Any]) -> dict[str, Any]:
    """A field's tests: one definition per kind in ``shared``, inline for an enum (its own values)."""
    if spec.kind is Kind.ENUM:
        return _tests(spec)
    name = f"{spec.kind.value}_tests"
    if name not in shared:
        shared[name] = _tests(spec) | {"description": f"tests of a {spec.kind.value}"}
    return {"$ref": f"#/$defs/{name}", "description": f"{spec.kind.value}: {spec.description}"}


def _condition(shared: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
        "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
        "not": {"$ref": "#/$defs/condition"},
    }
    for spec in (*EVENT_FIELDS.values(), *FEATURES.values()):
        properties[spec.name] = _field(spec, shared)
    attribute = {
        "description": "attributes.NAME: a bank attribute declared under attributes:",
        "anyOf": [
            {"type": ["string", "number", "boolean"]},
            {"type": "array", "minItems": 1},
            {"type": "object", "minProperties": 1},
        ],
    }
    return {
        "type": "object",
        "description": "all/any/not groups, or a field or feature and its tests",
        "minProperties": 1,
        "properties": properties,
        "patternProperties": {r"^attributes\.[A-Za-z][A-Za-z0-9_.-]*$": attribute},
        "additionalProperties": False,
    }


def _entries(what: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "array", "items": {"type": ["string", "integer"]}},
            {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {"file": {"type": "string", "description": f"one {what} a line"}},
            },
        ]
    }


def rules_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one rule file."""
    shared: dict[str, Any] = {}
    condition = _condition(shared)
    scored = [a.value for a in (Action.REVIEW, Action.HOLD, Action.INTERRUPT)]
    header = {
        "type": "object",
        "required": ["id", "version"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "version": {"type": ["string", "number"]},
            "description": {"type": "string"},
            "timezone": {"type": "string", "description": "IANA time zone (Asia/Shanghai)"},
            "currency": _CURRENCY,
            "fx": {
                "type": "object",
                "description": "reference rates: units of the rule set's currency per unit of each other",
                "minProperties": 1,
                "additionalProperties": False,
                "patternProperties": {"^[A-Z]{3}$": {"type": "number", "exclusiveMinimum": 0}},
            },
            "unrated_currency": {
                "enum": [action.value for action in Action],
                "description": "the action at least of a payment in a currency without a rate (review)",
            },
            "scoring": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {action: {"type": "integer", "minimum": 1} for action in scored},
            },
            "confirmed_fraud_list": {"type": "string"},
        },
    }
    kinds = ["bool", "int", "number", "string"]
    attribute = {
        "anyOf": [
            {"enum": kinds},
            {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {"type": {"enum": kinds}, "public": {"type": "boolean"}},
            },
        ]
    }
    rule = {
        "type": "object",
        "required": ["id", "description", "when", "reason"],
        "anyOf": [{"required": ["action"]}, {"required": ["score"]}],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": _NAME},
            "description": {"type": "string", "minLength": 1},
            "when": {"$ref": "#/$defs/condition"},
            "action": {"enum": [a.value for a in Action]},
            "score": {"type": "integer"},
            "reason": {"type": "string", "minLength": 1, "description": "shown to the analyst and customer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["enforce", "shadow"]},
            "currency": _CURRENCY,
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://payguard.dev/schemas/rules.schema.json",
        "title": "payguard rule file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ruleset": header,
            "params": {
                "type": "object",
                "propertyNames": {"pattern": _NAME},
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "keyword_sets": {
                "type": "object",
                "propertyNames": {"pattern": _NAME},
                "additionalProperties": _entries("phrase"),
            },
            "lists": {
                "type": "object",
                "propertyNames": {"pattern": _NAME},
                "additionalProperties": _entries("entry"),
            },
            "attributes": {
                "type": "object",
                "propertyNames": {"pattern": _NAME},
                "additionalProperties": attribute,
            },
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        },
        "$defs": {"rule": rule, "condition": condition, **shared},
    }


def render(schema: dict[str, Any]) -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped_schema() -> str:
    """The text of the schema file shipped in the package."""
    return resources.files("payguard").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
