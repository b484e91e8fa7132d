"""Open a store from the URL an operator writes on a command line (``--store``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._errors import StoreError
from .interface import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["open_store"]


def open_store(url: str) -> Store:
    """The store ``url`` names: ``memory:`` (this process only), ``sqlite:///path/to/file.db`` or a plain
    file path (SQLite)."""
    if url in ("memory", "memory:", "memory://"):
        return MemoryStore()
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite://")
        if not path or path == "/":
            raise StoreError(f"store URL {url!r} names no file: write sqlite:///path/to/file.db")
        # sqlite:///abs.db -> /abs.db, sqlite://rel.db -> rel.db (as SQLAlchemy writes them)
        return SQLiteStore(path[1:] if path.startswith("//") else path)
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive: a path
        raise StoreError(
            f"store URL {url!r}: unknown scheme {scheme!r} (memory:, sqlite:///FILE or a file path)"
        )
    return SQLiteStore(url)
