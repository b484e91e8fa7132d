"""What only the in-memory store has to do: forget in step what it keeps for an event id."""

from __future__ import annotations

from payguard import MemoryStore

from .test_contract import a_decision


def test_a_memory_store_forgets_the_digest_with_the_decision() -> None:
    store = MemoryStore(max_decisions=2)
    for n in range(3):
        with store.transaction() as txn:
            txn.put_decision(f"e{n}", a_decision(f"e{n}"), bytes([n]) * 16)
    assert sorted(store.digests) == sorted(store.decisions) == ["e1", "e2"]
