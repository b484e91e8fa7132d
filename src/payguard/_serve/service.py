"""What each endpoint does, without HTTP: a ``Reply`` (status, JSON body, the log line's fields) per call.

The guard decides synchronously; the app calls these methods from its event loop (see ``app.py`` for why
inline). Every refusal names the field it is about, as ``InvalidEventError.errors`` does; no internal
error text ever reaches a body: it goes to the audit record and the log.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from .._audit.keys import AuditKeys
from .._audit.processors import Masker
from .._errors import (
    AuditError,
    DuplicateEventError,
    InvalidEventError,
    PayguardError,
    RuleFileError,
    StoreError,
    UnknownDecisionError,
)
from .._guard import Guard
from .._lifecycle import MAX_NOTE, Outcome
from .metrics import Metrics
from .options import ServeOptions, worker_audit_path

__all__ = ["AUDIT_DOWN", "INTERNAL", "Reply", "Service"]

# what a caller sees instead of an internal error's text (the text is in the audit record and the log)
INTERNAL: Final = (
    "internal error: payguard could not evaluate this payment; it is held (see the audit record)"
)
AUDIT_COOL_DOWN: Final = 30.0  # seconds a failed audit write keeps the worker out of the service
MIN_FREE: Final = 16 * 1024 * 1024  # bytes free on the audit file's disk for /ready to say it takes records
UNDECIDED: Final = "internal error: no decision was made; treat the payment as held and send it again"
AUDIT_DOWN: Final = (
    "the audit record could not be written, so there is no decision: do not execute the payment; "
    "treat it as held and send it again"
)


def _problem(loc: str, msg: str, code: str = "invalid") -> dict[str, str]:
    return {"loc": loc, "msg": msg, "code": code}


@dataclass
class Reply:
    """One answer: HTTP status, JSON body, and the fields of its log line (never an account number)."""

    status: int
    body: Any
    log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # an internal error's text: for the log only


def _refusal(status: int, problems: list[dict[str, str]], **log: Any) -> Reply:
    return Reply(status, {"errors": problems}, {"errors": [p["loc"] for p in problems], **log})


def _json_body(body: bytes) -> tuple[Any, Reply | None]:
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        return None, _refusal(400, [_problem("body", f"not JSON: {exc}", "not_json")], reason="not_json")


def list_digest(entries: frozenset[str]) -> str:
    """A short digest of a list's entries: the same entries give the same digest in every worker."""
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def _list_info(entries: frozenset[str], version: int) -> dict[str, Any]:
    # ``version`` is the one decisions record (``Decision.lists``): 0 for a list as the rule files give it
    return {"entries": len(entries), "version": version, "digest": list_digest(entries)}


class Service:
    """The endpoints' logic over one guard (one worker's)."""

    def __init__(self, guard: Guard, options: ServeOptions, metrics: Metrics | None = None) -> None:
        self.guard = guard
        self.options = options
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.in_force(guard.ruleset)
        # masks the payer in the log as the audit masks it (joinable with the audit, never readable)
        self.masker = (
            guard.audit.masker
            if guard.audit is not None
            else Masker(AuditKeys.derive(options.audit_key).mask)
        )
        self.audit_path = None if options.audit is None else worker_audit_path(options.audit, options.worker)
        self._audit_broken: str | None = None  # the last audit failure, until a record is written again
        self._audit_failed_at = 0.0
        self._store_waits = (0, 0)  # the store's lease waits and stale reads, as last counted
        self.started = time.time()

    # -- decisions ----------------------------------------------------------------------------------
    def decide(self, body: bytes) -> Reply:
        """``POST /v1/decisions``."""
        data, refused = _json_body(body)
        if refused is not None:
            self.metrics.rejected.labels("not_json").inc()
            return refused
        log: dict[str, Any] = self._event_fields(data)
        started = time.perf_counter()
        try:
            decision, fresh = self.guard.evaluate_fresh(data)
        except DuplicateEventError as exc:
            self.metrics.rejected.labels("duplicate_id").inc()
            problems = [_problem(e.field, e.message, e.code) for e in exc.errors]
            reply = _refusal(409, problems, reason="duplicate_id", **log)
            reply.body["decision_id"] = exc.decision_id
            return reply
        except InvalidEventError as exc:
            self.metrics.rejected.labels("invalid_event").inc()
            problems = [_problem(e.field, e.message, e.code) for e in exc.errors]
            return _refusal(422, problems, reason="invalid_event", **log)
        except AuditError as exc:
            return self._audit_failed(exc, log)
        except Exception as exc:  # noqa: BLE001 (a library bug outside the audited hold: a 500, logged)
            return Reply(500, {"errors": [_problem("", UNDECIDED, "internal")]}, log, repr(exc))
        seconds = time.perf_counter() - started
        self._audit_broken = None
        if fresh:
            self.metrics.decided(decision, seconds)
        else:  # the event id's first decision, again: no new decision, no new record
            self.metrics.repeats.inc()
            log["repeat"] = True
        self._store_waits = self.metrics.count_store_waits(self.guard.store, self._store_waits)
        answer = decision.to_dict()
        log.update(
            decision_id=decision.decision_id,
            action=answer["action"],
            rules=list(decision.rule_ids),
            decide_ms=round(seconds * 1000, 3),
        )
        if decision.error is not None:
            answer["error"] = INTERNAL  # the text is in the audit record and in this reply's log line
            return Reply(200, answer, log, decision.error)
        return Reply(200, answer, log)

    def _event_fields(self, data: Any) -> dict[str, Any]:
        """What the log says of an event: its id and the payer's account, masked as the audit masks it."""
        if not isinstance(data, Mapping):
            return {}
        fields: dict[str, Any] = {}
        if isinstance(data.get("id"), str):
            fields["event_id"] = data["id"][:128]
        payer = data.get("payer")
        if isinstance(payer, Mapping) and isinstance(payer.get("account"), str):
            fields["payer"] = self.masker.mask(payer["account"])
        return fields

    def _audit_failed(self, exc: AuditError, log: dict[str, Any]) -> Reply:
        self.metrics.audit_failures.inc()
        self._audit_broken = str(exc)
        self._audit_failed_at = time.monotonic()
        return Reply(503, {"errors": [_problem("", AUDIT_DOWN, "audit_unavailable")]}, log, str(exc))

    # -- the lifecycle of a stopped payment -----------------------------------------------------------
    def resolve(self, decision_id: str, body: bytes) -> Reply:
        """``POST /v1/decisions/{decision_id}/resolution``."""
        data, refused = _json_body(body)
        if refused is not None:
            return refused
        log: dict[str, Any] = {"decision_id": decision_id}
        if not isinstance(data, Mapping):
            return _refusal(422, [_problem("body", "expected a JSON object with outcome and note")], **log)
        problems = []
        outcome, note = data.get("outcome"), data.get("note")
        outcomes = [o.value for o in Outcome]
        if outcome not in outcomes:
            problems.append(_problem("outcome", f"must be one of {', '.join(outcomes)}, not {outcome!r}"))
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            problems.append(_problem("note", f"must be a string of at most {MAX_NOTE} characters"))
        unknown = sorted(set(data) - {"outcome", "note"})
        problems += [_problem(name, "unknown field", "extra_forbidden") for name in unknown]
        if problems:
            return _refusal(422, problems, **log)
        try:
            resolution = self.guard.resolve(decision_id, str(outcome), note=note)
        except UnknownDecisionError as exc:
            return _refusal(404, [_problem("decision_id", exc.message, "unknown_decision")], **log)
        except AuditError as exc:
            return self._audit_failed(exc, log)
        except StoreError as exc:
            return self._store_failed("the resolution was not recorded", log, exc)
        except PayguardError as exc:  # resolved otherwise before, or not a stop: the message says which
            return _refusal(409, [_problem("decision_id", exc.message, "conflict")], **log)
        log["outcome"] = resolution.outcome.value
        return Reply(200, resolution.to_dict(), log)

    # -- lists and rule sets --------------------------------------------------------------------------
    def set_list(self, name: str, body: bytes) -> Reply:
        """``PUT /v1/lists/{name}``: every worker decides with it from its next event (the store, shared by
        them all, publishes it)."""
        data, refused = _json_body(body)
        if refused is not None:
            return refused
        log: dict[str, Any] = {"list": name}
        declared = self.guard.rules.lists
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            message = f"unknown list {name!r}: the rule set declares {known}"
            return _refusal(404, [_problem("name", message, "unknown_list")], **log)
        entries = data.get("entries") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            message = 'expected {"entries": [account, ...]}: a JSON list of account numbers'
            return _refusal(422, [_problem("entries", message, "not_a_list")], **log)
        try:
            self.guard.set_list(name, entries)
            lists, versions = self.guard.lists_in_force()
        except TypeError as exc:
            return _refusal(422, [_problem("entries", str(exc), "not_a_string")], **log)
        except StoreError as exc:
            return self._store_failed("the list was not set", log, exc)
        log["entries"] = len(lists[name])
        return Reply(200, {"name": name, **_list_info(lists[name], versions.get(name, 0))}, log)

    def _store_failed(self, what: str, log: dict[str, Any], exc: StoreError) -> Reply:
        self.metrics.store_failures.inc()
        problem = _problem("", f"the store could not be reached: {what}; send the request again", "store")
        return Reply(503, {"errors": [problem]}, log, str(exc))

    def ruleset_info(self) -> Reply:
        """``GET /v1/ruleset``: what is deciding now."""
        guard = self.guard
        rules = guard.rules
        try:  # on a shared store, the lists any process set: read from it
            in_force, versions = guard.lists_in_force()
        except StoreError as exc:
            return self._store_failed("the lists in force are not known", {}, exc)
        lists = {
            name: _list_info(entries, versions.get(name, 0)) for name, entries in sorted(in_force.items())
        }
        body = {
            **guard.ruleset.to_dict(),
            "engine": guard.engine,
            "rules": len(rules.rules),
            "shadow_rules": sum(rule.shadow for rule in rules.rules),
            "lists": lists,
            "path": self.options.rules,
        }
        return Reply(200, body)

    def reload(self) -> Reply:
        """``POST /v1/ruleset/reload``: load ``--rules`` again; on an error the running rule set stays. The
        other workers follow after their next decision (the store publishes it)."""
        return self.reload_rules()

    def reload_rules(self) -> Reply:
        before = self.guard.ruleset
        try:
            ref = self.guard.reload(self.options.rules)
        except RuleFileError as exc:
            problems = [
                {**_problem(f"{p.path}:{p.line}:{p.column}", str(p), p.code), **p.to_dict()}
                for p in exc.problems
            ]
            return _refusal(422, problems, kept=before.version)
        except StoreError as exc:  # the new rule set could not be published: none of them took it
            return self._store_failed("the rule set was not reloaded", {"kept": before.version}, exc)
        except PayguardError as exc:
            return _refusal(422, [_problem("rules", exc.message, "rules")], kept=before.version)
        self.metrics.in_force(ref)
        reply = self.ruleset_info()
        reply.log = {"ruleset": f"{ref.id}@{ref.version}", "digest": ref.digest, "before": before.version}
        return reply

    # -- operations ------------------------------------------------------------------------------------
    def ready(self) -> Reply:
        """``GET /ready``: the rules are loaded, the store answers, the audit sink takes records."""
        checks: dict[str, str] = {"rules": f"{self.guard.ruleset.id}@{self.guard.ruleset.version}"}
        ok = True
        try:
            with self.guard.store.transaction() as txn:
                txn.listed_version()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 (any failure means not ready; its kind is reported)
            self.metrics.store_failures.inc()
            checks["store"] = f"unreachable ({type(exc).__name__})"
            ok = False
        if self.audit_path is None:
            checks["audit"] = "off"
        else:
            checks["audit"] = self._audit_check(Path(self.audit_path))
            ok = ok and checks["audit"] == "ok"
        return Reply(200 if ok else 503, {"ready": ok, "checks": checks})

    def _audit_check(self, path: Path) -> str:
        """Whether the audit file takes records. After a failed write, not ready for ``AUDIT_COOL_DOWN``
        seconds, then ready again once the file is writable with room on its disk: no traffic reaches a
        worker that is not ready, so no write could tell otherwise (the next one will, if it still fails)."""
        if not path.exists():
            return "missing"
        if self._audit_broken is not None:
            recent = time.monotonic() - self._audit_failed_at < AUDIT_COOL_DOWN
            if recent or not os.access(path, os.W_OK) or shutil.disk_usage(path.parent).free < MIN_FREE:
                return "failing"
            self._audit_broken = None
        return "ok"

    def health(self) -> Reply:
        """``GET /health``: the process is up and answering."""
        return Reply(200, {"status": "ok", "uptime_s": round(time.time() - self.started, 3)})

    def close(self) -> None:
        """Close the guard: the audit trail's last checkpoint is written, the store closed."""
        self.guard.close()
