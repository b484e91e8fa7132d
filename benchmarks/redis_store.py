"""The redis section of `make bench`: payguard over a RedisStore on a loopback redis-server it starts.

(Named ``redis_store.py``, not ``redis.py``: this folder is on ``sys.path`` when bench.py runs, and a
``redis.py`` here would shadow redis-py itself.)

Measures ``guard.record`` (the pipelined bulk path) in records/s; decisions/s of one and of two evaluator
processes with the default rules and a file audit trail; round trips per event (counted by the store);
and the Redis server's CPU per event (its utime + stime from /proc). Each evaluator is a process of its
own (``python redis_store.py --worker SETTINGS``), released with the others by a counter in Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUDIT_KEY = "a benchmark audit key of 32 bytes"


def _cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A redis-server on a free loopback port, AOF on with ``appendfsync everysec`` (the recommended
    production policy)."""

    def __init__(self, directory: str) -> None:
        import redis

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", directory, "--save", ""]
        options += ["--appendonly", "yes", "--appendfsync", "everysec", "--logfile", "redis.log"]
        self.process = subprocess.Popen(["redis-server", *options])
        client = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()

    def cpu(self) -> float:
        return _cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def worker(settings_path: str) -> None:
    """One evaluator process: decide ``events`` (JSON lines), then write elapsed and CPU time, round trips
    and lease waits."""
    from bench import settle

    from payguard import Guard, RedisStore

    settings = json.loads(Path(settings_path).read_text(encoding="utf-8"))
    events = [json.loads(line) for line in Path(settings["events"]).read_text(encoding="utf-8").splitlines()]
    store = RedisStore(settings["url"], prefix=settings["prefix"])
    guard = Guard.from_path(
        ROOT / "rules", store=store, audit=settings["audit"], audit_key=AUDIT_KEY, max_future=None
    )
    settle()  # the parsed events are the benchmark's, not the evaluator's (bench.settle)
    key = settings["prefix"] + "barrier"
    store.client.incr(key)
    while int(store.client.get(key) or 0) < settings["barrier"]:
        time.sleep(0.001)
    trips = store.round_trips
    # threads of one process take whole payers (as a consumer of a topic keyed by account would), so that
    # one account's payments stay in order; while one thread waits on Redis another computes
    threads = settings.get("threads", 1)
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(threads)]
    for event in events:
        lanes[zlib.crc32(event["payer"]["account"].encode()) % threads].append(event)

    def decide(lane: list[dict[str, Any]]) -> None:
        for event in lane:
            guard.evaluate(event)

    running = [threading.Thread(target=decide, args=(lane,)) for lane in lanes]
    start, cpu = time.perf_counter(), time.process_time()
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {
        "elapsed": elapsed,
        "cpu": cpu,
        "round_trips": store.round_trips - trips,
        "lease_waits": store.lease_waits,
    }
    guard.close()
    Path(settings["out"]).write_text(json.dumps(result), encoding="utf-8")


def _evaluators(
    server: Server, tmp: Path, prefix: str, shares: list[list[dict[str, Any]]], threads: int = 1
) -> tuple[float, int, float, list[dict[str, Any]]]:
    """Run one evaluator process per share at once, each with ``threads`` threads: (wall seconds, events,
    server CPU s, results)."""
    processes, outs = [], []
    for index, share in enumerate(shares):
        events = tmp / f"{prefix}events-{index}.jsonl"
        events.write_text("".join(json.dumps(e) + "\n" for e in share), encoding="utf-8")
        settings = {
            "url": server.url,
            "prefix": prefix,
            "events": str(events),
            "audit": str(tmp / f"{prefix}audit-{index}.jsonl"),
            "out": str(tmp / f"{prefix}out-{index}.json"),
            "barrier": len(shares),
            "threads": threads,
        }
        path = tmp / f"{prefix}settings-{index}.json"
        path.write_text(json.dumps(settings), encoding="utf-8")
        processes.append(subprocess.Popen([sys.executable, __file__, "--worker", str(path)]))
        outs.append(Path(settings["out"]))
    cpu = server.cpu()
    for process in processes:
        if process.wait(timeout=1800) != 0:
            raise RuntimeError("an evaluator process failed")
    cpu = server.cpu() - cpu  # includes the workers' start-up round trips: a few per process
    results = [json.loads(out.read_text(encoding="utf-8")) for out in outs]
    wall = max(result["elapsed"] for result in results)
    return wall, sum(len(share) for share in shares), cpu, results


def bench(
    traffic: Callable[[int], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    table: tuple[Callable[..., None], Callable[..., str], Callable[[float], str]],
    quick: bool,
) -> dict[str, Any]:
    header, row, us = table
    if shutil.which("redis-server") is None:
        print("\n### Redis: skipped (redis-server is not installed: apt-get install redis-server)\n")
        return {"skipped": "redis-server is not installed"}
    from bench import settle

    from payguard import Guard, MemoryStore, RedisStore

    history, events = traffic(3000 if quick else 20000)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        server = Server(directory)
        try:
            print("\n### Redis: guard.record over a loopback RedisStore (AOF everysec), one process\n")
            header("store", "records", "records/s", "round trips", "Redis CPU µs/record")
            for name in ("memory", "redis"):
                store: Any = MemoryStore() if name == "memory" else RedisStore(server.url, prefix="rec:")
                guard = Guard.from_path(ROOT / "rules", store=store, max_future=None)
                # the events are the benchmark's list, which a load from a file never holds: hidden from the
                # collector, as for the decisions (bench.settle), or each full collection traverses them
                settle()
                trips, cpu = getattr(store, "round_trips", 0), server.cpu()
                start = time.perf_counter()
                guard.record(history)
                elapsed = time.perf_counter() - start
                trips, cpu = getattr(store, "round_trips", 0) - trips, server.cpu() - cpu
                rate = len(history) / elapsed
                shown_cpu = us(cpu / len(history)) if name == "redis" else "-"
                print(row(name, len(history), f"{rate:,.0f}", trips, shown_cpu))
                results[f"record_{name}"] = {"records": len(history), "per_s": rate, "round_trips": trips}
                guard.close()

            # the world the evaluators decide: the events' history loaded once per run, under its prefix
            print("\n### Redis: decisions with the default rules and a file audit trail (keyed chain)\n")
            header(
                "evaluator processes",
                "decisions",
                "decisions/s",
                "round trips/event",
                "lease waits/event",
                "evaluator CPU µs/event",
                "Redis CPU µs/event",
            )
            baseline = Guard.from_path(
                ROOT / "rules", audit=str(tmp / "memory-audit.jsonl"), audit_key=AUDIT_KEY, max_future=None
            )
            baseline.record(history)
            settle()
            start, cpu = time.perf_counter(), time.process_time()
            for event in events:
                baseline.evaluate(event)
            rate = len(events) / (time.perf_counter() - start)
            cpu = time.process_time() - cpu
            baseline.close()
            print(
                row(
                    "none: MemoryStore, in process",
                    len(events),
                    f"{rate:,.0f}",
                    "0",
                    "0",
                    us(cpu / len(events)),
                    "-",
                )
            )
            results["memory_per_s"] = rate
            for count, threads in ((1, 1), (2, 1), (1, 2)):
                prefix = f"run{count}x{threads}:"
                loader = Guard.from_path(
                    ROOT / "rules", store=RedisStore(server.url, prefix=prefix), max_future=None
                )
                loader.record(history)
                loader.close()
                shares = [events[n::count] for n in range(count)]
                wall, decided, cpu, runs = _evaluators(server, tmp, prefix, shares, threads)
                trips = sum(run["round_trips"] for run in runs) / decided
                waits = sum(run["lease_waits"] for run in runs) / decided
                client = sum(run["cpu"] for run in runs) / decided
                rate = decided / wall
                print(
                    row(
                        f"{count}" if threads == 1 else f"{count} ({threads} threads)",
                        decided,
                        f"{rate:,.0f}",
                        f"{trips:.2f}",
                        f"{waits:.3f}",
                        us(client),
                        us(cpu / decided),
                    )
                )
                results[f"evaluators_{count}" if threads == 1 else f"evaluators_{count}x{threads}"] = {
                    "decisions": decided,
                    "per_s": rate,
                    "round_trips_per_event": trips,
                    "redis_cpu_us_per_event": cpu / decided * 1e6,
                    "evaluator_cpu_us_per_event": client * 1e6,
                    "lease_waits": sum(run["lease_waits"] for run in runs),
                }
            speedup = results["evaluators_2"]["per_s"] / results["evaluators_1"]["per_s"]
            print(f"\nTwo evaluator processes: {speedup:.2f}x one (2 cores shared with redis-server).")
            results["speedup_2_over_1"] = speedup
            threaded = results["evaluators_1x2"]["per_s"] / results["evaluators_1"]["per_s"]
            print(f"One evaluator process with two threads: {threaded:.2f}x one thread.")
            results["speedup_2_threads_over_1"] = threaded
        finally:
            server.stop()
    return results


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(sys.argv[2])
