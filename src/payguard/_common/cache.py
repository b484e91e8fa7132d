"""The caches of the per-event path: plain dicts emptied when they are full.

Account keys and hashes, normalised texts, keyword answers, masked identifiers and the UTC offsets of
zones by hour are remembered this way. ``functools.lru_cache`` would also keep its entries in recency
order, a linked list whose neighbours every hit rewrites: over tens of thousands of accounts those are
cache misses, slower than the lookup itself. Emptying a full cache costs a few recomputations; the dict
operations are atomic, so threads may share a cache.
"""

from __future__ import annotations

from typing import Final, TypeVar

__all__ = ["CACHE_SIZE", "remember"]

CACHE_SIZE: Final = 1 << 16

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, size: int = CACHE_SIZE) -> V:
    """``value``, stored in ``cache`` under ``key`` (the cache is emptied first if it holds ``size``)."""
    if len(cache) >= size:
        cache.clear()
    cache[key] = value
    return value
