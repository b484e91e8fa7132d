"""The default store: histories and decisions in dictionaries of this process.

It meets the ``Store`` protocol of ``interface`` (and is registered there as one) and is compiled with the
other per-event modules, since every decision goes through it. Python subclasses remain possible
(``allow_interpreted_subclasses``).

Memory stays bounded however many accounts pass: an account is forgotten once none of its events is newer
than ``history.HORIZON`` (nothing the features read can see it any more), and ``max_accounts`` bounds how
many are kept at all, forgetting the least recently seen first. The store's clock for the horizon is the
median event time of the last commits, so that one event dated far ahead cannot make it forget anyone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._decision import Decision
from .history import HORIZON, AccountHistory

__all__ = ["MemoryStore"]

# the commits whose latest event times give the store's clock (their median), and how often it is read
_CLOCK_SAMPLE: Final = 101
_CLOCK_EVERY: Final = 64
# accounts checked for forgetting per commit: more than a commit can create (two), so a backlog drains
_FORGET_PER_COMMIT: Final = 4


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
        if self._accounts:
            store.accounts.update(self._accounts)
            store.seen(self._accounts)
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
    idempotency, stopped payments with their resolutions, and the accounts resolutions listed. An account is
    forgotten once it has had no event for ``horizon`` seconds of event time (default ``history.HORIZON``,
    past every window the features read; ``None``: never), and at most ``max_accounts`` are kept (``None``:
    no bound), the least recently seen forgotten first; a forgotten account starts again as a new one (its
    payees new).
    """

    def __init__(
        self, max_decisions: int = 100_000, max_accounts: int | None = None, horizon: int | None = HORIZON
    ) -> None:
        if max_accounts is not None and max_accounts < 1:
            raise ValueError("max_accounts must be at least 1 (or None)")
        self.accounts: dict[str, AccountHistory] = {}
        # the accounts' keys, least recently seen first (``seen``)
        self.recency: OrderedDict[str, None] = OrderedDict()
        self.max_accounts = max_accounts
        self.horizon = horizon
        self.forgotten = 0  # accounts forgotten past the horizon
        self.evicted = 0  # accounts forgotten for ``max_accounts``
        self._times: list[int] = []  # the latest event time of each of the last commits (a ring)
        self._commits = 0
        self._clock = 0
        self.decisions: OrderedDict[str, Decision] = OrderedDict()
        self.decision_ids: dict[str, str] = {}  # decision id -> event id, for the decisions kept
        self.digests: dict[str, bytes] = {}  # event id -> its event's digest, for the decisions kept
        self.holds: dict[str, dict[str, Any]] = {}
        self.listed: dict[str, set[str]] = {}
        self.listed_version = 0
        self.max_decisions = max_decisions
        self._lock = threading.RLock()

    @property
    def keeps_decisions(self) -> bool:
        return self.max_decisions > 0

    def transaction(self) -> _MemoryTransaction:
        return _MemoryTransaction(self)

    def seen(self, saved: dict[str, AccountHistory]) -> None:
        """A commit saved ``saved``: they become the most recently seen, and old accounts are forgotten."""
        recency = self.recency
        # the commit's time: the earliest clock of its accounts (an account once seen far ahead would
        # otherwise carry that time into every later commit that touches it)
        latest = -1
        for key, history in saved.items():
            recency[key] = None
            recency.move_to_end(key)
            latest = history.seen if latest < 0 else min(latest, history.seen)
        times = self._times
        if len(times) < _CLOCK_SAMPLE:
            times.append(latest)
        else:
            times[self._commits % _CLOCK_SAMPLE] = latest
        self._commits += 1
        accounts = self.accounts
        limit = self.max_accounts
        if limit is not None:
            while len(accounts) > limit and recency:
                accounts.pop(recency.popitem(last=False)[0], None)
                self.evicted += 1
        if self.horizon is None:
            return
        if self._commits % _CLOCK_EVERY == 1:
            self._clock = sorted(times)[len(times) // 2]
        clock = self._clock
        oldest = clock - self.horizon
        for _ in range(_FORGET_PER_COMMIT):
            if not recency:
                return
            key = next(iter(recency))
            found = accounts.get(key)
            if found is None:
                del recency[key]
            elif found.forgettable(oldest, clock):
                del accounts[key]
                del recency[key]
                self.forgotten += 1
            elif found.seen < oldest:
                recency.move_to_end(key)  # a snooze still runs: kept, and looked at again later
            else:
                return  # the least recently seen is still within the horizon

    def close(self) -> None:
        """Nothing to release."""
