"""_stores."""

from __future__ import annotations

from .interface import Store, StoreTransaction
from .memory import MemoryStore, _MemoryTransaction

# The in-memory store lives in ``_memory`` (compiled with the other per-event modules); it implements
# these interfaces and is registered as theirs.
Store.register(MemoryStore)
StoreTransaction.register(_MemoryTransaction)
