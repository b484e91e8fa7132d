"""``--store`` URLs: which store each opens, and what a mistyped one says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from payguard import MemoryStore, RedisStore, SQLiteStore, StoreError
from payguard._cli import main
from payguard._stores.url import open_store

from ..conftest import ROOT
from .redis_server import RedisServer


def test_memory_opens_a_fresh_in_process_store() -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    assert open_store("memory:") is not open_store("memory:")


@pytest.mark.parametrize("form", ["sqlite:///{path}", "{path}"])
def test_a_sqlite_url_or_a_plain_path_opens_that_file(tmp_path: Path, form: str) -> None:
    path = tmp_path / "payguard.db"
    store = open_store(form.format(path=path))
    assert isinstance(store, SQLiteStore)
    assert Path(store.path) == path
    assert path.exists()
    store.close()


def test_a_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///here.db")
    assert isinstance(store, SQLiteStore)
    assert (tmp_path / "here.db").exists()
    store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "names no file"),
        ("sqlite://here.db", "names no file: write sqlite:///relative.db"),
        ("postgres://db/payguard", "unknown scheme 'postgres'"),
    ],
)
def test_a_url_payguard_cannot_open_says_what_is_wrong_with_it(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says):
        open_store(url)


def test_a_redis_url_opens_a_redis_store_with_the_prefix_its_query_names(redis_server: RedisServer) -> None:
    store = open_store(f"{redis_server.url}?prefix=bank-7:")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.url) == ("bank-7:", redis_server.url)
    store.close()
    assert open_store(redis_server.url).prefix == "pg:"  # type: ignore[attr-defined]


def test_replay_over_a_redis_store_decides_as_in_memory_and_keeps_its_decisions_there(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    args = ["replay", str(ROOT / "examples" / "transactions.jsonl"), "--rules", str(ROOT / "rules")]
    args += ["--audit-key", "a test audit key, 32 bytes long.."]

    def replay(*extra: str) -> list[str]:
        out = tmp_path / "decisions.jsonl"
        result = CliRunner().invoke(main, [*args, "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        return out.read_text(encoding="utf-8").splitlines()

    in_memory = replay()
    over_redis = replay("--store", f"{redis_server.url}?prefix={redis_prefix}")
    assert over_redis == in_memory
    assert len(in_memory) > 400
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    with store.transaction() as txn:
        assert txn.decision(json.loads(over_redis[0])["event_id"]) is not None
    store.close()
    assert replay("--store", f"{redis_server.url}?prefix={redis_prefix}") == [], "all decided before"


def test_a_store_url_replay_cannot_open_is_a_usage_error(tmp_path: Path) -> None:
    args = ["replay", str(ROOT / "examples" / "transactions.jsonl"), "--rules", str(ROOT / "rules")]
    result = CliRunner().invoke(main, [*args, "--store", "postgres://db/payguard"])
    assert result.exit_code == 2
    assert "--store: store URL 'postgres://db/payguard': unknown scheme 'postgres'" in result.output
