"""``--store`` URLs: which store each opens, and what a mistyped one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from payguard import MemoryStore, SQLiteStore, StoreError
from payguard._stores.url import open_store


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
    store = open_store("sqlite://here.db")
    assert isinstance(store, SQLiteStore)
    assert (tmp_path / "here.db").exists()
    store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [("sqlite://", "names no file"), ("postgres://db/payguard", "unknown scheme 'postgres'")],
)
def test_a_url_payguard_cannot_open_says_what_is_wrong_with_it(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says):
        open_store(url)
