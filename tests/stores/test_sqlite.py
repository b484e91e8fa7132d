"""What only the SQLite store has to do: read the files an earlier payguard wrote."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from payguard import Guard, SQLiteStore, load_rule_set

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
