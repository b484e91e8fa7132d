"""The in-memory store stays bounded: it forgets accounts nothing can see any more, and can be capped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, MemoryStore
from payguard._stores.history import HORIZON

from ..conftest import make_event
from .test_contract import a_decision

WriteRules = Callable[..., Path]
START = datetime(2026, 1, 1, tzinfo=UTC)
EVERY_FEATURE = """
rules:
  - id: anything
    description: reads the payee features and the longest windows
    when:
      any:
        - {is_new_payee: true}
        - {payee_payment_count: {gte: 3}}
        - {max_amount_365d: {gte: 1}}
        - {recent_stops_30d: {gte: 1}}
        - {amount_to_p95_90d: {gte: 2}}
    action: review
    reason: r
"""


def pay(guard: Guard, n: int, payer: str, payee: str, when: datetime, amount: str = "10") -> dict[str, Any]:
    event = make_event(
        id=f"e{n}",
        timestamp=when.isoformat(),
        amount=amount,
        payer={"account": payer},
        payee={"account": payee, "type": "personal"},
    )
    return guard.evaluate(event).features


def test_an_account_idle_past_the_horizon_is_forgotten_and_an_active_one_kept(
    write_rules: WriteRules,
) -> None:
    store = MemoryStore()
    guard = Guard.from_path(write_rules(EVERY_FEATURE), store=store, max_future=None)
    pay(guard, 0, "IDLE", "SHOP", START)
    pay(guard, 1, "ACTIVE", "RENT", START)
    later = START + timedelta(seconds=HORIZON + 60)
    pay(guard, 2, "ACTIVE", "RENT", START + timedelta(days=300))
    for n in range(3, 200):  # other customers' traffic moves the store's clock past the horizon
        pay(guard, n, f"C{n}", "RENT", later + timedelta(seconds=n))
    assert "idle" not in store.accounts
    assert "shop" not in store.accounts
    assert "active" in store.accounts
    assert store.forgotten >= 2
    features = pay(guard, 999, "ACTIVE", "RENT", later + timedelta(seconds=300))
    assert (features["is_new_payee"], features["payee_payment_count"]) == (False, 2)


def test_features_of_accounts_active_within_the_horizon_are_those_of_a_store_that_never_forgets(
    write_rules: WriteRules,
) -> None:
    path = write_rules(EVERY_FEATURE)
    forgetting = Guard.from_path(path, store=MemoryStore(), max_future=None)
    remembering = Guard.from_path(path, store=MemoryStore(horizon=None), max_future=None)
    n = 0
    for day in range(0, 3 * 365, 20):  # five regulars pay every 20 days for three years...
        when = START + timedelta(days=day)
        for i in range(5):
            payer, payee, amount = f"R{i}", f"P{(day // 20 + i) % 7}", str(10 + day % 90)
            kept = pay(forgetting, n, payer, payee, when, amount)
            assert kept == pay(remembering, n, payer, payee, when, amount)
            n += 1
        for guard in (forgetting, remembering):  # ...while one-off customers come and go
            pay(guard, n, f"ONCE{day}", f"SHOP{day}", when)
        n += 1
    assert isinstance(forgetting.store, MemoryStore)
    assert isinstance(remembering.store, MemoryStore)
    assert forgetting.store.forgotten > 0
    assert len(forgetting.store.accounts) < len(remembering.store.accounts)


def test_a_running_snooze_keeps_an_idle_account(write_rules: WriteRules) -> None:
    store = MemoryStore()
    guard = Guard.from_path(write_rules(EVERY_FEATURE), store=store, max_future=None)
    pay(guard, 0, "SNOOZED", "SHOP", START)
    guard.snooze("anything", payer="SNOOZED", until=START + timedelta(days=800), reason="known pattern")
    later = START + timedelta(seconds=HORIZON + 60)
    for n in range(1, 200):
        pay(guard, n, f"C{n}", "RENT", later + timedelta(seconds=n))
    assert "snoozed" in store.accounts


def test_one_event_dated_far_ahead_does_not_make_the_store_forget(write_rules: WriteRules) -> None:
    store = MemoryStore()
    guard = Guard.from_path(write_rules(EVERY_FEATURE), store=store, max_future=None)
    for n in range(100):
        pay(guard, n, f"C{n}", "RENT", START + timedelta(minutes=n))
    pay(guard, 100, "FUTURE", "RENT", START + timedelta(days=3 * 365))
    for n in range(101, 200):
        pay(guard, n, f"C{n}", "RENT", START + timedelta(minutes=n))
    assert store.forgotten == 0
    assert all(f"c{n}" in store.accounts for n in range(200) if n != 100)


def test_max_accounts_forgets_the_least_recently_seen_first(write_rules: WriteRules) -> None:
    store = MemoryStore(max_accounts=4)
    guard = Guard.from_path(write_rules(EVERY_FEATURE), store=store, max_future=None)
    pay(guard, 0, "A", "B", START)
    pay(guard, 1, "C", "D", START + timedelta(minutes=1))
    pay(guard, 2, "A", "B", START + timedelta(minutes=2))  # A and B seen again: C and D are the oldest now
    pay(guard, 3, "E", "F", START + timedelta(minutes=3))
    assert set(store.accounts) == {"a", "b", "e", "f"}
    assert store.evicted == 2
    assert pay(guard, 4, "A", "B", START + timedelta(minutes=4))["payee_payment_count"] == 2
    assert pay(guard, 5, "C", "D", START + timedelta(minutes=5))["is_new_payee"] is True  # forgotten: new


def test_max_accounts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_accounts"):
        MemoryStore(max_accounts=0)


def test_a_memory_store_forgets_the_digest_with_the_decision() -> None:
    store = MemoryStore(max_decisions=2)
    for n in range(3):
        with store.transaction() as txn:
            txn.put_decision(f"e{n}", a_decision(f"e{n}"), bytes([n]) * 16)
    assert sorted(store.digests) == sorted(store.decisions) == ["e1", "e2"]
