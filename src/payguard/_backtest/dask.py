"""The partitioned replay on Dask: the only module of payguard that imports dask.

Each partition is one persisted object on a worker (its rows, inputs and outputs); an iteration is one
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
from typing import Any

from .._errors import PayguardError
from .plan import Row, Setup
from .step import Message, Partition, Stats, finish, step

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

    def load(self, rows: list[list[Row]], setup: Setup) -> None:
        if self.client is not None:  # round robin over the workers, in a stable order
            workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
            self._workers = [workers[index % len(workers)] for index in range(len(rows))]
        self._setup = self._data(setup, "setup")
        build = delayed(_build, pure=False)
        built = self._persist(
            [[build(index, self._data(part, "rows", index), self._setup)] for index, part in enumerate(rows)]
        )
        self._states = [group[0] for group in built]
        if self.client is not None:  # built now: loading's time is the partitions', not the first step's
            _distributed().wait(self._states)
        self._outboxes = []

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

    def finish(self, wanted: list[frozenset[int]]) -> list[dict[str, Any]]:
        done = delayed(_finish, pure=False)
        return self._compute([done(state, self._setup, wanted[i]) for i, state in enumerate(self._states)])


def _unpickled(value: Any) -> Any:
    return pickle.loads(value) if isinstance(value, bytes) else value  # noqa: S301 (our own scatter)


def _build(index: int, rows: Any, setup: Any) -> Partition:
    return Partition.build(index, _unpickled(rows), _unpickled(setup))


def _step(state: Partition, setup: Any, *inbox: Message) -> tuple[Partition, list[Message], Stats]:
    return step(state, _unpickled(setup), *inbox)


def _finish(state: Partition, setup: Any, wanted: frozenset[int]) -> dict[str, Any]:
    return finish(state, _unpickled(setup), wanted)


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
