"""The store contract: what a guard needs from wherever histories and decisions live.

A guard opens one ``Store.transaction()`` per event (and per ``record``ed event and ``release``) and does
everything that event reads and writes inside it. An implementation guarantees, for every transaction:

- **Atomic.** Its writes (``save``, ``put_decision``, ``put_held``) take effect together when the block
  exits normally, and none of them when it exits with an exception, which propagates unchanged. A
  transaction reads its own writes.
- **Isolated.** Two transactions that touch the same account never interleave their read-modify-write:
  each sees all or nothing of the other, whichever threads, store objects or processes they run in (as far
  as the store is shared at all: a ``MemoryStore`` is one process's). Features stay exact under
  concurrency only because of this.
- **Idempotency record.** The decision stored for an event id (``put_decision``) is returned by
  ``decision`` in every later transaction: a guard answers a repeated event id with it and counts the
  event once. A store may forget old decisions (``MemoryStore`` keeps the last ``max_decisions``).
- **Held payments.** A held record (``put_held``) stays until it is forgotten (``put_held(id, None)``),
  so that a hold can be released later, in another transaction (or process, for a shared store).

A store may hand out its own history objects rather than copies (``MemoryStore`` does, so that a decision
costs no copy): a caller changes a history in place only once nothing but the commit can fail, and saves it.
The guard does: it computes, decides and writes the audit record before it changes any history.

These are protocols: a store may subclass them (``SQLiteStore`` does) or just have their methods
(``MemoryStore``, a compiled class, cannot subclass a Python class; it is also registered as theirs).
``tests/stores/test_contract.py`` checks every store against this contract.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from .._decision import Decision
from .history import AccountHistory

__all__ = ["Store", "StoreTransaction"]


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
    def put_decision(self, event_id: str, decision: Decision) -> None:
        """Store the decision made for ``event_id`` (the idempotency record)."""

    @abstractmethod
    def held(self, decision_id: str) -> dict[str, Any] | None:
        """The record ``put_held`` stored for the held payment of ``decision_id``, or None."""

    @abstractmethod
    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        """Remember a held payment (``record`` is JSON: what releasing it needs), or with None forget it."""


@runtime_checkable
class Store(Protocol):
    """Where histories and decisions live: atomic, isolated transactions (see the module docstring)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A new transaction, as a context manager: leaving the block commits it, or rolls it back if the
        block raised."""

    def close(self) -> None:
        """Release resources. The default does nothing."""
