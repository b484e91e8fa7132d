"""The store contract (``payguard._stores.interface``), checked against every store.

Adding a store: one entry in ``STORES``; every test here then runs against it unchanged. Tests that need a
second store over the same data (a restart, another process) run only for stores that have one (``shared``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payguard import (
    Action,
    AuditError,
    Decision,
    DuplicateEventError,
    Guard,
    InvalidEventError,
    MemoryStore,
    PayguardError,
    RedisStore,
    RuleSet,
    RulesetRef,
    SQLiteStore,
    Store,
    UnknownDecisionError,
    load_rule_set,
)
from payguard._stores.history import INBOUND_WIDTH, OUT_WIDTH, AccountHistory
from payguard._stores.interface import StoreTransaction

from ..conftest import make_event, rules_text


@dataclass(frozen=True)
class Backend:
    """How the tests open one kind of store."""

    open: Callable[[], Store]
    # whether a second ``open()`` reaches the data of the first, as after a restart or from another process
    shared: bool


def memory(request: pytest.FixtureRequest) -> Backend:
    return Backend(MemoryStore, shared=False)


def sqlite(request: pytest.FixtureRequest) -> Backend:
    path = request.getfixturevalue("tmp_path") / "payguard.db"
    return Backend(lambda: SQLiteStore(path), shared=True)


def redis(request: pytest.FixtureRequest) -> Backend:
    url = request.getfixturevalue("redis_server").url
    prefix = request.getfixturevalue("redis_prefix")
    return Backend(lambda: RedisStore(url, prefix=prefix), shared=True)


def redis_scripts(request: pytest.FixtureRequest) -> Backend:
    """Redis as a server without Functions has it (Redis 6.2, services that forbid FUNCTION): EVALSHA."""
    url = request.getfixturevalue("redis_server").url
    prefix = request.getfixturevalue("redis_prefix")
    return Backend(lambda: RedisStore(url, prefix=prefix, functions=False), shared=True)


def redis_6_2(request: pytest.FixtureRequest) -> Backend:
    """A real Redis 6.2, which has no Functions: the store finds that out itself and runs its scripts."""
    url = request.getfixturevalue("redis_6_2_server").url
    prefix = request.getfixturevalue("redis_prefix")
    return Backend(lambda: RedisStore(url, prefix=prefix), shared=True)


STORES = [
    pytest.param(memory, id="memory"),
    pytest.param(sqlite, id="sqlite"),
    pytest.param(redis, id="redis"),
    pytest.param(redis_scripts, id="redis-scripts"),
    pytest.param(redis_6_2, id="redis-6.2"),
]


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest) -> Backend:
    opener: Callable[[pytest.FixtureRequest], Backend] = request.param
    return opener(request)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


def needs_shared(backend: Backend) -> None:
    if not backend.shared:
        pytest.skip("this store keeps its data in one object: there is no second store over the same data")


# -- a guard over the store ---------------------------------------------------------------------------------
# digits only: account numbers that are their own store keys
PAYER = "6222000011112222"
PAYEE = "6222000033334444"
NEW_PAYEE = "6222000055556666"  # paid nothing before: a large payment to it is held
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

RULES = """
rules:
  - id: big_to_new
    description: hold large payments to new payees
    when: {is_new_payee: true, amount: {gte: 10000}}
    action: hold
    reason: a large payment to a new payee
  - id: observe
    description: reads the features the tests look at
    mode: shadow
    when:
      any:
        - {outbound_count_24h: {exists: true}}
        - {out_sum_24h: {exists: true}}
        - {payee_payment_count: {exists: true}}
    action: review
    reason: observed
"""


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(rules_text(RULES), encoding="utf-8")
    return load_rule_set(path)


@pytest.fixture
def guard(ruleset: RuleSet, store: Store) -> Guard:
    return Guard(ruleset, engine="python", store=store, on_error="raise")


def payment(event_id: str, seconds: float, amount: str = "100.00", payee: str = PAYEE) -> dict[str, Any]:
    """A transfer from PAYER, ``seconds`` after START."""
    timestamp = (START + timedelta(seconds=seconds)).isoformat()
    return make_event(
        id=event_id, timestamp=timestamp, amount=amount, payer={"account": PAYER}, payee={"account": payee}
    )


def history(store: Store, account: str) -> AccountHistory:
    with store.transaction() as txn:
        return txn.account(account)


def in_threads(count: int, work: Callable[[int], Any], timeout: float = 60) -> list[Any]:
    """``work(0)`` ... ``work(count - 1)`` on ``count`` threads released together; their results.

    A thread still running after ``timeout`` seconds fails the test (a store that never lets a transaction
    in would otherwise hang the suite).
    """
    start = threading.Barrier(count)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(timeout)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"threads still running after {timeout} s"
    if errors:
        raise errors[0]
    return [results[index] for index in range(count)]


def yield_the_cpu(*_: object) -> None:
    """What an audit write does mid-event: let other threads run, so that unserialised events interleave."""
    time.sleep(0)


def a_decision(event_id: str) -> Decision:
    return Decision(
        decision_id=f"d-{event_id}",
        event_id=event_id,
        action=Action.ALLOW,
        hits=(),
        shadow_hits=(),
        ruleset=RulesetRef("test", "1", "0" * 64),
        engine="python",
        evaluated_at=START,
        event_time=START,
        features={"outbound_count_24h": 1},
    )


HELD = {"event": payment("e-held", 0, amount="50000.00")}
DIGEST, OTHER_DIGEST = bytes(range(16)), bytes(range(1, 17))


class EventError(Exception):
    """Something went wrong in the middle of an event."""


# -- the interface ------------------------------------------------------------------------------------------
def test_a_store_is_a_store_and_its_transactions_are_store_transactions(store: Store) -> None:
    assert isinstance(store, Store)
    with store.transaction() as txn:
        assert isinstance(txn, StoreTransaction)


# -- atomic: all or nothing ---------------------------------------------------------------------------------
def test_a_transaction_reads_its_own_writes_and_the_next_one_reads_them_once_it_committed(
    store: Store,
) -> None:
    decision = a_decision("e1")
    with store.transaction() as txn:
        written = txn.account(PAYER)
        assert written == AccountHistory(), "an unknown account has an empty history"
        written.add_attempt(1_000, 10_000, 7, True, None, True, False)
        txn.save(PAYER, written)
        txn.put_decision("e1", decision, DIGEST)
        txn.put_held("d1", HELD)
        assert txn.account(PAYER) is written
        assert (txn.decision("e1"), txn.event_digest("e1"), txn.held("d1")) == (decision, DIGEST, HELD)
    with store.transaction() as txn:
        assert txn.account(PAYER).to_json() == written.to_json()
        assert (txn.decision("e1"), txn.event_digest("e1"), txn.held("d1")) == (decision, DIGEST, HELD)


def test_an_exception_inside_a_transaction_leaves_no_trace_of_its_writes(store: Store) -> None:
    with store.transaction() as txn:
        known = txn.account(PAYER)
        known.add_attempt(1_000, 10_000, 7, True, None, True, False)
        txn.save(PAYER, known)
        txn.put_decision("e1", a_decision("e1"), DIGEST)
        txn.put_held("d1", HELD)
    before = known.to_json()

    failure = EventError("the event failed after it wrote")

    def failing_event() -> None:
        with store.transaction() as txn:
            # a new object, not the stored one changed in place: a store may hand out its own (see Store)
            replaced = AccountHistory()
            replaced.add_attempt(2_000, 99_999, 8, True, None, True, False)
            txn.save(PAYER, replaced)
            credited = txn.account(PAYEE)
            credited.add_inbound(2_000, 99_999, 9)
            txn.save(PAYEE, credited)
            txn.put_decision("e2", a_decision("e2"), OTHER_DIGEST)
            txn.put_held("d2", HELD)
            txn.put_held("d1", None)
            raise failure

    with pytest.raises(EventError) as raised:
        failing_event()
    assert raised.value is failure, "the exception propagates unchanged"

    with store.transaction() as txn:
        assert txn.account(PAYER).to_json() == before
        assert txn.account(PAYEE) == AccountHistory()
        assert (txn.decision("e1"), txn.decision("e2")) == (a_decision("e1"), None)
        assert (txn.event_digest("e1"), txn.event_digest("e2")) == (DIGEST, None)
        assert (txn.held("d1"), txn.held("d2")) == (HELD, None)


def test_a_failed_transaction_lets_the_next_one_in_from_another_thread(store: Store) -> None:
    with pytest.raises(EventError), store.transaction():
        raise EventError
    entered = threading.Event()

    def another_event() -> None:
        with store.transaction():
            entered.set()

    threading.Thread(target=another_event, daemon=True).start()
    assert entered.wait(timeout=10), "the failed transaction still holds the store"


@dataclass
class Sink:
    """An audit sink that can be down; it remembers the records it was handed."""

    down: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.down:
            raise OSError("the audit sink is down")


def test_an_event_whose_audit_record_is_not_written_leaves_the_store_as_it_was(
    ruleset: RuleSet, store: Store
) -> None:
    sink = Sink()
    guard = Guard(ruleset, engine="python", store=store, audit=sink, on_error="raise")
    guard.evaluate(payment("e1", 0))
    before = history(store, PAYER).to_json(), history(store, PAYEE).to_json()

    sink.down = True
    big = payment("e2", 60, amount="50000.00", payee=NEW_PAYEE)  # would be held
    with pytest.raises(AuditError):
        guard.evaluate(big)
    lost = sink.records[-1]["decision_id"]

    assert (history(store, PAYER).to_json(), history(store, PAYEE).to_json()) == before
    with store.transaction() as txn:
        assert txn.decision("e2") is None
        assert txn.held(lost) is None
    sink.down = False
    decision, fresh = guard.evaluate_fresh(big)
    assert (decision.action, fresh) == (Action.HOLD, True), "decided afresh, as if it had never come"
    assert decision.features["outbound_count_24h"] == 2


# -- isolated: concurrent events on one account never interleave ---------------------------------------------
def test_payments_from_one_payer_on_8_threads_are_each_counted_exactly_once(
    ruleset: RuleSet, store: Store
) -> None:
    guard = Guard(ruleset, engine="python", store=store, audit=yield_the_cpu, on_error="raise")
    payees = [f"62220000888800{n:02}" for n in range(4)]
    per_thread = 25

    def pay_from_one_thread(thread: int) -> None:
        for n in range(per_thread):
            number = thread * per_thread + n + 1  # 1 to 200: each payment's amount, and its second
            guard.evaluate(payment(f"t{number}", number, amount=f"{number}.00", payee=payees[number % 4]))

    in_threads(8, pay_from_one_thread)

    payments = 8 * per_thread
    assert len(history(store, PAYER).out) // OUT_WIDTH == payments
    for payee in payees:
        assert len(history(store, payee).inbound) // INBOUND_WIDTH == payments // 4
    probe = guard.evaluate(payment("probe", 3600, amount="1.00", payee=payees[0]))
    assert probe.features["outbound_count_24h"] == payments + 1
    assert probe.features["out_sum_24h"] == f"{sum(range(1, payments + 1)) + 1}.00"
    assert probe.features["payee_payment_count"] == payments // 4


def advance_the_clock(store: Store, times: int) -> None:
    """Read an account's clock, yield, write it back one second later: ``times`` read-modify-writes."""
    for _ in range(times):
        with store.transaction() as txn:
            account = txn.account(PAYER)
            seen = account.seen
            yield_the_cpu()
            account.touch(seen + 1)
            txn.save(PAYER, account)


def test_a_read_modify_write_of_one_history_from_8_threads_loses_no_update(store: Store) -> None:
    in_threads(8, lambda _: advance_the_clock(store, 50))
    assert history(store, PAYER).seen == 8 * 50


def test_two_stores_over_the_same_data_never_interleave_their_events(backend: Backend) -> None:
    needs_shared(backend)
    stores = [backend.open(), backend.open()]  # as two processes would open it
    in_threads(8, lambda thread: advance_the_clock(stores[thread % 2], 25))
    clocks = [history(store, PAYER).seen for store in stores]
    for store in stores:
        store.close()
    assert clocks == [8 * 25, 8 * 25]


# -- the idempotency record ---------------------------------------------------------------------------------
def test_the_same_event_id_is_decided_once_and_counted_once(guard: Guard, store: Store) -> None:
    first, fresh = guard.evaluate_fresh(payment("e1", 0))
    again, fresh_again = guard.evaluate_fresh(payment("e1", 0))
    assert (fresh, fresh_again) == (True, False)
    assert again == first
    with store.transaction() as txn:
        assert txn.decision("e1") == first
    assert guard.evaluate(payment("e2", 60)).features["outbound_count_24h"] == 2


def test_a_stored_digest_is_the_one_put_with_the_decision_and_none_for_an_unknown_event_id(
    store: Store,
) -> None:
    with store.transaction() as txn:
        txn.put_decision("e1", a_decision("e1"), DIGEST)
        txn.put_decision("e2", a_decision("e2"), OTHER_DIGEST)
    with store.transaction() as txn:
        assert (txn.event_digest("e1"), txn.event_digest("e2")) == (DIGEST, OTHER_DIGEST)
        assert txn.event_digest("never-decided") is None


def test_the_same_event_written_otherwise_is_the_same_event(guard: Guard) -> None:
    first = payment("e1", 0)
    first["attributes"] = {"branch": "0451", "app": "7.2"}
    again = {**dict(reversed(first.items())), "attributes": {"app": "7.2", "branch": "0451"}, "memo": None}
    assert guard.evaluate_fresh(first)[1] is True
    assert guard.evaluate_fresh(again) == (guard.evaluate(first), False), "key order and nulls do not count"


def test_an_event_id_decided_before_is_refused_for_another_event_and_the_refusal_audited(
    ruleset: RuleSet, store: Store
) -> None:
    # the attack of issue 18: a large payment to a new payee reuses the id of a small, allowed one
    audit = Sink()
    guard = Guard(ruleset, engine="python", store=store, audit=audit, on_error="raise")
    small = guard.evaluate(payment("e1", 0, amount="15.00"))
    assert small.action is Action.ALLOW
    before = history(store, PAYER).to_json()
    with pytest.raises(DuplicateEventError) as refused:
        guard.evaluate(payment("e1", 60, amount="150000.00", payee=NEW_PAYEE))
    assert isinstance(refused.value, InvalidEventError)
    assert (refused.value.fields, refused.value.decision_id) == (("id",), small.decision_id)
    assert small.decision_id in str(refused.value)
    record = audit.records[-1]
    assert (record["record"], record["event_id"], record["duplicate_of"]) == (
        "rejected",
        "e1",
        small.decision_id,
    )
    assert (record["errors"][0]["code"], record["amount"]) == ("duplicate_id", "150000.00")
    assert history(store, PAYER).to_json() == before, "the refused event changed no history"
    with store.transaction() as txn:
        assert txn.decision("e1") == small, "the first decision stands"
    assert guard.evaluate_fresh(payment("e1", 0, amount="15.00")) == (small, False)


def test_the_same_event_from_8_threads_at_once_is_decided_once(ruleset: RuleSet, store: Store) -> None:
    guard = Guard(ruleset, engine="python", store=store, audit=yield_the_cpu, on_error="raise")
    results = in_threads(8, lambda _: guard.evaluate_fresh(payment("e1", 0)))
    assert sorted(fresh for _, fresh in results) == [False] * 7 + [True]
    assert len({decision.decision_id for decision, _ in results}) == 1
    assert len(history(store, PAYER).out) // OUT_WIDTH == 1


# -- held payments ------------------------------------------------------------------------------------------
def test_a_held_record_stays_until_it_is_forgotten(store: Store) -> None:
    with store.transaction() as txn:
        txn.put_held("d1", HELD)
        txn.put_held("d2", HELD)
    with store.transaction() as txn:
        assert txn.held("d1") == HELD
        txn.put_held("d1", None)
        assert txn.held("d1") is None
    with store.transaction() as txn:
        assert (txn.held("d1"), txn.held("d2")) == (None, HELD)
        assert txn.held("never-held") is None


def test_a_held_payment_is_remembered_until_release_turns_it_into_an_executed_one(
    guard: Guard, store: Store
) -> None:
    held = guard.evaluate(payment("e1", 0, amount="50000.00"))
    assert held.action is Action.HOLD
    with store.transaction() as txn:
        assert txn.held(held.decision_id) is not None
    assert len(history(store, PAYEE).inbound) == 0, "a held payment credits no one"
    assert guard.evaluate(payment("e2", 60)).features["is_new_payee"] is True, "it was only an attempt"

    guard.release(held.decision_id)
    with store.transaction() as txn:
        record = txn.held(held.decision_id)
        assert record is not None
        assert record["resolution"]["outcome"] == "legitimate"
    after = guard.evaluate(payment("e3", 120))
    assert (after.features["is_new_payee"], after.features["payee_payment_count"]) == (False, 2)
    assert len(history(store, PAYEE).inbound) // INBOUND_WIDTH == 3  # e2, e1 once released, and e3
    guard.release(held.decision_id)  # the same outcome again: nothing changes
    assert len(history(store, PAYEE).inbound) // INBOUND_WIDTH == 3
    with pytest.raises(PayguardError, match="was allow"):
        guard.release(after.decision_id)
    with pytest.raises(UnknownDecisionError):
        guard.release("no-such-decision")


def test_the_store_finds_a_decision_by_its_decision_id(store: Store) -> None:
    decision = a_decision("e-7")
    with store.transaction() as txn:
        txn.put_decision("e-7", decision, DIGEST)
        assert txn.decision_by_id("d-e-7") == decision, "a transaction reads its own writes"
    with store.transaction() as txn:
        assert txn.decision_by_id("d-e-7") == decision
        assert txn.decision_by_id("e-7") is None


def test_listed_entries_are_kept_for_good_and_change_the_listed_version(store: Store) -> None:
    with store.transaction() as txn:
        assert (txn.listed_version(), txn.listed()) == (0, {})
        txn.add_listed("fraud_accounts", "6222000011112222")
        assert txn.listed() == {"fraud_accounts": frozenset({"6222000011112222"})}
        first = txn.listed_version()
        assert first != 0

    def listed_then_aborted() -> None:
        with store.transaction() as txn:
            txn.add_listed("fraud_accounts", "ROLLED-BACK")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        listed_then_aborted()
    with store.transaction() as txn:
        assert txn.listed() == {"fraud_accounts": frozenset({"6222000011112222"})}
        assert txn.listed_version() == first
        txn.add_listed("fraud_accounts", "6222000033334444")
    with store.transaction() as txn:
        assert txn.listed_version() != first
        assert txn.listed()["fraud_accounts"] == {"6222000011112222", "6222000033334444"}


# -- persistence ---------------------------------------------------------------------------------------------
def test_a_store_opened_again_has_the_histories_decisions_and_held_payments_it_had(
    backend: Backend, ruleset: RuleSet
) -> None:
    needs_shared(backend)
    before = Guard(ruleset, engine="python", store=backend.open(), on_error="raise")
    paid = before.evaluate(payment("e1", 0))
    held = before.evaluate(payment("e2", 60, amount="50000.00", payee=NEW_PAYEE))
    histories = history(before.store, PAYER).to_json(), history(before.store, PAYEE).to_json()
    before.close()

    after = Guard(ruleset, engine="python", store=backend.open(), on_error="raise")
    assert (history(after.store, PAYER).to_json(), history(after.store, PAYEE).to_json()) == histories
    assert after.evaluate_fresh(payment("e1", 0)) == (paid, False)
    with pytest.raises(DuplicateEventError):
        after.evaluate(payment("e1", 0, amount="99.00"))
    assert after.evaluate(payment("e3", 120)).features["outbound_count_24h"] == 3
    after.release(held.decision_id)
    assert after.evaluate(payment("e4", 180, payee=NEW_PAYEE)).features["is_new_payee"] is False
    after.close()
