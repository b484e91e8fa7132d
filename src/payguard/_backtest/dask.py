"""The partitioned replay on Dask: the only module of payguard that imports dask.

Each partition is built on its worker from the batches of rows the plan sends while it reads on (the
events validated there, in parallel with the plan), then is one persisted object on that worker (its
rows, inputs and outputs); an iteration is one
task per partition (``step``), whose small per-partition messages are the next iteration's inputs, so
only what changed moves between workers. Every task of a partition is pinned to its worker: a partition
moved between workers is pickled whole (its validated events pickle slowly), which made one iteration
of the handbook file take minutes. Without a ``distributed.Client`` the graph runs on Dask's
synchronous scheduler (in this process: for tests and notebooks without a cluster).
"""

from __future__ import annotations

import importlib
import operator
import pickle
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._errors import PayguardError
from .._rules.model import RuleSet
from .plan import Answer, Checked, Row, Setup
from .step import Loading, Message, Partition, Stats, finish, step

__all__ = ["DaskEngine", "SchedulerUnreachableError", "client_of", "local_cluster"]

try:
    from dask.delayed import Delayed, delayed
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise PayguardError(
        "the partitioned replay on Dask needs the extra payguard[dask] (pip install 'payguard[dask]')"
    ) from exc
dask: Any = importlib.import_module("dask")  # untyped: its compute and persist are not exported as typed


class DaskEngine:
    """Runs the step functions as Dask tasks, on ``client``'s cluster or on the synchronous scheduler."""

    name = "dask"

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self._states: list[Delayed] = []
        self._outboxes: list[Delayed] = []
        self._setup: Any = None
        self._workers: list[str] = []  # each partition's worker (with a client)
        # each partition as it is being built: on its worker (a future), or here without a client
        self._loading: list[Any] = []
        self._rules: Any = None
        # sends the batches from a thread of its own: a scatter waits for the busy worker's reply, and the
        # plan would wait with it
        self._sender: ThreadPoolExecutor | None = None
        self._sent: list[Future[None]] = []

    def _data(self, value: Any, label: str, index: int | None = None) -> Any:
        """``value`` as an input of tasks: scattered to the cluster (to partition ``index``'s worker), or a
        graph literal (not traversed)."""
        if self.client is not None:
            # pickled whole: distributed serialises a list item by item; in a list, or it scatters each item
            blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            where = None if index is None else [self._workers[index]]
            return self.client.scatter([blob], workers=where, broadcast=index is None, hash=False)[0]
        return delayed(value, name=f"payguard-{label}-{uuid.uuid4().hex}", traverse=False)

    def _persist(self, items: list[list[Delayed]]) -> list[list[Delayed]]:
        """Each partition's ``items`` persisted on its worker."""
        if self.client is not None:
            return [
                list(self.client.persist(group, workers=[self._workers[i]], allow_other_workers=False))
                for i, group in enumerate(items)
            ]
        done = iter(dask.persist(*[item for group in items for item in group], scheduler="synchronous"))
        return [[next(done) for _item in group] for group in items]

    def _compute(self, items: list[Delayed]) -> list[Any]:
        """Each partition's item computed on its worker, and brought here."""
        if self.client is not None:
            futures = [self.client.compute(item, workers=[self._workers[i]]) for i, item in enumerate(items)]
            return list(self.client.gather(futures))
        return list(dask.compute(*items, scheduler="synchronous"))

    def begin(self, ruleset: RuleSet, engine: str, partitions: int, feedback: bool = False) -> None:
        if self.client is not None:  # round robin over the workers, in a stable order
            workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
            self._workers = [workers[index % len(workers)] for index in range(partitions)]
            self._rules = self._data((ruleset, engine, feedback), "rules")
            self._loading = [None] * partitions
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payguard-feed")
            self._sent = []
        else:
            self._loading = [Loading(index, ruleset, engine, feedback) for index in range(partitions)]
        self._states, self._outboxes = [], []

    def feed(self, rows: list[list[Row]]) -> None:
        if self._sender is None:
            for index, part in enumerate(rows):
                self._loading[index].add(part)
            return
        self._sent.append(self._sender.submit(self._send, rows))

    def _send(self, rows: list[list[Row]]) -> None:
        """Queue each partition's batch on its worker (in the sending thread: one at a time, in order)."""
        client = self.client
        assert client is not None
        for index, part in enumerate(rows):
            if part:
                self._loading[index] = client.submit(
                    _add,
                    self._loading[index],
                    index,
                    self._rules,
                    self._data(part, "rows", index),
                    workers=[self._workers[index]],
                    allow_other_workers=False,
                    pure=False,
                )

    def checked(self) -> list[Checked]:
        client = self.client
        if client is None:
            return [loading.checked for loading in self._loading]
        assert self._sender is not None
        for sent in self._sent:
            sent.result()  # raises what sending raised
        self._sender.shutdown()
        self._sender, self._sent = None, []
        return list(
            client.gather([self._on(index, _checked, loading) for index, loading in enumerate(self._loading)])
        )

    def _on(self, index: int, function: Any, *args: Any) -> Any:
        """``function(*args)`` as a task on partition ``index``'s worker."""
        assert self.client is not None
        return self.client.submit(
            function, *args, workers=[self._workers[index]], allow_other_workers=False, pure=False
        )

    def load(self, setup: Setup) -> list[dict[int, Answer]]:
        self._setup = self._data(setup, "setup")
        client = self.client
        if client is None:
            partitions = [loading.seal(setup) for loading in self._loading]
            self._states = [
                delayed(partition, name=f"payguard-partition-{uuid.uuid4().hex}", traverse=False)
                for partition in partitions
            ]
            self._loading = []
            return [partition.answers for partition in partitions]
        self._states = [
            self._on(index, _seal, loading, index, self._rules, self._setup)
            for index, loading in enumerate(self._loading)
        ]
        self._loading = []
        # built now (loading's time is the partitions', not the first step's), with what the driver asked
        return list(
            client.gather([self._on(index, _answers, state) for index, state in enumerate(self._states)])
        )

    def iterate(self) -> list[Stats]:
        run = delayed(_step, nout=3, pure=False)
        pick = delayed(operator.getitem, pure=False)
        steps: list[list[Delayed]] = []
        for index, state in enumerate(self._states):
            inbox = [pick(outbox, index) for outbox in self._outboxes]
            steps.append(list(run(state, self._setup, *inbox)))
        persisted = self._persist(steps)
        self._states = [group[0] for group in persisted]
        self._outboxes = [group[1] for group in persisted]
        return self._compute([group[2] for group in persisted])

    def twin(self) -> DaskEngine:
        """Another engine on the same cluster, whose partitions sit on the same workers as these (the old
        rule set's replay of ``--compare``)."""
        return DaskEngine(self.client)

    def finish(self, wanted: list[frozenset[int]], old: Any = None) -> list[dict[str, Any]]:
        done = delayed(_finish, pure=False)
        if old is None:
            tasks = [done(state, self._setup, wanted[i]) for i, state in enumerate(self._states)]
        else:  # partition i of both replays is on one worker: nothing moves
            assert isinstance(old, DaskEngine)
            tasks = [
                done(state, self._setup, wanted[i], old._states[i], old._setup)
                for i, state in enumerate(self._states)
            ]
        return self._compute(tasks)


def _unpickled(value: Any) -> Any:
    return pickle.loads(value) if isinstance(value, bytes) else value  # noqa: S301 (our own scatter)


def _add(loading: Loading | None, index: int, rules: Any, rows: Any) -> Loading:
    if loading is None:
        loading = Loading(index, *_unpickled(rules))
    return loading.add(_unpickled(rows))


def _checked(loading: Loading | None) -> Checked:
    return Checked() if loading is None else loading.checked


def _seal(loading: Loading | None, index: int, rules: Any, setup: Any) -> Partition:
    return (Loading(index, *_unpickled(rules)) if loading is None else loading).seal(_unpickled(setup))


def _answers(partition: Partition) -> dict[int, Answer]:
    return partition.answers


def _step(state: Partition, setup: Any, *inbox: Message) -> tuple[Partition, list[Message], Stats]:
    return step(state, _unpickled(setup), *inbox)


def _finish(
    state: Partition, setup: Any, wanted: frozenset[int], old: Partition | None = None, old_setup: Any = None
) -> dict[str, Any]:
    decided = None if old is None else (_unpickled(old_setup), old.decisions, old.features)
    return finish(state, _unpickled(setup), wanted, decided)


def local_cluster(workers: int) -> tuple[Any, Any]:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes, and its client."""
    distributed = _distributed()
    # the scheduler's HTTP server (metrics, dashboard) on a free loopback port: with no address it takes
    # 8787 on every interface, and fails while another cluster holds it
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    )
    return cluster, distributed.Client(cluster)


class SchedulerUnreachableError(PayguardError, ValueError):
    """The Dask scheduler given does not answer: a usage error (exit 2), as a store that cannot be opened."""


def client_of(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``; ``SchedulerUnreachableError`` if none answers
    (within Dask's ``distributed.comm.timeouts.connect``)."""
    distributed = _distributed()
    try:
        return distributed.Client(address)
    except (OSError, ValueError) as exc:  # refused, timed out, or not an address
        raise SchedulerUnreachableError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from exc


def _distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise PayguardError(
            "a Dask cluster needs the extra payguard[dask] (pip install 'payguard[dask]')"
        ) from exc
