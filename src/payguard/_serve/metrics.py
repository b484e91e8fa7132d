"""The Prometheus metrics of ``payguard serve``: what an SRE alerts on (docs/operations.md).

One worker keeps them in its own registry. Several workers share them through prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before the workers start), so that a
scrape of any worker shows the whole server.
"""

from __future__ import annotations

import os
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .._decision import Decision, RulesetRef

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "Metrics", "ruleset_label"]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# a decision takes well under a millisecond in memory; a store or audit sink in trouble shows in the tail
BUCKETS: Final = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def ruleset_label(ref: RulesetRef) -> str:
    """How the ``ruleset`` label names a rule set: ``payguard-default@2.0.0``."""
    return f"{ref.id}@{ref.version}"


class Metrics:
    """Counters and the decision-time histogram, in a registry of their own (never the global one: a host
    that embeds the app keeps its own metrics apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiproc = os.environ.get(MULTIPROC_ENV)
        reg = self.registry
        self.decisions = Counter(
            "payguard_decisions",
            "Decisions made, by action and rule set.",
            ["action", "ruleset"],
            registry=reg,
        )
        self.rule_hits = Counter(
            "payguard_rule_hits", "Enforced rules that fired, by rule.", ["rule"], registry=reg
        )
        self.shadow_hits = Counter(
            "payguard_shadow_hits",
            "Shadow rules that fired (never acted on), by rule.",
            ["rule"],
            registry=reg,
        )
        self.decision_seconds = Histogram(
            "payguard_decision_seconds",
            "Time to decide one event (validation, features, match, audit record, commit).",
            buckets=BUCKETS,
            registry=reg,
        )
        self.rejected = Counter(
            "payguard_rejected_events",
            "Events refused without a decision, by reason (not_json, invalid_event, duplicate_id).",
            ["reason"],
            registry=reg,
        )
        self.repeats = Counter(
            "payguard_repeated_events",
            "Events sent again with an id decided before: answered with their first decision.",
            registry=reg,
        )
        self.internal_holds = Counter(
            "payguard_internal_error_holds",
            "Audited holds payguard gave because it could not evaluate an event.",
            registry=reg,
        )
        self.audit_failures = Counter(
            "payguard_audit_write_failures",
            "Audit records that could not be written (the request was answered 503).",
            registry=reg,
        )
        self.store_failures = Counter(
            "payguard_store_failures", "Store transactions that failed.", registry=reg
        )
        self.lease_waits = Counter(
            "payguard_lease_waits",
            "Waits for another replica's account lease (stores with leases).",
            registry=reg,
        )
        self.stale_reads = Counter(
            "payguard_store_retries",
            "Events decided again under the store's lock: another process changed what they read (SQLite).",
            registry=reg,
        )
        self.ruleset = Gauge(
            "payguard_ruleset_info",
            "The rule set in force (1; 0 for one it replaced), by id, version and digest.",
            ["id", "version", "digest"],
            registry=reg,
            multiprocess_mode="liveall",
        )
        self._shown: tuple[str, str, str] | None = None

    def decided(self, decision: Decision, seconds: float) -> None:
        self.decisions.labels(decision.action._value_, ruleset_label(decision.ruleset)).inc()
        for hit in decision.hits:
            self.rule_hits.labels(hit.rule_id).inc()
        for hit in decision.shadow_hits:
            self.shadow_hits.labels(hit.rule_id).inc()
        self.decision_seconds.observe(seconds)
        if decision.error is not None:
            self.internal_holds.inc()
            if decision.error.startswith("StoreError"):
                self.store_failures.inc()

    def in_force(self, ref: RulesetRef) -> None:
        """Show ``ref`` as the rule set in force (and no longer the one before it)."""
        shown = (ref.id, ref.version, ref.digest)
        if self._shown is not None and self._shown != shown:
            self.ruleset.labels(*self._shown).set(0)  # kept, at 0: a dashboard sees when it was replaced
        self.ruleset.labels(*shown).set(1)
        self._shown = shown

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker, in multiprocess mode)."""
        if self._multiproc:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self._multiproc)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def count_store_waits(self, store: Any, seen: tuple[int, int]) -> tuple[int, int]:
        """Add the lease waits and the stale reads ``store`` counted since ``seen`` (both counts, as this
        returned them last); returns its counts now."""
        waits, stale = getattr(store, "lease_waits", None), getattr(store, "stale_reads", None)
        return _added(self.lease_waits, waits, seen[0]), _added(self.stale_reads, stale, seen[1])


def _added(counter: Counter, now: object, seen: int) -> int:
    if not isinstance(now, int) or now <= seen:
        return seen
    counter.inc(now - seen)
    return now
