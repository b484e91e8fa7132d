"""The partitioned replay on Spark: the only module of payguard that imports pyspark.

The rows are laid out once, ``repartitionByRange(N, "part").sortWithinPartitions("part", "seq")``, cached
(not ``groupBy().applyInPandas``, which holds a whole group in memory as one pandas frame: a merchant
payee is such a group). Spark keeps no Python object between jobs, so each iteration is one
``mapInPandas`` job over every row: ``run`` rebuilds each partition from its rows (``Partition.build``),
gives it what the other partitions told it so far and what it told them, replays all its accounts with
the same step function as on Dask (``step(..., everything=True)``) and returns what changed. The driver
keeps the messages (per payment between two partitions: whether it executed, and the payee-side
features) and broadcasts them with the next job; the last job also finishes the partitions (``finish``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import pickle
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from .._errors import PayguardError
from .._rules.model import RuleSet
from .plan import CREDIT, DECIDE, Answer, Checked, Row, Setup
from .step import Decided, Loading, Partition, Stats, finish, step

__all__ = ["SparkEngine", "active_session", "session_of"]

try:
    pandas: Any = importlib.import_module("pandas")
    importlib.import_module("pyarrow")
    importlib.import_module("pyspark.sql")
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise PayguardError(
        "the partitioned replay on Spark needs the extra payguard[spark] (pip install 'payguard[spark]')"
    ) from exc

ROWS = "part int, seq long, row binary"
OUT = "part int, blob binary"
# a Python worker's partitions as built (history replayed, events validated), by replay and index: Spark
# reuses its Python workers between jobs, and a partition's rows do not change between iterations
_BUILT: dict[tuple[str, int], Partition] = {}


class SparkEngine:
    """Runs the step functions as Spark jobs (``mapInPandas``) on ``session``'s cluster."""

    name = "spark"

    def __init__(self, session: Any) -> None:
        self.session = session
        self._rows: Any = None
        self._setup = b""
        self._rules = b""
        self._partitions = 0
        self._fed: list[list[Row]] = []  # each partition's rows as the plan routed them
        self._runs = 0
        self._token = uuid.uuid4().hex  # names this replay's partitions in the workers' caches
        # the messages so far, by payment seq: whether it executed (its payer's partition says), and its
        # payee-side features (its payee's partition says); absent: executed, no features
        self._executed: dict[int, bool] = {}
        self._payee_side: dict[int, dict[str, Any]] = {}

    def begin(self, ruleset: RuleSet, engine: str, partitions: int, feedback: bool = False) -> None:
        # the first job validates the rows with these; later jobs rebuild the partitions with the setup's
        self._rules = pickle.dumps((ruleset, engine, feedback), protocol=pickle.HIGHEST_PROTOCOL)
        self._fed = [[] for _ in range(partitions)]

    def feed(self, rows: list[list[Row]]) -> None:
        for index, part in enumerate(rows):  # laid out at once by the DataFrame: kept here until then
            self._fed[index] += part

    def checked(self) -> list[Checked]:
        rows, self._fed = self._fed, []
        self._partitions = len(rows)
        frame = pandas.DataFrame(
            {
                "part": [index for index, part in enumerate(rows) for _row in part],
                "seq": [row.seq for part in rows for row in part],
                "row": [pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL) for part in rows for row in part],
            }
        )
        rows_frame = self.session.createDataFrame(frame, ROWS)
        # by range of the index: Spark's hash of the small integers 0..N-1 puts several in one partition
        laid_out = rows_frame.repartitionByRange(self._partitions, "part").sortWithinPartitions("part", "seq")
        self._rows = laid_out.cache()
        found = self._job(("checked", self._rules))  # laid out now, once: every job reads the cached rows
        return [found.get(index, Checked()) for index in range(self._partitions)]

    def load(self, setup: Setup) -> list[dict[int, Answer]]:
        self._setup = pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL)
        found = self._job(("answers", None))
        self._runs = 0
        return [found.get(index, {}) for index in range(self._partitions)]

    def twin(self) -> SparkEngine:
        """Another engine on the same session (the old rule set's replay of ``--compare``)."""
        return SparkEngine(self.session)

    def _job(self, task: tuple[str, Any]) -> dict[int, Any]:
        """One pass over every row with the messages so far; each partition's result, by index. ``task``:
        ``("iterate", None)``, ``("finish", (wanted, old))`` or ``("decided", None)``."""
        context = self.session.sparkContext
        messages = context.broadcast(pickle.dumps((self._executed, self._payee_side)))
        setup = context.broadcast(self._setup)
        work = context.broadcast(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
        run = functools.partial(_run, self._token, setup, messages, self._runs, work)
        try:
            done = self._rows.mapInPandas(run, OUT).collect()
        finally:
            for broadcast in (messages, setup, work):
                broadcast.unpersist()
        self._runs += 1
        return {int(found["part"]): pickle.loads(found["blob"]) for found in done}  # noqa: S301 (our own)

    def iterate(self) -> list[Stats]:
        results = self._job(("iterate", None))
        stats: list[Stats] = []
        for index in range(self._partitions):
            if index not in results:  # a partition without rows: nothing to replay
                stats.append(Stats(index))
                continue
            executed, payee_side, stat = results[index]
            self._executed.update(executed)
            self._payee_side.update(payee_side)
            stats.append(stat)
        return stats

    def _decided(self) -> dict[int, tuple[dict[int, Any], dict[int, dict[str, Any]]]]:
        """Each partition's decisions and their kept features, at the fixed point."""
        return {index: _settled(index, *found) for index, found in self._job(("decided", None)).items()}

    def finish(self, wanted: list[frozenset[int]], old: Any = None) -> list[dict[str, Any]]:
        decided = None
        if old is not None:  # the old rule set's decisions go to the partitions that finish the new one
            assert isinstance(old, SparkEngine)
            decided = (old._setup, old._decided())
        results = self._job(("finish", (wanted, decided)))
        setup = pickle.loads(self._setup)  # noqa: S301 (our own)
        parts = []
        for index in range(self._partitions):
            if index not in results:
                empty = Partition.build(index, [], setup)
                parts.append(finish(empty, setup, wanted[index], _old_of(decided, index)))
                continue
            parts.append(_settled(index, *results[index]))
        return parts


def _settled(index: int, stat: Stats, result: Any) -> Any:
    """A finishing pass's result, which must have changed nothing (else it was no fixed point)."""
    if stat.changes:
        raise PayguardError(f"partition {index} changed in the finishing pass: not a fixed point")
    return result


def _old_of(decided: tuple[bytes, dict[int, Any]] | None, index: int) -> Decided | None:
    """The old rule set's decisions of partition ``index`` (``--compare``), or None."""
    if decided is None:
        return None
    decisions, features = decided[1].get(index, ({}, {}))
    return pickle.loads(decided[0]), decisions, features  # noqa: S301 (our own)


def _run(  # noqa: PLR0917 (what the job gives every task)
    token: str, setup: Any, messages: Any, runs: int, work: Any, batches: Iterator[Any]
) -> Iterator[Any]:
    """``mapInPandas``: the rows of some partitions, sorted by partition then seq."""
    task = pickle.loads(work.value)  # noqa: S301 (our own)
    for index, rows in _partitions(batches):
        if task[0] == "checked":  # the first job: the rows validated, before any setup
            loading = Loading(index, *pickle.loads(task[1]))  # noqa: S301 (our own)
            yield _frame(index, loading.add(rows).checked)
            continue
        the_setup = pickle.loads(setup.value)  # noqa: S301 (our own)
        told = pickle.loads(messages.value)  # noqa: S301 (our own)
        yield _one(_built(token, index, rows, the_setup), the_setup, told, runs, task)


def _partitions(batches: Iterator[Any]) -> Iterator[tuple[int, list[Row]]]:
    """Each partition's rows, from batches of rows sorted by partition then seq."""
    current: int | None = None
    rows: list[Row] = []
    for batch in batches:
        for part, blob in zip(batch["part"], batch["row"], strict=True):
            if current is not None and part != current:
                yield current, rows
                rows = []
            current = int(part)
            rows.append(pickle.loads(blob))  # noqa: S301 (our own)
    if current is not None:
        yield current, rows


def _frame(index: int, result: Any) -> Any:
    return pandas.DataFrame(
        {"part": [index], "blob": [pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)]}
    )


def _built(token: str, index: int, rows: list[Row], setup: Setup) -> Partition:
    """Partition ``index`` as built, with none of a replay's inputs or outputs: from this worker's cache
    when it built it in an earlier job of the same replay."""
    found = _BUILT.get((token, index))
    if found is None:
        for key in [key for key in _BUILT if key[0] != token]:  # another replay's: not needed again
            del _BUILT[key]
        found = _BUILT[token, index] = Partition.build(index, rows, setup)
    # the rows, events and history snapshots are only read; what a replay writes starts empty
    return dataclasses.replace(
        found,
        executed={},
        payee_side={},
        decisions={},
        told_executed={},
        told_payee_side={},
        evidence={},
        features={},
        checkpoints={},
    )


def _one(
    partition: Partition,
    setup: Setup,
    told: tuple[dict[int, bool], dict[int, dict[str, Any]]],
    runs: int,
    task: tuple[str, Any],
) -> Any:
    """Replay ``partition`` with what it was told and what it told so far; its result."""
    index = partition.index
    if task[0] == "answers":  # what the driver asked of the rows, as sealed
        return _frame(index, partition.answers)
    partition.runs = runs
    executed, payee_side = told
    for row in partition.rows:
        if row.kind == DECIDE and row.peer not in (-1, index):  # this partition's payer decided it
            if row.seq in executed:
                partition.told_executed[row.seq] = executed[row.seq]
            if row.seq in payee_side:
                partition.payee_side[row.seq] = payee_side[row.seq]
        elif row.kind == CREDIT and row.peer != index:  # this partition's payee was credited
            if row.seq in executed:
                partition.executed[row.seq] = executed[row.seq]
            if row.seq in payee_side:
                partition.told_payee_side[row.seq] = payee_side[row.seq]
    partition, outbox, stats = step(partition, setup, everything=True)
    mode, given = task
    if mode == "iterate":
        executed_now: dict[int, bool] = {}
        payee_side_now: dict[int, dict[str, Any]] = {}
        for message in outbox:
            executed_now.update(message.executed)
            payee_side_now.update(message.payee_side)
        result: Any = (executed_now, payee_side_now, stats)
    elif mode == "decided":
        result = (stats, (partition.decisions, partition.features))
    else:
        wanted, decided = given
        result = (stats, finish(partition, setup, wanted[index], _old_of(decided, index)))
    return _frame(index, result)


def session_of(master: str, partitions: int) -> Any:
    """A new ``SparkSession`` at ``master`` for a partitioned replay (its workers run this Python)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers import this payguard
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    sql = importlib.import_module("pyspark.sql")
    session = (
        sql.SparkSession.builder.master(master)
        .appName("payguard-backtest")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def active_session() -> Any:
    """This process's active ``SparkSession``, or None."""
    return importlib.import_module("pyspark.sql").SparkSession.getActiveSession()
