"""A partition fed its rows batch by batch, as the plan routes them while it reads on, is the partition
built from all its rows at once: the same rows, events, accounts, history snapshots and own payments."""

from __future__ import annotations

from payguard import Guard, load_rule_set
from payguard._backtest.plan import Row, Setup, plan
from payguard._backtest.step import Loading, Partition
from payguard._replay import FRAUD_LIST

from .worlds import DEMO, SHIPPED_RULES


def test_a_partition_fed_in_batches_is_the_partition_built_at_once() -> None:
    guard = Guard(load_rule_set(SHIPPED_RULES), max_future=None)
    batches: list[list[list[Row]]] = []
    plan(DEMO[0], 2, DEMO[1], (None, None, None), batches.append)
    setup = Setup(guard.rules, guard.engine, 2, FRAUD_LIST)
    for index in range(2):
        rows = [row for batch in batches for row in batch[index]]
        assert len(rows) > 100
        whole = Partition.build(index, rows, setup)
        loading = Loading(index, guard.rules, guard.engine)
        for start in range(0, len(rows), 37):  # small batches: history records and payments split
            loading.add(rows[start : start + 37])
        fed = loading.seal(setup)
        assert fed.rows == whole.rows
        assert [event.to_dict() for event in fed.events] == [event.to_dict() for event in whole.events]
        assert fed.accounts == whole.accounts
        assert fed.where == whole.where
        assert fed.own == whole.own
        assert fed.snapshots.keys() == whole.snapshots.keys()
        assert all(fed.snapshots[key] == whole.snapshots[key] for key in whole.snapshots)
