"""The Guard: load a rule set once, then decide events from any number of threads.

Per event, under one store transaction: validate, compute the features the rules read, build the fact,
match, decide, write the audit record, and only then update the histories. A decision is returned only
after its audit record was handed to the sink; if that fails the caller gets ``AuditError`` and the store is
left as it was.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Literal, cast

from . import _durable
from ._audit import AuditTrail
from ._decision import Action, Decision, Hit, RulesetRef, isoformat, most_severe
from ._errors import AuditError, InvalidEventError, PayguardError, UnknownDecisionError
from ._event import Event, parse_event
from ._features import FeatureEngine
from ._fields import FEATURES, Kind
from ._plan import Plan
from ._python_engine import PythonMatcher
from ._rulefile import RuleSet, load_rule_set
from ._store import MemoryStore, Store, StoreTransaction
from ._text import normalize_account

__all__ = ["ENGINES", "Guard"]

ENGINES: Final = ("auto", "durable", "python")
INTERNAL_ERROR_RULE: Final = "payguard.internal_error"
_ALLOW: Final = Action.ALLOW  # read directly by compiled code, not through the enum class's attribute hook

try:
    PAYGUARD_VERSION = version("payguard")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    PAYGUARD_VERSION = "0+unknown"


@dataclass(frozen=True)
class _Compiled:
    """Everything derived from one rule set; swapped as a whole by ``reload``."""

    ruleset: RuleSet
    ref: RulesetRef
    plan: Plan
    matcher: Any
    features: FeatureEngine
    # per rule, in rule order: whether it is a shadow rule, and the hit it reports (hits are immutable)
    hits: tuple[tuple[bool, Hit], ...]
    # the features whose values are not JSON as computed (tuples; money is computed as text)
    unjson: frozenset[str]
    # ``ref`` as the audit records show it (shared by every record: the processors never change it)
    ref_json: dict[str, str]


def _compile(ruleset: RuleSet, engine: str) -> _Compiled:
    plan = Plan(ruleset)
    if engine == "auto":
        engine = "durable" if _durable.AVAILABLE else "python"
    matcher: Any = _durable.DurableMatcher(plan) if engine == "durable" else PythonMatcher(plan)
    ref = RulesetRef(ruleset.id, ruleset.version, ruleset.digest)
    hits = tuple((rule.shadow, Hit(rule.id, rule.action, rule.reason, rule.tags)) for rule in ruleset.rules)
    unjson = frozenset(name for name in plan.features if FEATURES[name].kind is Kind.LIST)
    return _Compiled(ruleset, ref, plan, matcher, FeatureEngine(ruleset), hits, unjson, ref.to_dict())


def _json_value(value: Any) -> Any:
    kind = type(value)
    if kind is Decimal:
        return str(value)
    if kind is tuple:
        return list(value)
    return value


class Guard:
    """Decides transaction events against a compiled rule set. Safe to share between threads.

    ``engine`` is ``"auto"`` (durable_rules where it imports, else Python), ``"durable"`` or ``"python"``.
    ``store`` keeps histories (default: a new ``MemoryStore``). ``audit`` is a path, a callable or a
    structlog-compatible logger; ``audit_key`` keys the hashes that mask identifiers in it. ``on_error``
    is ``"hold"`` (an internal failure yields an audited ``hold``) or ``"raise"`` (for tests).
    """

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        engine: str = "auto",
        store: Store | None = None,
        audit: Any = None,
        audit_key: bytes | str | None = None,
        audit_fsync: str | int = "never",
        on_error: Literal["hold", "raise"] = "hold",
    ) -> None:
        if engine not in ENGINES:
            raise PayguardError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if on_error not in ("hold", "raise"):
            raise PayguardError(f"on_error must be 'hold' or 'raise', not {on_error!r}")
        self._engine_choice = engine
        # The compiled rule set and the current lists, swapped together as one reference so that no
        # decision sees a rule set with another rule set's lists, or half a list.
        self._state: tuple[_Compiled, Mapping[str, frozenset[str]]] = (
            _compile(ruleset, engine),
            dict(ruleset.lists),
        )
        self._lists_set: set[str] = set()
        # MemoryStore implements Store as a registered virtual subclass (it is a compiled class)
        self.store: Store = store if store is not None else cast(Store, MemoryStore())
        self.audit: AuditTrail | None = (
            audit
            if isinstance(audit, AuditTrail) or audit is None
            else AuditTrail(audit, key=audit_key, fsync=audit_fsync)
        )
        self.on_error = on_error
        self._ids = itertools.count(1)
        self._prefix = os.urandom(6).hex() + "-"
        self._swap_lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> Guard:
        """Load the rule file or directory at ``path``; ``options`` are those of ``Guard``."""
        return cls(load_rule_set(path), **options)

    # -- what the guard is running -------------------------------------------------------------------
    @property
    def ruleset(self) -> RulesetRef:
        """Id, version and digest of the rule set in force."""
        return self._state[0].ref

    @property
    def rules(self) -> RuleSet:
        """The rule set in force, as loaded."""
        return self._state[0].ruleset

    @property
    def engine(self) -> str:
        """The matching engine in use: ``durable`` or ``python``."""
        return str(self._state[0].matcher.name)

    def list_entries(self, name: str) -> frozenset[str]:
        """The current (normalised) entries of the named list ``name``."""
        return self._state[1][name]

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, event: Event | Mapping[str, Any]) -> Decision:
        """Decide ``event`` (a canonical dict or ``Event``).

        Raises ``InvalidEventError`` for an invalid event and ``AuditError`` when the record was not written.
        An event id seen before returns the first decision again, without counting the event twice.
        """
        return self._evaluate(event)[0]

    def _evaluate(self, event: Event | Mapping[str, Any]) -> tuple[Decision, bool]:
        """The decision, and whether it was made now (``False`` for a repeated event id).

        A store that fails to open, read or commit the event's transaction yields an audited ``hold``
        that is not stored (if the failure came at commit, the audit trail also holds the record of the
        decision that could not be committed, and the ``hold`` after it is the one returned).
        """
        started = time.perf_counter()
        compiled, lists = self._state
        parsed = self._validate(event, compiled)
        try:
            with self.store.transaction() as txn:
                previous = txn.decision(parsed.id)
                if previous is not None:
                    return previous, False
                decision = self._decide_in(txn, parsed, compiled, lists, started)
                txn.put_decision(parsed.id, decision)
        except (InvalidEventError, AuditError):
            raise
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = self._failed(self._new_id(), parsed, compiled, exc)
            if self.audit is not None:
                self.audit.write(self._record(decision, parsed, compiled, started))
        return decision, True

    def _decide_in(
        self,
        txn: StoreTransaction,
        parsed: Event,
        compiled: _Compiled,
        lists: Mapping[str, frozenset[str]],
        started: float,
    ) -> Decision:
        """Features, match, decision, audit record, then the history update, inside one transaction."""
        decision_id = self._new_id()
        try:
            context = compiled.features.context(parsed, txn)
            features = compiled.features.compute(context, compiled.plan.features)
            indices = compiled.matcher.match_event(parsed, features, lists, context.minor)
            decision = self._decide(decision_id, parsed, compiled, indices, features)
        except InvalidEventError as exc:
            self._audit_rejected(exc, compiled)
            raise
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = self._failed(decision_id, parsed, compiled, exc)
        if self.audit is not None:
            self.audit.write(self._record(decision, parsed, compiled, started))
        if decision.error is None:
            compiled.features.commit(context, decision.action, decision.decision_id)
        return decision

    def _new_id(self) -> str:
        return self._prefix + str(next(self._ids)).zfill(12)

    def _validate(self, event: Event | Mapping[str, Any], compiled: _Compiled | None = None) -> Event:
        """``event`` validated; an invalid one is audited as rejected, then ``InvalidEventError`` raised."""
        try:
            return parse_event(event)
        except InvalidEventError as exc:
            self._audit_rejected(exc, compiled or self._state[0])
            raise

    def _decide(
        self,
        decision_id: str,
        event: Event,
        compiled: _Compiled,
        indices: list[int],
        features: dict[str, Any],
    ) -> Decision:
        hits: list[Hit] = []
        shadow: list[Hit] = []
        for index in indices:
            is_shadow, hit = compiled.hits[index]
            (shadow if is_shadow else hits).append(hit)
        for name in compiled.unjson:  # the fact is built: the feature values become JSON in place
            if name in features:
                features[name] = _json_value(features[name])
        return Decision(
            decision_id=decision_id,
            event_id=event.id,
            action=most_severe(hit.action for hit in hits) if hits else _ALLOW,
            hits=tuple(hits),
            shadow_hits=tuple(shadow),
            ruleset=compiled.ref,
            engine=compiled.matcher.name,
            evaluated_at=datetime.now(UTC),
            event_time=event.timestamp,
            features=features,
        )

    def _failed(self, decision_id: str, event: Event, compiled: _Compiled, exc: Exception) -> Decision:
        reason = f"payguard could not evaluate this payment ({type(exc).__name__}: {exc}); held for review"
        return Decision(
            decision_id=decision_id,
            event_id=event.id,
            action=Action.HOLD,
            hits=(Hit(INTERNAL_ERROR_RULE, Action.HOLD, reason),),
            shadow_hits=(),
            ruleset=compiled.ref,
            engine=compiled.matcher.name,
            evaluated_at=datetime.now(UTC),
            event_time=event.timestamp,
            error=f"{type(exc).__name__}: {exc}",
        )

    # -- audit records --------------------------------------------------------------------------------
    def _record(
        self, decision: Decision, event: Event, compiled: _Compiled, started: float
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "record": "decision",
            "decision_id": decision.decision_id,
            "evaluated_at": isoformat(decision.evaluated_at),
            "event_id": event.id,
            "event_time": isoformat(event.timestamp),
            "event_type": event.type._value_,
            "action": decision.action._value_,
            "hits": [hit.to_dict() for hit in decision.hits],
            "shadow_hits": [hit.to_dict() for hit in decision.shadow_hits],
            "evidence": self._evidence(decision, event, compiled),
            "ruleset": compiled.ref_json,
            "engine": decision.engine,
            "payguard_version": PAYGUARD_VERSION,
            "payer": event.payer.account,
            "latency_us": round((time.perf_counter() - started) * 1e6, 1),
        }
        if event.payee is not None:
            record["payee"] = event.payee.account
        if event.amount is not None:
            record["amount"] = str(event.amount)
            record["currency"] = event.currency
        if decision.error is not None:
            record["error"] = decision.error
        return record

    def _evidence(self, decision: Decision, event: Event, compiled: _Compiled) -> dict[str, Any]:
        """The values of the fields and features that the rules which fired read."""
        reads = compiled.plan.rule_fields
        names: set[str] = set()
        for hit in (*decision.hits, *decision.shadow_hits):
            names |= reads.get(hit.rule_id, frozenset())  # the internal-error hold reads nothing
        evidence: dict[str, Any] = {}
        for name in sorted(names):
            spec = compiled.ruleset.field_spec(name)
            value = (
                decision.features.get(name) if spec.is_feature else compiled.plan.field_value(spec, event, {})
            )
            evidence[name] = _json_value(value)
        return evidence

    def _audit_rejected(self, exc: InvalidEventError, compiled: _Compiled) -> None:
        if self.audit is None:
            return
        self.audit.write(
            {
                "record": "rejected",
                "decision_id": self._new_id(),
                "evaluated_at": isoformat(datetime.now(UTC)),
                "event_id": exc.event_id,
                "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in exc.errors],
                "ruleset": compiled.ref.to_dict(),
                "engine": compiled.matcher.name,
                "payguard_version": PAYGUARD_VERSION,
            }
        )

    # -- history, lists, reloads ---------------------------------------------------------------------
    def record(self, events: Iterable[Event | Mapping[str, Any]]) -> int:
        """Feed past events into the store without deciding or auditing them; returns how many.

        Outgoing payments count as executed. Raises ``InvalidEventError`` at the first invalid event (the
        events before it are kept).
        """
        count = 0
        compiled = self._state[0]
        for item in events:
            event = parse_event(item)
            with self.store.transaction() as txn:
                compiled.features.commit(compiled.features.context(event, txn), Action.ALLOW, None)
            count += 1
        return count

    def release(self, decision_id: str) -> None:
        """Record that the bank released a held payment: from now on it counts as executed."""
        with self.store.transaction() as txn:
            held = txn.held(decision_id)
            if held is None:
                raise UnknownDecisionError(f"no held payment with decision id {decision_id!r}")
            self._state[0].features.release(parse_event(held["event"]), txn)
            txn.put_held(decision_id, None)

    def set_list(self, name: str, entries: Iterable[str]) -> None:
        """Replace the named list ``name`` atomically; no decision sees half a list."""
        fresh = frozenset(normalize_account(str(e)) for e in entries if str(e).strip())
        with self._swap_lock:
            compiled, lists = self._state
            if name not in lists:
                known = ", ".join(sorted(lists)) or "none"
                raise PayguardError(f"unknown list {name!r}: the rule set declares {known}")
            self._state = (compiled, {**lists, name: fresh})
            self._lists_set.add(name)

    def reload(self, path: str | Path) -> RulesetRef:
        """Swap in the rule set at ``path`` atomically. On any error the running rule set stays."""
        ruleset = load_rule_set(path)
        compiled = _compile(ruleset, self._engine_choice)
        with self._swap_lock:
            current = self._state[1]
            lists = dict(ruleset.lists)
            for name in self._lists_set & set(lists):
                lists[name] = current[name]  # lists set at run time outlive a reload
            self._state = (compiled, lists)
        return compiled.ref

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the audit sink and the store."""
        if self.audit is not None:
            self.audit.close()
        self.store.close()
