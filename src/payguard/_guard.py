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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from ._audit.record import decision_record, rejected_record
from ._audit.trail import AuditTrail
from ._common.text import normalize_account
from ._decision import Action, Decision, Hit, RulesetRef, json_value, most_severe
from ._engine import ENGINES, Matcher, make_matcher, resolve_engine
from ._engine.fact import Plan
from ._errors import AuditError, InvalidEventError, PayguardError, UnknownDecisionError
from ._event import Admitted, Event, admit
from ._features.calculator import FeatureEngine
from ._features.context import Context
from ._rules.fields import FEATURES, Kind
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet
from ._stores.interface import Store, StoreTransaction
from ._stores.memory import MemoryStore

__all__ = ["ENGINES", "Guard", "Pipeline"]

INTERNAL_ERROR_RULE: Final = "payguard.internal_error"
_ALLOW: Final = Action.ALLOW  # read directly by compiled code, not through the enum class's attribute hook


class Pipeline:
    """The stages of a decision for one rule set: features, match, decide, audit record.

    Everything derived from one rule set, built once and swapped as a whole by ``Guard.reload``. The guard
    runs the stages inside a store transaction (``Guard.evaluate``); benchmarks and tools may run them one
    by one to see where a decision's time goes.
    """

    def __init__(self, ruleset: RuleSet, engine: str) -> None:
        self.ruleset = ruleset
        self.plan = Plan(ruleset)
        self.matcher: Matcher = make_matcher(self.plan, engine)
        self.features = FeatureEngine(ruleset)
        self.ref = RulesetRef(ruleset.id, ruleset.version, ruleset.digest)
        # ``ref`` as the audit records show it (shared by every record: the processors never change it)
        self.ref_json = self.ref.to_dict()
        # per rule, in rule order: whether it is a shadow rule, and the hit it reports (hits are immutable)
        self.hits: tuple[tuple[bool, Hit], ...] = tuple(
            (rule.shadow, Hit(rule.id, rule.action, rule.reason, rule.tags)) for rule in ruleset.rules
        )
        # the features whose values are not JSON as computed (tuples)
        self.unjson = frozenset(name for name in self.plan.features if FEATURES[name].kind is Kind.LIST)

    @property
    def engine(self) -> str:
        return self.matcher.name

    def validate(self, data: Event | Mapping[str, Any]) -> Admitted:
        """``data`` validated, its attributes against the rule set's declarations; ``InvalidEventError``."""
        admitted = admit(data)
        errors = self.ruleset.attribute_errors(admitted.event)
        if errors:
            raise InvalidEventError(errors, admitted.event.id)
        return admitted

    def compute(self, admitted: Admitted, txn: StoreTransaction) -> tuple[Context, dict[str, Any]]:
        """The event's view of the store and the features the rules read."""
        context = self.features.context(admitted, txn)
        return context, self.features.compute(context, self.plan.features)

    def match(
        self, context: Context, features: dict[str, Any], lists: Mapping[str, frozenset[str]]
    ) -> list[int]:
        """The indices of the rules the event matches."""
        return self.matcher.match_event(context.event, features, lists, context.minor)

    def decide(
        self, decision_id: str, event: Event, indices: list[int], features: dict[str, Any]
    ) -> Decision:
        """The decision: the most severe enforced hit's action, ``allow`` when none."""
        hits: list[Hit] = []
        shadow: list[Hit] = []
        for index in indices:
            is_shadow, hit = self.hits[index]
            (shadow if is_shadow else hits).append(hit)
        for name in self.unjson:  # the fact is built: the feature values become JSON in place
            if name in features:
                features[name] = json_value(features[name])
        return Decision(
            decision_id=decision_id,
            event_id=event.id,
            action=most_severe(hit.action for hit in hits) if hits else _ALLOW,
            hits=tuple(hits),
            shadow_hits=tuple(shadow),
            ruleset=self.ref,
            engine=self.matcher.name,
            evaluated_at=datetime.now(UTC),
            event_time=event.timestamp,
            features=features,
        )

    def failed(self, decision_id: str, event: Event, exc: Exception) -> Decision:
        """The audited ``hold`` that stands for a decision payguard could not make."""
        reason = f"payguard could not evaluate this payment ({type(exc).__name__}: {exc}); held for review"
        return Decision(
            decision_id=decision_id,
            event_id=event.id,
            action=Action.HOLD,
            hits=(Hit(INTERNAL_ERROR_RULE, Action.HOLD, reason),),
            shadow_hits=(),
            ruleset=self.ref,
            engine=self.matcher.name,
            evaluated_at=datetime.now(UTC),
            event_time=event.timestamp,
            error=f"{type(exc).__name__}: {exc}",
        )

    def record(self, decision: Decision, admitted: Admitted, started: float) -> dict[str, Any]:
        """The audit record of ``decision``, with the evidence the rules that fired read."""
        event = admitted.event
        reads = self.plan.rule_fields
        names: set[str] = set()
        for hit in (*decision.hits, *decision.shadow_hits):
            names |= reads.get(hit.rule_id, frozenset())  # the internal-error hold reads nothing
        evidence: dict[str, Any] = {}
        for name in sorted(names):
            evidence[name] = self.plan.field_value(self.ruleset.field_spec(name), event, decision.features)
        latency = round((time.perf_counter() - started) * 1e6, 1)
        return decision_record(decision, event, admitted.offset, self.ref_json, evidence, latency)


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
        resolve_engine(engine)
        if on_error not in ("hold", "raise"):
            raise PayguardError(f"on_error must be 'hold' or 'raise', not {on_error!r}")
        self._engine_choice = engine
        # The pipeline and the current lists, swapped together as one reference so that no decision sees a
        # rule set with another rule set's lists, or half a list.
        self._state: tuple[Pipeline, Mapping[str, frozenset[str]]] = (
            Pipeline(ruleset, engine),
            dict(ruleset.lists),
        )
        self._lists_set: set[str] = set()
        self.store: Store = store if store is not None else MemoryStore()
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
        return self._state[0].engine

    @property
    def pipeline(self) -> Pipeline:
        """The stages of a decision for the rule set in force (for tools that run them one by one)."""
        return self._state[0]

    @property
    def lists(self) -> Mapping[str, frozenset[str]]:
        """The named lists in force, by name (normalised entries)."""
        return self._state[1]

    def list_entries(self, name: str) -> frozenset[str]:
        """The current (normalised) entries of the named list ``name``."""
        return self._state[1][name]

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, event: Event | Mapping[str, Any]) -> Decision:
        """Decide ``event`` (a canonical dict or ``Event``).

        Raises ``InvalidEventError`` for an invalid event and ``AuditError`` when the record was not written.
        An event id seen before returns the first decision again, without counting the event twice.
        """
        return self.evaluate_fresh(event)[0]

    def evaluate_fresh(self, event: Event | Mapping[str, Any]) -> tuple[Decision, bool]:
        """As ``evaluate``, and whether the decision was made now (``False``: the event id was decided
        before, and this is that decision).

        A store that fails to open, read or commit the event's transaction yields an audited ``hold``
        that is not stored (if the failure came at commit, the audit trail also holds the record of the
        decision that could not be committed, and the ``hold`` after it is the one returned).
        """
        started = time.perf_counter()
        pipeline, lists = self._state
        admitted = self._admit(event, pipeline)
        try:
            with self.store.transaction() as txn:
                previous = txn.decision(admitted.event.id)
                if previous is not None:
                    return previous, False
                decision = self._decide_in(txn, admitted, pipeline, lists, started)
                txn.put_decision(admitted.event.id, decision)
        except AuditError:
            raise
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = pipeline.failed(self._new_id(), admitted.event, exc)
            if self.audit is not None:
                self.audit.write(pipeline.record(decision, admitted, started))
        return decision, True

    def _decide_in(
        self,
        txn: StoreTransaction,
        admitted: Admitted,
        pipeline: Pipeline,
        lists: Mapping[str, frozenset[str]],
        started: float,
    ) -> Decision:
        """Features, match, decision, audit record, then the history update, inside one transaction."""
        decision_id = self._new_id()
        try:
            context, features = pipeline.compute(admitted, txn)
            indices = pipeline.match(context, features, lists)
            decision = pipeline.decide(decision_id, admitted.event, indices, features)
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = pipeline.failed(decision_id, admitted.event, exc)
        if self.audit is not None:
            self.audit.write(pipeline.record(decision, admitted, started))
        if decision.error is None:
            pipeline.features.commit(context, decision.action, decision.decision_id)
        return decision

    def _new_id(self) -> str:
        return self._prefix + str(next(self._ids)).zfill(12)

    def validate(self, event: Event | Mapping[str, Any]) -> Event:
        """``event`` validated against the rule set in force, as ``evaluate`` validates it.

        An invalid event is audited as rejected, then ``InvalidEventError`` raised.
        """
        return self._admit(event, self._state[0]).event

    def _admit(self, event: Event | Mapping[str, Any], pipeline: Pipeline) -> Admitted:
        try:
            return pipeline.validate(event)
        except InvalidEventError as exc:
            if self.audit is not None:
                self.audit.write(rejected_record(self._new_id(), exc, pipeline.ref_json, pipeline.engine))
            raise

    # -- history, lists, reloads ---------------------------------------------------------------------
    def record(self, events: Iterable[Event | Mapping[str, Any]]) -> int:
        """Feed past events into the store without deciding or auditing them; returns how many.

        Outgoing payments count as executed. Raises ``InvalidEventError`` at the first invalid event (the
        events before it are kept).
        """
        count = 0
        pipeline = self._state[0]
        for item in events:
            admitted = pipeline.validate(item)
            with self.store.transaction() as txn:
                pipeline.features.commit(pipeline.features.context(admitted, txn), Action.ALLOW, None)
            count += 1
        return count

    def release(self, decision_id: str) -> None:
        """Record that the bank released a held payment: from now on it counts as executed."""
        with self.store.transaction() as txn:
            held = txn.held(decision_id)
            if held is None:
                raise UnknownDecisionError(f"no held payment with decision id {decision_id!r}")
            self._state[0].features.release(admit(held["event"]), txn)
            txn.put_held(decision_id, None)

    def set_list(self, name: str, entries: Iterable[str]) -> None:
        """Replace the named list ``name`` atomically; no decision sees half a list."""
        fresh = frozenset(normalize_account(str(e)) for e in entries if str(e).strip())
        with self._swap_lock:
            pipeline, lists = self._state
            if name not in lists:
                known = ", ".join(sorted(lists)) or "none"
                raise PayguardError(f"unknown list {name!r}: the rule set declares {known}")
            self._state = (pipeline, {**lists, name: fresh})
            self._lists_set.add(name)

    def reload(self, path: str | Path) -> RulesetRef:
        """Swap in the rule set at ``path`` atomically. On any error the running rule set stays."""
        ruleset = load_rule_set(path)
        pipeline = Pipeline(ruleset, self._engine_choice)
        with self._swap_lock:
            current = self._state[1]
            lists = dict(ruleset.lists)
            for name in self._lists_set & set(lists):
                lists[name] = current[name]  # lists set at run time outlive a reload
            self._state = (pipeline, lists)
        return pipeline.ref

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the audit sink and the store."""
        if self.audit is not None:
            self.audit.close()
        self.store.close()
