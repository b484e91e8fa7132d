"""The store contract: what a guard needs from wherever histories and decisions live.

A guard opens one ``Store.transaction()`` per event (and per ``record``ed event, resolution and snooze)
and does everything that event reads and writes inside it. An implementation guarantees, for every
transaction:

- **Atomic.** Its writes (``save``, ``put_decision``, ``put_held``) take effect together when the block
  exits normally, and none of them when it exits with an exception, which propagates unchanged. A
  transaction reads its own writes.
- **Isolated.** Two transactions that touch the same account never interleave their read-modify-write:
  each sees all or nothing of the other, whichever threads, store objects or processes they run in (as far
  as the store is shared at all: a ``MemoryStore`` is one process's). Features stay exact under
  concurrency only because of this.
- **Idempotency record.** The decision stored for an event id (``put_decision``) is returned by
  ``decision`` in every later transaction, and by ``decision_by_id`` under its decision id, and the
  digest of the event stored with it by ``event_digest``: a guard answers a repeated event id with the
  same digest with that decision and counts the event once, and refuses one with another digest
  (``DuplicateEventError``). A store may forget old decisions, each with its digest (``MemoryStore``
  keeps the last ``max_decisions``).
- **Stopped payments.** The record of a held or interrupted payment (``put_held``) stays until it is
  forgotten (``put_held(id, None)``), so that the stop can be resolved later, in another transaction (or
  process, for a shared store); its resolution is written into the same record.
- **Listed accounts.** Entries added to a named list (``add_listed``: a payee resolved as fraud) are kept
  for good and returned by ``listed`` in every later transaction; ``listed_version`` changes whenever
  an entry was added, so that a guard reads the entries again only then.

A store may hand out its own history objects rather than copies (``MemoryStore`` does, so that a decision
costs no copy): a caller changes a history in place only once nothing but the commit can fail, and saves it.
The guard does: it computes, decides and writes the audit record before it changes any history.

A network store may also offer ``transaction_for(accounts, *, event_id=None)``: a transaction told up front
which accounts (store keys) and which event id it will touch, so that it can lease and read them all in one
round trip (``RedisStore``); it still reaches any other key, as ``transaction()`` does. The guard uses it
where a store has it, and ``publish_list``/``published_lists`` (lists set at run time, shared by every
process; each transaction's ``lists_epoch()`` says when to read them again) and ``record_batch`` (events a
transaction in ``Guard.record``) likewise.

A store whose transactions serialise whole events across processes (``SQLiteStore``: one write lock for
the file) may also offer ``optimistic()``: a transaction that reads without the lock, so that several
processes compute their events at once; its ``settle()``, called before anything is written or
acted on, takes the lock and raises ``StaleReadError`` if a row it read has changed since. The guard then
decides the event again in a ``transaction()``, and what it returns is what a locked transaction would have
decided.

These are protocols: a store may subclass them (``SQLiteStore`` does) or just have their methods
(``MemoryStore``, a compiled class, cannot subclass a Python class; it is also registered as theirs).
``tests/stores/test_contract.py`` checks every store against this contract.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from .._decision import Decision
from .._errors import StoreError
from .history import AccountHistory

__all__ = ["StaleReadError", "Store", "StoreTransaction"]


class StaleReadError(StoreError):
    """An optimistic transaction's ``settle()`` found a row it read changed by another connection: what
    was computed from it no longer holds, and nothing was written. Not an error to report: the caller
    computes again."""


@runtime_checkable
class StoreTransaction(Protocol):
    """The reads and writes of one event. Others see its writes when it commits, and not before."""

    @abstractmethod
    def account(self, key: str) -> AccountHistory:
        """The history of account ``key`` (a new, empty one if unknown), the same object on every call in
        this transaction: change it, then ``save`` it."""

    @abstractmethod
    def save(self, key: str, history: AccountHistory) -> None:
        """Make ``history`` (the one ``account`` returned, or a new one) the history of ``key`` on commit."""

    @abstractmethod
    def decision(self, event_id: str) -> Decision | None:
        """The decision stored for ``event_id``, or None."""

    @abstractmethod
    def event_digest(self, event_id: str) -> bytes | None:
        """The digest stored with the decision for ``event_id``; None if there is no decision, or if an
        earlier payguard stored it without one."""

    @abstractmethod
    def put_decision(self, event_id: str, decision: Decision, digest: bytes) -> None:
        """Store the decision made for ``event_id`` and the digest of its event (the idempotency
        record)."""

    @abstractmethod
    def decision_by_id(self, decision_id: str) -> Decision | None:
        """The decision stored (``put_decision``) with this decision id, or None."""

    @abstractmethod
    def held(self, decision_id: str) -> dict[str, Any] | None:
        """The record ``put_held`` stored for the stopped payment of ``decision_id``, or None."""

    @abstractmethod
    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        """Remember a stopped payment (``record`` is JSON: what resolving it needs); None forgets it."""

    @abstractmethod
    def listed_version(self) -> int:
        """A number that changes whenever ``add_listed`` committed (0: nothing was ever listed)."""

    @abstractmethod
    def listed(self) -> dict[str, frozenset[str]]:
        """Every entry ``add_listed`` added, by list name."""

    @abstractmethod
    def add_listed(self, name: str, entry: str) -> None:
        """Add ``entry`` (a normalised account number) to the named list ``name``, for good."""


@runtime_checkable
class Store(Protocol):
    """Where histories and decisions live: atomic, isolated transactions (see the module docstring)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A new transaction, as a context manager: leaving the block commits it, or rolls it back if the
        block raised."""

    @property
    def keeps_decisions(self) -> bool:
        """Whether the store remembers decisions (and their events' digests) to find repeated event ids."""
        return True

    def close(self) -> None:
        """Release resources. The default does nothing."""
