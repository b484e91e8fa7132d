"""_stores.interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .._decision import Decision
from .history import AccountHistory

__all__ = ["Store", "StoreTransaction"]


class StoreTransaction(ABC):
    """The reads and writes of one event. Changes become visible to others on commit only."""

    @abstractmethod
    def account(self, key: str) -> AccountHistory:
        """The history of account ``key`` (a new, empty one if unknown). Mutate it, then ``save`` it."""

    @abstractmethod
    def save(self, key: str, history: AccountHistory) -> None:
        """Keep the changes made to ``history``."""

    @abstractmethod
    def decision(self, event_id: str) -> Decision | None:
        """The decision already made for ``event_id``."""

    @abstractmethod
    def put_decision(self, event_id: str, decision: Decision) -> None:
        """Remember the decision made for ``event_id``."""

    @abstractmethod
    def held(self, decision_id: str) -> dict[str, Any] | None:
        """What is needed to release the held payment of ``decision_id``."""

    @abstractmethod
    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        """Remember (or, with ``None``, forget) a held payment."""


class Store(ABC):
    """Where histories and decisions live. Implementations must make ``transaction`` atomic."""

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager yielding a ``StoreTransaction``; commits on success, rolls back on error."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources. The default does nothing."""
