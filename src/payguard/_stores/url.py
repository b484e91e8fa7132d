"""Open a store from the URL an operator writes on a command line (``--store``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import StoreError
from .interface import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["open_store"]


def open_store(url: str) -> Store:
    """The store ``url`` names: ``memory:`` (this process only), ``sqlite:///relative/file.db``,
    ``sqlite:////absolute/file.db`` (SQLAlchemy's form) or a plain file path (SQLite),
    ``redis://[:password@]host:port/db``, ``rediss://`` (TLS) or ``unix:///path/to/redis.sock`` (a
    ``RedisStore``, shared by every process that opens it; ``?prefix=`` sets its key prefix)."""
    if url in ("memory", "memory:", "memory://"):
        return MemoryStore()
    scheme = urlsplit(url).scheme
    if scheme in _REDIS_SCHEMES:
        return _redis_store(url)
    if scheme == "sqlite":
        # as SQLAlchemy reads them: sqlite:///rel.db is relative, sqlite:////abs.db absolute
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(
                f"store URL {url!r} names no file: write sqlite:///relative.db or sqlite:////absolute.db"
            )
        return SQLiteStore(path)
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive: a path
        raise StoreError(
            f"store URL {url!r}: unknown scheme {scheme!r} (memory:, sqlite:///FILE, redis://HOST:PORT/DB, "
            "rediss://, unix:///SOCKET or a file path)"
        )
    return SQLiteStore(url)


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_store(url: str) -> Store:
    from .redis import RedisStore  # redis-py is an extra: imported only for a Redis URL

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    rest = urlunsplit(parts._replace(query=urlencode([(n, v) for n, v in query if n != "prefix"])))
    if prefixes:
        return RedisStore(rest, prefix=prefixes[-1])
    return RedisStore(rest)
