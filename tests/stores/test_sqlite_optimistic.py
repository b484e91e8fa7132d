"""Processes sharing one SQLite file compute their events at once: an event reads without the file's write
lock, and takes it only to check that what it read still holds and to write (``SQLiteStore.optimistic``).
When another connection changed a row it read, the guard decides the event again under the lock, so the
answer is the one a locked transaction would have given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, RuleSet, SQLiteStore, StoreError, load_rule_set
from payguard._serve.metrics import Metrics
from payguard._stores.interface import StaleReadError, StoreTransaction

from ..conftest import rules_text
from .test_contract import NEW_PAYEE, PAYEE, PAYER, RULES, a_decision, history, in_threads, payment


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(rules_text(RULES), encoding="utf-8")
    return load_rule_set(path)


OpenStore = Callable[..., SQLiteStore]


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[OpenStore]:
    """``file_store(kind=SQLiteStore, **options)``: a new store object over the test's one SQLite file, as
    another process would open it; every one is closed when the test ends."""
    opened: list[SQLiteStore] = []

    def open_one(kind: type[SQLiteStore] = SQLiteStore, **options: Any) -> SQLiteStore:
        opened.append(kind(tmp_path / "p.db", **options))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def touch(txn: StoreTransaction, key: str, seen: int) -> None:
    """A write to one account's history: its clock set to ``seen``."""
    account = txn.account(key)
    account.touch(seen)
    txn.save(key, account)


def test_an_optimistic_read_lets_another_connection_write_meanwhile(file_store: OpenStore) -> None:
    ours, theirs = file_store(timeout=0.5), file_store(timeout=0.5)
    with ours.optimistic() as txn:
        txn.account(PAYER)
        with theirs.transaction() as other:  # would wait 0.5 s, then fail, if the read held the write lock
            touch(other, PAYEE, 60)
        assert not txn.settled
        txn.settle()  # PAYER's row did not change: what was read still holds
        touch(txn, PAYER, 120)
    assert (history(ours, PAYER).seen, history(ours, PAYEE).seen, ours.stale_reads) == (120, 60, 0)


def test_once_settled_the_transaction_holds_the_lock_until_it_commits(file_store: OpenStore) -> None:
    ours, theirs = file_store(), file_store(timeout=0.2)
    with ours.optimistic() as txn:
        txn.account(PAYER)
        txn.settle()  # nobody wrote since the read: the read transaction itself took the lock
        with pytest.raises(StoreError, match=r"another connection held it for 0\.2 s"), theirs.transaction():
            pass
        touch(txn, PAYER, 120)
    with theirs.transaction() as other:  # committed: the file takes the next transaction at once
        assert other.account(PAYER).seen == 120
    assert ours.stale_reads == 0


def read_then_write_after_theirs(ours: SQLiteStore, theirs: SQLiteStore) -> None:
    """Ours reads PAYER, theirs writes it and commits, then ours writes it."""
    with ours.optimistic() as txn:
        account = txn.account(PAYER)
        with theirs.transaction() as other:
            touch(other, PAYER, 60)
        account.touch(120)
        txn.save(PAYER, account)  # a write settles first, and finds PAYER changed


def test_settling_after_another_connection_changed_a_row_read_raises_and_writes_nothing(
    file_store: OpenStore,
) -> None:
    ours, theirs = file_store(), file_store(timeout=0.5)
    with pytest.raises(StaleReadError, match="a row this transaction read has changed"):
        read_then_write_after_theirs(ours, theirs)
    assert (history(ours, PAYER).seen, ours.stale_reads) == (60, 1), "their write stands, ours is gone"
    with theirs.transaction():  # ours rolled back and let the lock go: the file takes the next one at once
        pass


def settle_after_their_decision(ours: SQLiteStore, theirs: SQLiteStore) -> None:
    with ours.optimistic() as txn:
        assert txn.decision("e1") is None
        with theirs.transaction() as other:
            other.put_decision("e1", a_decision("e1"), b"digest")
        txn.settle()


def test_a_repeated_event_id_read_as_new_is_found_at_settle(file_store: OpenStore) -> None:
    ours, theirs = file_store(), file_store()
    with pytest.raises(StaleReadError):
        settle_after_their_decision(ours, theirs)


class CutIn(SQLiteStore):
    """A real SQLite store whose next optimistic transaction, just before it settles, runs ``cut_in``:
    another process's event arriving between this event's reads and its write."""

    cut_in: Callable[[], object] | None = None

    @contextmanager
    def optimistic(self) -> Iterator[Any]:
        with super().optimistic() as txn:
            cut_in, self.cut_in = self.cut_in, None
            if cut_in is not None:
                settle = txn.settle

                def after_the_other() -> None:
                    cut_in()
                    settle()

                txn.settle = after_the_other
            yield txn


def test_a_payment_that_cut_in_between_reads_and_write_is_counted_in_the_decision(
    file_store: OpenStore, ruleset: RuleSet
) -> None:
    records: list[dict[str, Any]] = []
    ours = Guard(ruleset, engine="python", store=file_store(CutIn), audit=records.append)
    theirs = Guard(ruleset, engine="python", store=file_store())
    first = ours.evaluate(payment("e1", 0))
    assert isinstance(ours.store, CutIn)
    ours.store.cut_in = lambda: theirs.evaluate(payment("e2", 60))

    decision = ours.evaluate(payment("e3", 120))

    assert decision.features["outbound_count_24h"] == 3, "e1, the payment that cut in, and e3"
    assert decision.features["out_sum_24h"] == "300.00"
    assert ours.store.stale_reads == 1
    # the first attempt left no trace: one record for each decision, and no decision id skipped
    assert [record["decision_id"] for record in records] == [first.decision_id, decision.decision_id]
    assert int(decision.decision_id[-12:]) == int(first.decision_id[-12:]) + 1


def test_the_same_event_id_cutting_in_is_answered_with_the_decision_it_got(
    file_store: OpenStore, ruleset: RuleSet
) -> None:
    ours = Guard(ruleset, engine="python", store=file_store(CutIn))
    theirs = Guard(ruleset, engine="python", store=file_store())
    first: list[Any] = []
    assert isinstance(ours.store, CutIn)
    ours.store.cut_in = lambda: first.append(
        theirs.evaluate(payment("e1", 0, amount="20000.00", payee=NEW_PAYEE))
    )

    decision, fresh = ours.evaluate_fresh(payment("e1", 0, amount="20000.00", payee=NEW_PAYEE))

    assert (decision, fresh) == (first[0], False), "decided once, by the process that committed first"
    assert ours.evaluate(payment("probe", 60)).features["outbound_count_24h"] == 2, "and counted once"


def test_two_guards_sharing_a_file_on_8_threads_count_every_payment_once(
    file_store: OpenStore, ruleset: RuleSet
) -> None:
    stores = [file_store(), file_store()]  # as two processes would
    guards = [Guard(ruleset, engine="python", store=store, on_error="raise") for store in stores]
    per_thread = 25

    def pay(thread: int) -> None:
        for n in range(per_thread):
            number = thread * per_thread + n + 1
            guards[thread % 2].evaluate(payment(f"t{number}", number, amount=f"{number}.00"))

    in_threads(8, pay)

    probe = guards[0].evaluate(payment("probe", 3600, amount="1.00"))
    assert probe.features["outbound_count_24h"] == 8 * per_thread + 1
    assert probe.features["out_sum_24h"] == f"{sum(range(1, 8 * per_thread + 1)) + 1}.00"
    assert probe.features["payee_payment_count"] == 8 * per_thread


def test_the_server_exports_the_events_decided_again(file_store: OpenStore, ruleset: RuleSet) -> None:
    ours = Guard(ruleset, engine="python", store=file_store(CutIn))
    theirs = Guard(ruleset, engine="python", store=file_store())
    assert isinstance(ours.store, CutIn)
    ours.store.cut_in = lambda: theirs.evaluate(payment("e1", 0))
    ours.evaluate(payment("e2", 60))
    metrics = Metrics()

    assert metrics.count_store_waits(ours.store, (0, 0)) == (0, 1)
    assert metrics.count_store_waits(ours.store, (0, 1)) == (0, 1), "counted once"
    assert "\npayguard_store_retries_total 1.0\n" in metrics.exposition().decode()


def write_after_catching_stale(ours: SQLiteStore, theirs: SQLiteStore) -> None:
    with ours.optimistic() as txn:
        account = txn.account(PAYER)
        with theirs.transaction() as other:
            touch(other, PAYER, 60)
        with pytest.raises(StaleReadError):
            txn.settle()
        account.touch(30)
        txn.save(PAYER, account)  # the history read before theirs: it must not overwrite their write


def test_a_transaction_that_found_a_row_changed_refuses_every_write_after(file_store: OpenStore) -> None:
    ours, theirs = file_store(), file_store()
    with pytest.raises(StaleReadError):
        write_after_catching_stale(ours, theirs)
    assert history(ours, PAYER).seen == 60, "their write stands"
