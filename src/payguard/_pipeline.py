"""The stages of a decision for one rule set: validate, features, match, decide, the audit record.

Everything in a ``Pipeline`` is derived from one rule set, built once and swapped as a whole by
``Guard.reload``; the guard runs the stages inside one store transaction per event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ._audit.record import decision_record
from ._decision import Action, Decision, Hit, RulesetRef, json_value, most_severe
from ._engine import Matcher, make_matcher
from ._engine.fact import Plan
from ._errors import InvalidEventError
from ._event import Admitted, Event, admit
from ._features.calculator import FeatureEngine
from ._features.context import INCOMING, Context
from ._rules.fields import FEATURES, Kind
from ._rules.fx import rated_currencies
from ._rules.model import RuleSet
from ._stores.interface import StoreTransaction

__all__ = ["INTERNAL_ERROR_RULE", "NO_RULES", "UNRATED_CURRENCY_RULE", "Pipeline"]

INTERNAL_ERROR_RULE: Final = "payguard.internal_error"
UNRATED_CURRENCY_RULE: Final = "payguard.unrated_currency"
_UNRATED_REASON: Final = "no reference rate for this payment's currency: no amount limit could be applied"
_ALLOW: Final = Action.ALLOW  # read directly by compiled code, not through the enum class's attribute hook
NO_RULES: Final[frozenset[str]] = frozenset()  # no rule snoozed


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
            (rule.shadow, Hit(rule.id, rule.action, rule.reason, rule.tags, rule.score))
            for rule in ruleset.rules
        )
        # score thresholds, most severe first (empty: the rule set does not score)
        self.thresholds = ruleset.scoring
        # the rules a snooze may suppress (never an interrupt that reads a list)
        self.snoozable = frozenset(rule.id for rule in ruleset.rules if rule.snoozable)
        # a payment in a currency no money test reads gets this hit (None: no test names a currency, or the
        # rule set lets such payments through)
        rated = rated_currencies(ruleset)
        self.rated: frozenset[str] | None = None if ruleset.unrated_currency is Action.ALLOW else rated
        self.unrated = Hit(UNRATED_CURRENCY_RULE, ruleset.unrated_currency, _UNRATED_REASON)
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

    def compute(
        self, admitted: Admitted, txn: StoreTransaction, payee_side: Mapping[str, Any] | None = None
    ) -> tuple[Context, dict[str, Any]]:
        """The event's view of the store and the features the rules read (``payee_side``: subject-only,
        with the payee-side features given)."""
        context = self.features.context(admitted, txn, payee_side)
        return context, self.features.compute(context, self.plan.features)

    def match(
        self, context: Context, features: dict[str, Any], lists: Mapping[str, frozenset[str]]
    ) -> list[int]:
        """The indices of the rules the event matches."""
        return self.matcher.match_event(context.event, features, lists, context.minor)

    def snoozed(self, context: Context) -> frozenset[str]:
        """The rules snoozed for this event's payer (and payee) at its time, that a snooze may suppress."""
        if context.kind in INCOMING:  # the history read is the payee's: a payer's snoozes do not apply
            return NO_RULES
        history = context.history
        if not history.snoozes:
            return NO_RULES
        return history.snoozed(context.time, context.payee_hash) & self.snoozable

    def decide(
        self,
        decision_id: str,
        event: Event,
        indices: list[int],
        features: dict[str, Any],
        snoozed: frozenset[str] = frozenset(),
        *,
        lists: Mapping[str, int] | None = None,
        listed: int = 0,
    ) -> Decision:
        """The decision: the most severe of the enforced hits' actions and of the action whose threshold
        their score reaches; ``allow`` when neither gives one. Snoozed rules do not fire. ``lists`` and
        ``listed``: the versions of the lists the decision read (``Decision.lists``)."""
        hits: list[Hit] = []
        shadow: list[Hit] = []
        suppressed: list[str] = []
        score = 0
        for index in indices:
            is_shadow, hit = self.hits[index]
            if snoozed and hit.rule_id in snoozed:
                suppressed.append(hit.rule_id)
            elif is_shadow:
                shadow.append(hit)
            else:
                hits.append(hit)
                if hit.score is not None:
                    score += hit.score
        rated = self.rated
        if rated is not None and event.amount is not None and event.currency not in rated:
            hits.append(self.unrated)  # its money tests could not apply: it fails closed
        action = most_severe(hit.action for hit in hits if hit.action is not None) if hits else _ALLOW
        for threshold, scored in self.thresholds:
            if score >= threshold:
                if scored.severity > action.severity:
                    action = scored
                break
        for name in self.unjson:  # the fact is built: the feature values become JSON in place
            if name in features:
                features[name] = json_value(features[name])
        return Decision(
            decision_id=decision_id,
            event_id=event.id,
            action=action,
            hits=tuple(hits),
            shadow_hits=tuple(shadow),
            ruleset=self.ref,
            engine=self.matcher.name,
            evaluated_at=datetime.now(UTC),
            event_time=event.timestamp,
            features=features,
            score=score,
            snoozed=tuple(suppressed),
            lists=lists,
            listed=listed,
        )

    def failed(self, decision_id: str, event: Event, exc: Exception) -> Decision:
        """The audited ``hold`` that stands for a decision payguard could not make."""
        # the reason may reach the customer: the error's text goes to ``error`` (the audit record), not here
        reason = "payguard could not evaluate this payment; held for review"
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
        evidence = self.evidence(decision, admitted.event)
        latency = round((time.perf_counter() - started) * 1e6, 1)
        return decision_record(
            decision,
            admitted.event,
            admitted.offset,
            self.ref_json,
            evidence,
            latency,
            public=self.ruleset.public_attributes,
        )

    def evidence(self, decision: Decision, event: Event) -> dict[str, Any]:
        """The values of the fields and features that the rules which fired (shadow rules too) read."""
        reads = self.plan.rule_fields
        names: set[str] = set()
        for hit in (*decision.hits, *decision.shadow_hits):
            names |= reads.get(hit.rule_id, frozenset())  # the internal-error hold reads nothing
        evidence: dict[str, Any] = {}
        for name in sorted(names):
            evidence[name] = self.plan.field_value(self.ruleset.field_spec(name), event, decision.features)
        return evidence
