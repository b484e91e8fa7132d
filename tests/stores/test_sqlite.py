"""What only the SQLite store has to do: read the files an earlier payguard wrote, and wait its turn for
the file's write lock when another process holds it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from payguard import Guard, SQLiteStore, StoreError, load_rule_set

from ..conftest import rules_text
from .test_contract import RULES, a_decision, payment

# the decisions table as payguard wrote it before decisions kept their event's digest
EARLIER_SCHEMA = "CREATE TABLE decisions (event_id TEXT PRIMARY KEY, decision TEXT NOT NULL);"


def test_a_decision_an_earlier_payguard_stored_without_a_digest_still_answers_its_event_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "earlier.db"
    first = a_decision("e1")
    with sqlite3.connect(path) as db:
        db.execute(EARLIER_SCHEMA)
        db.execute("INSERT INTO decisions VALUES (?, ?)", ("e1", json.dumps(first.to_dict())))
    db.close()
    (tmp_path / "rules.yaml").write_text(rules_text(RULES), encoding="utf-8")
    guard = Guard(load_rule_set(tmp_path / "rules.yaml"), engine="python", store=SQLiteStore(path))
    with guard.store.transaction() as txn:
        assert (txn.decision("e1"), txn.event_digest("e1")) == (first, None)
    # nothing to compare with: the first decision, as that payguard answered
    assert guard.evaluate_fresh(payment("e1", 0)) == (first, False)
    fresh, _ = guard.evaluate_fresh(payment("e2", 60))
    with guard.store.transaction() as txn:
        assert txn.decision("e2") == fresh
        assert txn.event_digest("e2") is not None, "decisions made now keep their digest in that file"
    guard.close()


def hold_the_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another connection (as another process would) takes the file's write lock for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        db.execute("COMMIT")
        db.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()
    return thread


def test_a_transaction_waits_for_another_connections_and_goes_on_when_it_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "shared.db", timeout=5)
    holder = hold_the_write_lock(tmp_path / "shared.db", 0.3)
    started = time.monotonic()
    with store.transaction() as txn:
        waited = time.monotonic() - started
        txn.put_held("d1", {"payee": "x"})
    holder.join()
    assert waited >= 0.25, "it began only once the other connection let go"
    with store.transaction() as txn:
        assert txn.held("d1") == {"payee": "x"}
    store.close()


def test_a_transaction_that_waits_past_the_timeout_fails_with_a_store_error_naming_the_wait(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "shared.db", timeout=0.2)
    holder = hold_the_write_lock(tmp_path / "shared.db", 1.0)
    with pytest.raises(StoreError, match=r"another connection held it for 0.2 s"), store.transaction():
        pass
    holder.join()
    with store.transaction() as txn:  # the lock is free again, and the store usable
        assert txn.held("d1") is None
    store.close()


def test_a_thread_of_its_own_copies_the_log_into_the_file_and_stops_when_the_store_closes(
    tmp_path: Path,
) -> None:
    # SQLite's automatic checkpoint runs inside the commit that fills the log: an event's stall
    def checkpointers() -> int:  # other tests' stores may still run theirs
        return sum(thread.name == "payguard-sqlite-checkpoint" for thread in threading.enumerate())

    running = checkpointers()
    path = tmp_path / "checkpointed.db"
    store = SQLiteStore(path, checkpoint_interval=0.05)
    empty = path.stat().st_size
    for number in range(200):
        with store.transaction() as txn:
            txn.put_held(f"d{number}", {"payee": "x" * 200})
    time.sleep(0.3)
    assert path.stat().st_size > empty + 200 * 200, "the held records reached the file while it is open"
    assert checkpointers() == running + 1
    store.close()
    assert checkpointers() == running


def test_a_checkpoint_interval_of_zero_is_refused() -> None:
    with pytest.raises(StoreError, match="checkpoint_interval must be more than 0 seconds, not 0"):
        SQLiteStore(":memory:", checkpoint_interval=0)
