"""The OpenAPI 3.1 document of ``payguard serve`` (``GET /openapi.json``); the event's schema is the one
pydantic derives from ``payguard.Event``, so the document and the validation cannot drift apart."""

from __future__ import annotations

from functools import cache
from typing import Any

from .._common.version import PAYGUARD_VERSION
from .._event import Event
from .._lifecycle import MAX_NOTE, Outcome

__all__ = ["openapi_document"]


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _errors(description: str) -> dict[str, Any]:
    return _json("#/components/schemas/Errors", description)


_ERRORS = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "string", "description": "dotted path of the field (payer.account)"},
                    "msg": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
        "decision_id": {"type": "string", "description": "409 duplicate: the first decision"},
    },
}

_HIT = {
    "type": "object",
    "required": ["rule_id", "action", "reason"],
    "properties": {
        "rule_id": {"type": "string"},
        "action": {"type": ["string", "null"], "enum": ["allow", "review", "hold", "interrupt", None]},
        "reason": {"type": "string", "description": "customer-safe: never an internal error's text"},
        "score": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}

_RULESET_REF = {
    "type": "object",
    "required": ["id", "version", "digest"],
    "properties": {"id": {"type": "string"}, "version": {"type": "string"}, "digest": {"type": "string"}},
}

_DECISION = {
    "type": "object",
    "description": "Decision.to_dict(): act on `action`",
    "required": ["decision_id", "event_id", "action", "hits", "shadow_hits", "ruleset", "engine"],
    "properties": {
        "decision_id": {"type": "string"},
        "event_id": {"type": "string"},
        "action": {"type": "string", "enum": ["allow", "review", "hold", "interrupt"]},
        "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
        "shadow_hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
        "ruleset": {"$ref": "#/components/schemas/RulesetRef"},
        "engine": {"type": "string"},
        "evaluated_at": {"type": "string", "format": "date-time"},
        "event_time": {"type": ["string", "null"], "format": "date-time"},
        "features": {"type": "object"},
        "score": {"type": "integer"},
        "snoozed": {"type": "array", "items": {"type": "string"}},
        "error": {"type": "string", "description": "present on the hold payguard gives when it failed"},
    },
}

_RESOLUTION_IN = {
    "type": "object",
    "required": ["outcome"],
    "additionalProperties": False,
    "properties": {
        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
        "note": {"type": ["string", "null"], "maxLength": MAX_NOTE},
    },
}

_RESOLUTION = {
    "type": "object",
    "properties": {
        "decision_id": {"type": "string"},
        "event_id": {"type": "string"},
        "action": {"type": "string", "enum": ["hold", "interrupt"]},
        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
        "resolved_at": {"type": "string", "format": "date-time"},
        "note": {"type": ["string", "null"]},
    },
}

_OBJECT = {"type": "object"}


@cache
def openapi_document() -> dict[str, Any]:
    """The document, built once."""
    event = Event.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(event.pop("$defs", {}))
    schemas |= {
        "Event": event,
        "Errors": _ERRORS,
        "Hit": _HIT,
        "RulesetRef": _RULESET_REF,
        "Decision": _DECISION,
        "ResolutionRequest": _RESOLUTION_IN,
        "Resolution": _RESOLUTION,
    }
    not_json = _errors("the body is not JSON")
    store_down = _errors("the store could not be reached: nothing changed; send the request again")
    paths: dict[str, Any] = {
        "/v1/decisions": {
            "post": {
                "summary": "Decide one payment event",
                "requestBody": {"required": True, **_json("#/components/schemas/Event", "one event")},
                "responses": {
                    "200": _json(
                        "#/components/schemas/Decision", "the decision (an audited hold on failure)"
                    ),
                    "400": not_json,
                    "409": _errors("the event id was decided before for an event with other content"),
                    "422": _errors("the event is invalid: every bad field is named"),
                    "503": _errors("the audit record could not be written: treat the payment as held"),
                },
            }
        },
        "/v1/decisions/{decision_id}/resolution": {
            "post": {
                "summary": "Resolve a held or interrupted payment",
                "parameters": [
                    {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    **_json("#/components/schemas/ResolutionRequest", "outcome"),
                },
                "responses": {
                    "200": _json("#/components/schemas/Resolution", "resolved (again: the same resolution)"),
                    "400": not_json,
                    "404": _errors("no stopped payment has this decision id"),
                    "409": _errors("resolved otherwise before, or the decision was not a stop"),
                    "422": _errors("outcome or note invalid"),
                    "503": store_down,
                },
            }
        },
        "/v1/lists/{name}": {
            "put": {
                "summary": "Replace a named list (the fraud list) atomically",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["entries"],
                                "properties": {"entries": {"type": "array", "items": {"type": "string"}}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "replaced: name, entries (count), version (as decisions record it, "
                        "in Decision.lists), digest (of the entries)"
                    },
                    "400": not_json,
                    "404": _errors("the rule set declares no such list"),
                    "422": _errors("entries is not a list of strings"),
                    "503": store_down,
                },
            }
        },
        "/v1/ruleset": {
            "get": {
                "summary": "The rule set in force",
                "responses": {
                    "200": {"description": "id, version, digest, lists (entries, version, digest of each)"},
                    "503": store_down,
                },
            }
        },
        "/v1/ruleset/reload": {
            "post": {
                "summary": "Load --rules again; on any problem the running rule set stays",
                "responses": {
                    "200": {"description": "the rule set now in force"},
                    "422": _errors("the rule files' problems, each at path:line:column"),
                    "503": store_down,
                },
            }
        },
        "/health": {"get": {"summary": "The process is up", "responses": {"200": {"description": "up"}}}},
        "/ready": {
            "get": {
                "summary": "Rules loaded, store and audit sink reachable",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus text format", "responses": {"200": {"description": "metrics"}}}
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "payguard serve", "version": PAYGUARD_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }
