"""The default store: histories and decisions in dictionaries of this process.

It meets the ``Store`` protocol of ``interface`` (and is registered there as one) and is compiled with the
other per-event modules, since every decision goes through it. Python subclasses remain possible
(``allow_interpreted_subclasses``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from mypy_extensions import mypyc_attr

from .._decision import Decision
from .history import AccountHistory

__all__ = ["MemoryStore"]


@mypyc_attr(allow_interpreted_subclasses=True)
class _MemoryTransaction:
    """Holds the store's lock from ``__enter__`` to ``__exit__`` (isolation), and commits only on success."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._accounts: dict[str, AccountHistory] = {}
        self._decisions: dict[str, Decision] = {}
        self._digests: dict[str, bytes] = {}
        self._held: dict[str, dict[str, Any] | None] = {}
        self._listed: list[tuple[str, str]] = []

    def __enter__(self) -> _MemoryTransaction:
        self._store._lock.acquire()
        return self

    def __exit__(self, kind: object, _value: object, _traceback: object) -> None:
        try:
            if kind is None:
                self.commit()
        finally:
            self._store._lock.release()

    def account(self, key: str) -> AccountHistory:
        # Not a copy: the guard changes a history only once nothing but the commit can fail (see Store).
        found = self._store.accounts.get(key) or self._accounts.get(key)
        if found is None:
            found = self._accounts[key] = AccountHistory()
        return found

    def save(self, key: str, history: AccountHistory) -> None:
        self._accounts[key] = history

    def decision(self, event_id: str) -> Decision | None:
        return self._decisions.get(event_id) or self._store.decisions.get(event_id)

    def event_digest(self, event_id: str) -> bytes | None:
        return self._digests.get(event_id) or self._store.digests.get(event_id)

    def put_decision(self, event_id: str, decision: Decision, digest: bytes) -> None:
        self._decisions[event_id] = decision
        self._digests[event_id] = digest

    def decision_by_id(self, decision_id: str) -> Decision | None:
        for decision in self._decisions.values():
            if decision.decision_id == decision_id:
                return decision
        event_id = self._store.decision_ids.get(decision_id)
        return None if event_id is None else self._store.decisions.get(event_id)

    def listed_version(self) -> int:
        return self._store.listed_version + len(self._listed)

    def listed(self) -> dict[str, frozenset[str]]:
        found = {name: set(entries) for name, entries in self._store.listed.items()}
        for name, entry in self._listed:
            found.setdefault(name, set()).add(entry)
        return {name: frozenset(entries) for name, entries in found.items()}

    def add_listed(self, name: str, entry: str) -> None:
        self._listed.append((name, entry))

    def held(self, decision_id: str) -> dict[str, Any] | None:
        if decision_id in self._held:
            return self._held[decision_id]
        return self._store.holds.get(decision_id)

    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        self._held[decision_id] = record

    def commit(self) -> None:
        store = self._store
        store.accounts.update(self._accounts)
        for event_id, decision in self._decisions.items():
            store.decisions[event_id] = decision
            store.decision_ids[decision.decision_id] = event_id
            store.digests[event_id] = self._digests[event_id]
            if len(store.decisions) > store.max_decisions:
                forgotten, old = store.decisions.popitem(last=False)
                store.decision_ids.pop(old.decision_id, None)
                store.digests.pop(forgotten, None)
        for name, entry in self._listed:
            store.listed.setdefault(name, set()).add(entry)
            store.listed_version += 1
        for decision_id, record in self._held.items():
            if record is None:
                store.holds.pop(decision_id, None)
            else:
                store.holds[decision_id] = record


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryStore:
    """The default store: dictionaries in this process, lost when it exits.

    Remembers the decisions of the last ``max_decisions`` event ids, with their events' digests, for
    idempotency, stopped payments with their resolutions, and the accounts resolutions listed.
    """

    def __init__(self, max_decisions: int = 100_000) -> None:
        self.accounts: dict[str, AccountHistory] = {}
        self.decisions: OrderedDict[str, Decision] = OrderedDict()
        self.decision_ids: dict[str, str] = {}  # decision id -> event id, for the decisions kept
        self.digests: dict[str, bytes] = {}  # event id -> its event's digest, for the decisions kept
        self.holds: dict[str, dict[str, Any]] = {}
        self.listed: dict[str, set[str]] = {}
        self.listed_version = 0
        self.max_decisions = max_decisions
        self._lock = threading.RLock()

    def transaction(self) -> _MemoryTransaction:
        return _MemoryTransaction(self)

    def close(self) -> None:
        """Nothing to release."""
