"""The Guard: load a rule set once, then decide events from any number of threads.

Per event, under one store transaction: validate, compute the features the rules read, build the fact,
match, decide, write the audit record, and only then update the histories. A decision is returned only
after its audit record was handed to the sink; if that fails the caller gets ``AuditError`` and the store is
left as it was.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, NoReturn

from ._audit.keys import audit_key_bytes
from ._audit.record import rejected_record, resolution_record, snooze_record
from ._audit.trail import AuditTrail
from ._common.text import normalize_account
from ._common.time import epoch_seconds
from ._decision import Action, Decision, RulesetRef
from ._engine import ENGINES, resolve_engine
from ._errors import (
    AuditError,
    DuplicateEventError,
    FieldError,
    InvalidEventError,
    PayguardError,
)
from ._event import Admitted, Event, admit, digest
from ._lifecycle import Outcome, Resolution, check_note, check_snooze_terms, not_stopped, outcome_of
from ._pipeline import NO_RULES, Pipeline
from ._replicas import (
    NOTHING_READ,
    Published,
    in_force,
    load_published,
    record_batched,
    record_each,
    transactions_for,
    with_published,
)
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet, list_entries
from ._stores.history import party
from ._stores.interface import StaleReadError, Store, StoreTransaction
from ._stores.memory import MemoryStore

__all__ = ["ENGINES", "Guard", "Pipeline"]


_LOG: Final = logging.getLogger("payguard")
MAX_FUTURE: Final = timedelta(minutes=5)
NO_DIGEST: Final = b""  # the digest given to a store that keeps no decision (it is never compared)


class Guard:
    """Decides transaction events against a compiled rule set. Safe to share between threads.

    ``engine`` is ``"auto"`` (durable_rules where it imports, else Python), ``"durable"`` or ``"python"``.
    ``store`` keeps histories (default: a new ``MemoryStore``). ``audit`` is a path, a callable or a
    structlog-compatible logger; ``audit_key`` derives the keys that mask identifiers in it and chain its
    records (an HMAC each). ``audit_signing_key`` (an Ed25519 key file, ``payguard audit keygen``) signs a
    checkpoint every ``audit_checkpoint_every`` records and on close, also sent to ``audit_checkpoints``
    (a path or a callable: the external witness). ``on_error`` is ``"hold"`` (an internal failure yields an
    audited ``hold``) or ``"raise"`` (for tests).
    ``max_future`` is how far ahead of this machine's clock an event may be dated (a live guard decides
    the payments of now); ``None`` turns the check off, for replays and tests in event time.
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
        audit_signing_key: str | Path | None = None,
        audit_checkpoint_every: int = 1000,
        audit_checkpoints: str | Path | Callable[[dict[str, Any]], Any] | None = None,
        on_error: Literal["hold", "raise"] = "hold",
        max_future: timedelta | None = MAX_FUTURE,
    ) -> None:
        resolve_engine(engine)
        audit_key_bytes(audit_key)  # refuses a key too short to keep the masking secret
        if on_error not in ("hold", "raise"):
            raise PayguardError(f"on_error must be 'hold' or 'raise', not {on_error!r}")
        if audit is None and (audit_signing_key is not None or audit_checkpoints is not None):
            raise AuditError("audit_signing_key and audit_checkpoints need an audit sink (audit=...)")
        if max_future is not None and (not isinstance(max_future, timedelta) or max_future < timedelta(0)):
            raise PayguardError(f"max_future must be a timedelta of 0 or more, or None, not {max_future!r}")
        self._max_future = max_future
        # in seconds, compared with epoch seconds on every event (None: no check)
        self._ahead: float | None = None if max_future is None else max_future.total_seconds()
        self._engine_choice = engine
        # The pipeline and the current lists, swapped together as one reference so that no decision sees a
        # rule set with another rule set's lists, or half a list.
        # ... and the versions of the lists set at run time (``set_list``; absent: as in the rule set)
        self._state: tuple[Pipeline, Mapping[str, frozenset[str]], Mapping[str, int]] = (
            Pipeline(ruleset, engine),
            dict(ruleset.lists),
            {},
        )
        self._lists_set: set[str] = set()
        self.store: Store = store if store is not None else MemoryStore()
        # a network store leases and prefetches an event's accounts when told them up front
        self._open: Any = getattr(self.store, "transaction_for", None)
        # a store shared by processes publishes ``set_list`` to all of them (RedisStore)
        self._publishes = hasattr(self.store, "publish_list")
        # a store that keeps no decision (a partitioned replay's, whose plan deduplicated the events) is
        # given no event digest: nothing would ever compare it
        self._digests: bool = getattr(self.store, "keeps_decisions", True)
        # the lists published in the store as last read: (epoch, lists in force, merged, versions)
        self._published: Published = NOTHING_READ
        # the rule-set digest another process's ``reload`` published that this guard last followed, and
        # while it cannot: what it is behind (digest, path, error), in each of its audit records
        self._following: str | None = None
        self._behind: dict[str, str] | None = None
        self.audit: AuditTrail | None = (
            audit
            if isinstance(audit, AuditTrail) or audit is None
            else AuditTrail(
                audit,
                key=audit_key,
                fsync=audit_fsync,
                signing_key=audit_signing_key,
                checkpoint_every=audit_checkpoint_every,
                checkpoints=audit_checkpoints,
            )
        )
        self.on_error = on_error
        self._ids = itertools.count(1)
        self._prefix = os.urandom(6).hex() + "-"
        self._swap_lock = threading.Lock()
        # the lists in force merged with the store's listed accounts: (lists, store's listed version, merged)
        self._listed: tuple[Mapping[str, frozenset[str]], int, Mapping[str, frozenset[str]]] = ({}, 0, {})

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
    def max_future(self) -> timedelta | None:
        """How far ahead of this machine's clock an event may be dated; None: no check (event time)."""
        return self._max_future

    @property
    def lists(self) -> Mapping[str, frozenset[str]]:
        """The named lists in force, by name (normalised entries); on a shared store, with the lists any
        process set (read from the store: ``StoreError`` when it cannot be)."""
        return self.lists_in_force()[0]

    @property
    def list_versions(self) -> Mapping[str, int]:
        """The versions of the lists set at run time (``set_list``), by name, as decisions record them."""
        return self.lists_in_force()[1]

    def list_entries(self, name: str) -> frozenset[str]:
        """The current (normalised) entries of the named list ``name``."""
        return self.lists_in_force()[0][name]

    def lists_in_force(self) -> tuple[Mapping[str, frozenset[str]], Mapping[str, int]]:
        """``lists`` and ``list_versions`` read together (on a shared store, one read of it)."""
        _pipeline, lists, versions = self._state
        return in_force(self.store, lists, versions) if self._publishes else (lists, versions)

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, event: Event | Mapping[str, Any]) -> Decision:
        """Decide ``event`` (a canonical dict or ``Event``).

        Raises ``InvalidEventError`` for an invalid event (dated more than ``max_future`` ahead included) and
        ``AuditError`` when the record was not written. An event id seen before returns the first
        decision again, without counting the event twice, if the event is the same; if it is not,
        ``DuplicateEventError`` is raised (and the refusal audited).
        """
        return self.evaluate_fresh(event)[0]

    def evaluate_fresh(self, event: Event | Mapping[str, Any]) -> tuple[Decision, bool]:
        """As ``evaluate``, and whether the decision was made now (``False``: the event id was decided
        before, and this is that decision).

        A store that fails to open, read or commit the event's transaction yields an audited ``hold``
        that is not stored (if the failure came at commit, the audit trail also holds the record of the
        decision that could not be committed, and the ``hold`` after it is the one returned).
        """
        return self._evaluate(event, None)

    def evaluate_subject(
        self, event: Event | Mapping[str, Any], payee_side: Mapping[str, Any]
    ) -> tuple[Decision, bool]:
        """As ``evaluate_fresh``, in subject-only mode: the decision reads only the subject account's
        history in this guard's store. The payee-side features (those of a transfer to another account
        that read the payee's history) are taken from ``payee_side``, as ``payee_features`` computed them
        where the payee's history lives, and the payee's history is not credited here (``record(...,
        side="payee")`` does it there). A partitioned replay decides each account's events this way."""
        return self._evaluate(event, payee_side)

    def payee_features(self, event: Event | Mapping[str, Any]) -> dict[str, Any]:
        """The payee-side features the rule set reads for ``event``, a transfer to another account, from
        the payee's history in this guard's store (read only); ``{}`` when there are none. What a
        subject-only decision of the same event is given (``evaluate_subject``)."""
        pipeline = self._state[0]
        admitted = pipeline.validate(event)
        with self.store.transaction() as txn:
            return pipeline.features.payee_features(admitted, txn, pipeline.plan.features)

    def _evaluate(
        self, event: Event | Mapping[str, Any], payee_side: Mapping[str, Any] | None
    ) -> tuple[Decision, bool]:
        started = time.perf_counter()
        pipeline, lists, versions = self._state
        admitted = self._admit(event, pipeline)
        event_id = admitted.event.id
        # outside the transaction (it holds the store's lock); none where no decision is kept to compare
        fingerprint = digest(admitted.event) if self._digests else NO_DIGEST
        published: tuple[str, str] | None = None
        decision_id: str | None = None
        try:
            # optimistic: read unlocked, decided again under the lock if another process changed what it read
            for optimistic, opened in transactions_for(self.store, admitted.event):
                try:
                    with opened as txn:
                        previous = txn.decision(event_id)
                        if previous is not None:
                            stored = txn.event_digest(event_id)
                            if stored is None or stored == fingerprint:  # None: stored by an earlier payguard
                                return previous, False
                        else:
                            decision_id = decision_id or self._new_id()
                            decision = self._decide_in(
                                txn,
                                admitted,
                                pipeline,
                                lists,
                                decision_id=decision_id,
                                versions=versions,
                                started=started,
                                payee_side=payee_side,
                                settle=getattr(txn, "settle", None) if optimistic else None,
                            )
                            txn.put_decision(event_id, decision, fingerprint)
                            if self._publishes:
                                published = txn.ruleset_in_force()  # type: ignore[attr-defined]
                except StaleReadError:
                    if not optimistic:
                        raise
                    continue
                break
        except AuditError:
            raise
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = pipeline.failed(self._new_id(), admitted.event, exc)
            if self.audit is not None:
                self.audit.write(pipeline.record(decision, admitted, started))
            return decision, True
        if published is not None and published[0] != pipeline.ref.digest:
            self._follow(published)  # after the commit: loading rules must not hold the event's leases
        if previous is not None:  # the same id, another event: refused, outside the transaction
            self._refuse(DuplicateEventError(event_id, previous.decision_id), pipeline, admitted.event)
        return decision, True

    def _decide_in(
        self,
        txn: StoreTransaction,
        admitted: Admitted,
        pipeline: Pipeline,
        lists: Mapping[str, frozenset[str]],
        *,
        decision_id: str,
        versions: Mapping[str, int],
        started: float,
        payee_side: Mapping[str, Any] | None,
        settle: Callable[[], None] | None,
    ) -> Decision:
        """Features, match, decision, audit record, then the history update, inside one transaction (an
        optimistic one settles first: nothing is recorded before what it read is known to hold)."""
        try:
            if self._publishes:
                lists, versions = self._with_published(txn, lists, versions)
            context, features = pipeline.compute(admitted, txn, payee_side)
            listed = txn.listed_version()  # read once: the decision records the version its match read
            indices = pipeline.match(context, features, self._with_listed(txn, lists, listed))
            snoozed = pipeline.snoozed(context) if indices else NO_RULES
            decision = pipeline.decide(
                decision_id,
                admitted.event,
                indices,
                features,
                snoozed,
                lists=versions,
                listed=listed,
            )
        except Exception as exc:
            if self.on_error == "raise":
                raise
            decision = pipeline.failed(decision_id, admitted.event, exc)
        if settle is not None:
            settle()
        if self.audit is not None:
            record = pipeline.record(decision, admitted, started)
            if self._behind is not None:
                record["ruleset_in_force"] = self._behind
            self.audit.write(record)
        if decision.error is None:
            pipeline.features.commit(context, decision.action, decision.decision_id)
        return decision

    def _with_published(
        self, txn: StoreTransaction, lists: Mapping[str, frozenset[str]], versions: Mapping[str, int]
    ) -> tuple[Mapping[str, frozenset[str]], Mapping[str, int]]:
        """``lists`` with the lists another process published in the store (``set_list``)."""
        epoch: int = txn.lists_epoch()  # type: ignore[attr-defined]
        if not epoch:
            return lists, versions
        self._published = found = with_published(self.store, epoch, lists, versions, self._published)
        return found[2], found[3]

    def _new_id(self) -> str:
        return self._prefix + str(next(self._ids)).zfill(12)

    def validate(self, event: Event | Mapping[str, Any]) -> Event:
        """``event`` validated against the rule set in force, as ``evaluate`` validates it.

        An invalid event is audited as rejected, then ``InvalidEventError`` raised.
        """
        return self._admit(event, self._state[0]).event

    def _admit(self, event: Event | Mapping[str, Any], pipeline: Pipeline) -> Admitted:
        try:
            admitted = pipeline.validate(event)
        except InvalidEventError as exc:
            self._refuse(exc, pipeline, None)
        ahead = self._ahead
        if ahead is not None and admitted.time > time.time() + ahead:
            self._refuse(self._too_far_ahead(admitted), pipeline, admitted.event)
        return admitted

    def _too_far_ahead(self, admitted: Admitted) -> InvalidEventError:
        early = timedelta(seconds=round(admitted.time - time.time()))
        message = (
            f"is {early} ahead of this machine's clock, more than max_future ({self._max_future}) allows"
        )
        return InvalidEventError([FieldError("timestamp", message, "in_the_future")], admitted.event.id)

    def _refuse(self, exc: InvalidEventError, pipeline: Pipeline, event: Event | None) -> NoReturn:
        """Audit the refusal of an event (``event``: a valid one, refused all the same), then raise."""
        if self.audit is not None:
            self.audit.write(
                rejected_record(self._new_id(), exc, pipeline.ref_json, pipeline.engine, event=event)
            )
        raise exc

    # -- history, lists, reloads ---------------------------------------------------------------------
    def record(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        side: Literal["both", "subject", "payee"] = "both",
    ) -> int:
        """Feed past events into the store without deciding or auditing them; returns how many.

        Outgoing payments count as executed. ``side`` ``"subject"`` writes only the subject account's
        history (the payee is not credited: subject-only mode), ``"payee"`` only the payee side of an
        executed transfer to another account (its payee credited; nothing else). Raises
        ``InvalidEventError`` at the first invalid event (the events before it are kept).
        """
        if side not in ("both", "subject", "payee"):
            raise PayguardError(f"side must be 'both', 'subject' or 'payee', not {side!r}")
        pipeline = self._state[0]
        batch: int = getattr(self.store, "record_batch", 1)
        if side == "both" and batch > 1 and self._open is not None:
            return record_batched(self._open, events, pipeline, batch)
        return record_each(self.store, events, pipeline, side)

    # -- the lifecycle of a stopped payment -----------------------------------------------------------
    def resolve(self, decision_id: str, outcome: str, *, note: str | None = None) -> Resolution:
        """Record how the bank resolved the ``hold`` or ``interrupt`` decision ``decision_id``.

        ``outcome`` is ``"legitimate"`` (verified with the customer: the payment counts as executed at its
        own time, and no longer as a stop), ``"fraud"`` (a confirmed scam: the payee joins the rule set's
        ``confirmed_fraud_list`` in the store) or ``"cancelled"`` (abandoned). Audited, in one store
        transaction. Resolving again with the same outcome returns the first resolution; with another, or
        resolving an ``allow``/``review`` decision, raises ``PayguardError``; an unknown decision id,
        ``UnknownDecisionError``.
        """
        chosen = outcome_of(outcome)
        check_note(note)
        pipeline = self._state[0]
        with self.store.transaction() as txn:
            stopped = txn.held(decision_id)
            if stopped is None:
                raise not_stopped(decision_id, txn.decision_by_id(decision_id))
            if stopped.get("resolution") is not None:
                return Resolution.from_dict(stopped["resolution"]).again(chosen)
            admitted = admit(stopped["event"])
            event = admitted.event
            resolution = Resolution(
                decision_id=decision_id,
                event_id=event.id,
                action=Action(stopped.get("action", "hold")),  # payguard 0.1 kept holds only
                outcome=chosen,
                resolved_at=datetime.now(UTC),
                note=note,
            )
            listed = (
                pipeline.ruleset.confirmed_fraud_list if chosen is Outcome.FRAUD and event.payee else None
            )
            if self.audit is not None:
                self.audit.write(resolution_record(resolution, event, pipeline.ref_json, listed=listed))
            if chosen is Outcome.LEGITIMATE:
                pipeline.features.execute_stopped(admitted, txn)
            elif listed is not None and event.payee is not None:
                txn.add_listed(listed, normalize_account(event.payee.account))
            txn.put_held(decision_id, {**stopped, "resolution": resolution.to_dict()})
        return resolution

    def release(self, decision_id: str) -> None:
        """Release a stopped payment: ``resolve(decision_id, "legitimate")``."""
        self.resolve(decision_id, Outcome.LEGITIMATE)

    def snooze(
        self, rule_id: str, *, payer: str, payee: str | None = None, until: datetime, reason: str
    ) -> None:
        """Keep rule ``rule_id`` from firing for ``payer`` (and only ``payee``, if given) for events before
        ``until`` (event time). Audited; kept in the store with the payer's history. Decisions list what a
        snooze suppressed in ``Decision.snoozed``. An unknown rule, or an interrupt that reads a list
        (which must never be snoozed), raises ``PayguardError``."""
        pipeline = self._state[0]
        pipeline.ruleset.check_snoozable(rule_id)
        check_snooze_terms(until, reason)
        key, payee_hash = self._snooze_keys(payer, payee)
        with self.store.transaction() as txn:
            history = txn.account(key)
            if self.audit is not None:
                self.audit.write(
                    snooze_record(
                        rule_id, payer, payee=payee, until=until, reason=reason, ruleset=pipeline.ref_json
                    )
                )
            history.snooze(
                rule_id, payee_hash, epoch_seconds(until, until.utcoffset() or timedelta(0)), reason
            )
            txn.save(key, history)

    def unsnooze(self, rule_id: str, *, payer: str, payee: str | None = None) -> bool:
        """End the snooze of ``rule_id`` for ``payer`` (and ``payee``) early; whether there was one."""
        pipeline = self._state[0]
        key, payee_hash = self._snooze_keys(payer, payee)
        with self.store.transaction() as txn:
            history = txn.account(key)
            if not any(s[0] == rule_id and s[1] == payee_hash for s in history.snoozes):
                return False
            if self.audit is not None:
                self.audit.write(
                    snooze_record(
                        rule_id, payer, payee=payee, until=None, reason=None, ruleset=pipeline.ref_json
                    )
                )
            history.unsnooze(rule_id, payee_hash)
            txn.save(key, history)
        return True

    @staticmethod
    def _snooze_keys(payer: str, payee: str | None) -> tuple[str, int]:
        """The payer's store key and the payee's hash (0: every payee)."""
        if not isinstance(payer, str) or not payer.strip():
            raise PayguardError(f"payer must be an account number, not {payer!r}")
        if payee is not None and (not isinstance(payee, str) or not payee.strip()):
            raise PayguardError(f"payee must be an account number or None, not {payee!r}")
        return party(payer)[0], 0 if payee is None else party(payee)[1]

    def _with_listed(
        self, txn: StoreTransaction, lists: Mapping[str, frozenset[str]], version: int
    ) -> Mapping[str, frozenset[str]]:
        """``lists`` with the accounts resolutions listed in the store (``version``: their version in
        ``txn``), read again only when they changed."""
        if not version:
            return lists
        base, seen, merged = self._listed
        if base is lists and seen == version:
            return merged
        added = txn.listed()
        merged = {
            name: entries | added[name] if name in added else entries for name, entries in lists.items()
        }
        self._listed = (lists, version, merged)
        return merged

    def set_list(self, name: str, entries: Iterable[str]) -> None:
        """Replace the named list ``name`` atomically; no decision sees half a list.

        The accounts resolutions confirmed as fraud stay listed: they live in the store, beside these.
        ``entries`` is a collection of strings: a lone string (whose characters would become the entries)
        or a non-string entry raises ``TypeError``, and the list in force stays as it was.
        """
        fresh = list_entries(name, entries)
        with self._swap_lock:
            pipeline, lists, versions = self._state
            if name not in lists:
                known = ", ".join(sorted(lists)) or "none"
                raise PayguardError(f"unknown list {name!r}: the rule set declares {known}")
            # a shared store: published to every process before this returns (StoreError if it cannot be)
            version = (
                self.store.publish_list(name, fresh)  # type: ignore[attr-defined]
                if self._publishes
                else versions.get(name, 0) + 1
            )
            self._state = (pipeline, {**lists, name: fresh}, {**versions, name: version})
            self._lists_set.add(name)

    def reload(self, path: str | Path) -> RulesetRef:
        """Swap in the rule set at ``path`` atomically. On any error the running rule set stays (on a
        shared store, also when its publication fails: ``StoreError``).

        On a store shared by processes (``RedisStore``) the new rule set's digest and path are published:
        every other guard loads it after its next decision, or, if it cannot (no such files on its host,
        other files there), keeps its own and says so in each audit record (``ruleset_in_force``) and the
        ``payguard`` log."""
        pipeline = Pipeline(load_rule_set(path), self._engine_choice)
        if self._publishes:  # published first: a store that fails leaves every process on the rules in force
            digest = pipeline.ref.digest
            self.store.publish_ruleset(digest, str(Path(path).resolve()))  # type: ignore[attr-defined]
            self._following, self._behind = digest, None
        return self._swap(pipeline)

    def _follow(self, published: tuple[str, str]) -> None:
        """Another process reloaded: load the rule set it published, or keep this one and say so."""
        digest_in_force, path = published
        with self._swap_lock:
            if self._following == digest_in_force:
                return  # followed already, or tried and said so
            self._following = digest_in_force
        try:
            self._swap(Pipeline(load_published(published, self.ruleset.digest), self._engine_choice))
            self._behind = None
        except Exception as exc:  # noqa: BLE001 (any failure: keep deciding with the rules in force)
            self._behind = {"digest": digest_in_force, "path": path, "error": f"{type(exc).__name__}: {exc}"}
            _LOG.warning(
                "payguard: another process reloaded rule set %s from %s; this one keeps deciding with %s: %s",
                digest_in_force[:12],
                path,
                self.ruleset.digest[:12],
                self._behind["error"],
            )

    def _swap(self, pipeline: Pipeline) -> RulesetRef:
        ruleset = pipeline.ruleset
        with self._swap_lock:
            current, versions = self._state[1], self._state[2]
            lists = dict(ruleset.lists)
            kept = {}
            for name in self._lists_set & set(lists):
                lists[name] = current[name]  # lists set at run time outlive a reload
                kept[name] = versions[name]
            self._state = (pipeline, lists, kept)
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
