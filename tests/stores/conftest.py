"""The Redis server the store tests share (one a session), and a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, RuleSet, Store, load_rule_set

from ..conftest import rules_text
from ..test_lifecycle import LIFECYCLE_RULES
from .redis_server import RedisServer, require_redis_6_2


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_6_2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The oldest Redis payguard supports: no Functions, so the store runs its scripts."""
    server = RedisServer(tmp_path_factory.mktemp("redis-6.2"), binary=require_redis_6_2())
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """Keys of their own for each test, on the shared server."""
    return f"pgtest-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="module")
def lifecycle_rules_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lifecycle tests' rules (a hold for large payments, an interrupt for listed payees), in a file."""
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(rules_text(LIFECYCLE_RULES), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lifecycle_rules(lifecycle_rules_path: Path) -> RuleSet:
    return load_rule_set(lifecycle_rules_path)


Replicas = Callable[..., list[Guard]]


def guards_on(open_store: Callable[..., Store], rules: RuleSet) -> Iterator[Replicas]:
    """For a fixture: ``make(n, store={...}, audit=...)`` makes n guards, each over a store object of its
    own (``open_store(**store)``), as n processes would; all are closed when the test ends."""
    opened: list[Guard] = []

    def make(count: int = 2, **options: Any) -> list[Guard]:
        store_options = options.pop("store", {})
        guards = [
            Guard(rules, engine="python", store=open_store(**store_options), max_future=None, **options)
            for _ in range(count)
        ]
        opened.extend(guards)
        return guards

    yield make
    for guard in opened:
        guard.close()
