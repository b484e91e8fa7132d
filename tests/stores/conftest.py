"""The Redis server the store tests share (one a session), and a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """Keys of their own for each test, on the shared server."""
    return f"pgtest-{uuid.uuid4().hex[:12]}:"
