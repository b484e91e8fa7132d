"""The `serve` section of `make bench`: `payguard serve` over loopback against the library call alone.

(Named sidecar.py: a module named serve would be taken for the test package tests/serve.)

Each run starts a fresh server (a new store) as a subprocess and drives it from a separate client process:
asyncio over raw keep-alive HTTP/1.1 connections (uvloop when installed), one connection per concurrent
client, each sending its share of the events one after the other and timing each request from its first
byte sent to its last byte received. The client shares the machine's cores with the server: on a 2-core
machine it takes a good part of one, so the figures are a floor for a server with cores of its own.

Runs: the library alone (memory and SQLite stores, one thread); one worker with the in-memory store,
inline (the shipped mode) and with each call in Starlette's thread pool; one and two workers on one
SQLite file, and on a loopback redis-server where one is installed; 1 and 8 concurrent clients each.
`python benchmarks/sidecar.py client ...` is the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis_store  # the loopback redis-server, beside this file

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


# -- the client process ---------------------------------------------------------------------------------
async def _connection(port: int, bodies: list[bytes], samples: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    for body in bodies:
        request = (
            b"POST /v1/decisions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        started = clock()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        found = _LENGTH.search(head)
        await reader.readexactly(int(found.group(1)) if found else 0)
        samples.append(clock() - started)
        if head[9:12] != b"200":
            errors.append(int(head[9:12]))
    writer.close()
    await writer.wait_closed()


async def _drive(port: int, clients: int, bodies: list[bytes]) -> dict[str, Any]:
    shares = [bodies[n::clients] for n in range(clients)]
    samples: list[list[float]] = [[] for _ in shares]
    errors: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, share, s, errors) for share, s in zip(shares, samples, strict=True))
    )
    elapsed = time.perf_counter() - started
    # the first 5 % of each connection warm the server's caches and the connection up: not counted
    kept = sorted(x for s in samples for x in s[len(s) // 20 :])
    return {
        "rate": len(bodies) / elapsed,
        **_percentiles(kept),
        "errors": len(errors),
        "requests": len(bodies),
    }


def _percentiles(ordered: list[float]) -> dict[str, float]:
    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.5), "p99": at(0.99)}


def client_main(argv: list[str]) -> None:
    port, clients, path = int(argv[0]), int(argv[1]), Path(argv[2])
    bodies = path.read_bytes().splitlines()
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(_drive(port, clients, bodies))))


# -- the section ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(port: int, workers: int, store: str, offload: bool) -> subprocess.Popen[bytes]:
    if offload:  # the thread-pool mode is no option of the command: started through the runner
        code = (
            "import sys; from payguard._serve.options import ServeOptions; from payguard._serve.runner "
            f"import run; sys.exit(run(ServeOptions({str(RULES)!r}, {store!r}, port={port}, "
            "log_level='warning'), offload=True))"
        )
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", "payguard._cli", "serve", "--rules", str(RULES), "--port", str(port)]
        command += ["--store", store, "--workers", str(workers), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def _served(bodies: Path, clients: int, workers: int, store: str, offload: bool = False) -> dict[str, Any]:
    port = _free_port()
    server = _start(port, workers, store, offload)
    try:
        client = [sys.executable, __file__, "client", str(port), str(clients), str(bodies)]
        out = subprocess.run(client, capture_output=True, check=True, timeout=900).stdout
        return dict(json.loads(out))
    finally:
        server.terminate()
        server.wait(20)


def _library(events: list[dict[str, Any]], store: Any) -> dict[str, Any]:
    from payguard import Guard, load_rule_set

    guard = Guard(load_rule_set(RULES), store=store)
    clock = time.perf_counter
    samples = []
    started = clock()
    for event in events:
        t = clock()
        guard.evaluate(event)
        samples.append(clock() - t)
    elapsed = clock() - started
    guard.close()
    kept = sorted(samples[len(samples) // 20 :])
    return {"rate": len(events) / elapsed, **_percentiles(kept), "errors": 0, "requests": len(events)}


def bench(
    traffic: Callable[[int], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    table: tuple[Callable[..., None], Callable[..., str]],
    quick: bool,
) -> dict[str, Any]:
    from payguard import SQLiteStore

    header, row = table
    _, events = traffic(1500 if quick else 6000)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "events.jsonl"
        bodies.write_bytes(b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in events))
        results["library, memory"] = _library(events, None)
        results["library, SQLite"] = _library(events, SQLiteStore(Path(tmp) / "library.db"))
        runs = [
            ("serve, 1 worker, memory", 1, "memory:", False),
            ("serve, 1 worker, memory, thread pool", 1, "memory:", True),
            ("serve, 1 worker, SQLite", 1, "sqlite", False),
            ("serve, 2 workers, SQLite", 2, "sqlite", False),
        ]
        # the shared store whose workers do not take turns on one lock: a loopback redis-server (AOF everysec)
        redis = redis_store.Server(tmp) if shutil.which("redis-server") else None
        if redis is not None:
            runs += [
                ("serve, 1 worker, Redis", 1, "redis", False),
                ("serve, 2 workers, Redis", 2, "redis", False),
            ]
        try:
            for name, workers, store, offload in runs:
                for clients in (1, 8):
                    url = {
                        "sqlite": f"sqlite:///{tmp}/{workers}-{clients}-{offload}.db",
                        "redis": f"{redis.url if redis else ''}?prefix=w{workers}c{clients}:",
                    }.get(store, store)
                    results[f"{name}, {clients} client{'s' if clients > 1 else ''}"] = _served(
                        bodies, clients, workers, url, offload
                    )
        finally:
            if redis is not None:
                redis.stop()
    print(f"\n### payguard serve over loopback: {len(events):,} events of the default rule set per run\n")
    header("run", "decisions/s", "p50 ms", "p99 ms", "non-200")
    for name, figures in results.items():
        rate, p50, p99 = figures["rate"], figures["p50"] * 1e3, figures["p99"] * 1e3
        print(row(name, f"{rate:,.0f}", f"{p50:.2f}", f"{p99:.2f}", figures["errors"]))
    overhead = results["serve, 1 worker, memory, 1 client"]["p50"] - results["library, memory"]["p50"]
    print(f"\nHTTP over the library call at p50 (1 worker, memory, 1 client): {overhead * 1e3:.2f} ms")
    results["http_overhead_p50_s"] = overhead
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client_main(sys.argv[2:])
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench as suite

        os.environ.setdefault("PYTHONHASHSEED", "0")
        bench(suite.traffic, (suite.header, suite.row), "--quick" in sys.argv)
