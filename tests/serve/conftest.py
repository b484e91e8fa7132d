"""The real server in a subprocess on a free loopback port, and events for it."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import ROOT

RULES = ROOT / "rules"
AUDIT_KEY = "serve-tests-audit-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``payguard serve`` started with ``args``; ``client`` calls it; ``stop()`` sends SIGTERM."""

    def __init__(self, tmp: Path, *args: str, rules: Path = RULES, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "payguard._cli",
            "serve",
            "--rules",
            str(rules),
            "--port",
            str(self.port),
        ]
        self._stderr = self.log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, "PAYGUARD_AUDIT_KEY": AUDIT_KEY, **(env or {})},
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        # with --workers N, /ready answers as soon as one worker is up: the others may still be importing
        self.workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 0
        self.wait_up()

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if self.client.get("/ready").status_code == 200 and self.started_workers() >= self.workers:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not become ready in {timeout} s:\n{self.log.read_text()}")

    def started_workers(self) -> int:
        return sum(1 for line in self.log_lines() if line.get("event") == "starting" and "worker" in line)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; the exit code, which must come within ``timeout`` seconds."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._stderr.close()

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines the server wrote to stderr so far (not a line it is still writing)."""
        complete = self.log.read_text(encoding="utf-8").rpartition("\n")[0]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def kill(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """``start(*args, rules=...)`` starts a server; every one still running at the end is killed."""
    servers: list[Server] = []

    def starter(*args: str, rules: Path = RULES, env: dict[str, str] | None = None) -> Server:
        server = Server(tmp_path, *args, rules=rules, env=env)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.kill()


BASE: dict[str, Any] = {
    "type": "transfer_out",
    "currency": "CNY",
    "channel": "mobile_app",
    "payer": {"account": "6222000011112222", "name": "Wang Fang", "age": 40, "balance_before": "80000.00"},
    "payee": {"account": "6222000033334444", "name": "Li Lei", "type": "personal"},
}

MEMOS = ("rent", "dinner", "转到安全账户配合调查", "lunch", "注销学生贷款", "gift")


def client_events(client: int, count: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` events of customer ``client`` (own payer and payees, no account shared with another
    client), one a minute from ``start``: ordinary payments, repeats to a payee, large amounts, scam memos."""
    start = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(days=client)
    events = []
    for n in range(count):
        event = copy.deepcopy(BASE)
        event["id"] = f"c{client}-e{n}"
        event["timestamp"] = (start + timedelta(minutes=n)).isoformat()
        event["payer"]["account"] = f"62220{client:03d}00000001"
        event["payee"]["account"] = f"62229{client:03d}{n % 4:08d}"
        event["amount"] = str([120, 35000, 800, 60000, 15, 9999][n % 6]) + ".00"
        event["memo"] = MEMOS[(n + client) % len(MEMOS)]
        events.append(event)
    return events


def essence(decision: dict[str, Any]) -> dict[str, Any]:
    """What must agree between the server and the library: everything but ids and clocks."""
    return {
        key: decision.get(key)
        for key in ("event_id", "action", "hits", "shadow_hits", "ruleset", "features", "score")
    }


def scam_event(client: int) -> dict[str, Any]:
    """A payment the default rule set interrupts: the memo speaks of a "safe account"."""
    event = client_events(client, 1)[0]
    event["id"] = f"c{client}-scam"
    event["memo"] = "转到安全账户配合调查"
    return event
