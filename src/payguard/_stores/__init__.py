"""Where histories and decisions live: the store contract (``interface``) and the stores."""

from __future__ import annotations

from .interface import Store, StoreTransaction
from .memory import MemoryStore, _MemoryTransaction

# A compiled class cannot subclass the protocols; registered, it passes isinstance without a structural check.
Store.register(MemoryStore)
StoreTransaction.register(_MemoryTransaction)
