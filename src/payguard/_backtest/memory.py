"""Memory helpers of the partitioned replay: copying account histories, pausing the cycle collector."""

from __future__ import annotations

import dataclasses
import gc
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._stores.history import AccountHistory

__all__ = ["copied", "no_cycle_collection"]

_FIELDS = tuple(field.name for field in dataclasses.fields(AccountHistory))


def copied(history: AccountHistory) -> AccountHistory:
    """A copy of ``history`` that shares nothing mutable (its arrays copied; the rest is immutable)."""
    values: dict[str, Any] = {name: getattr(history, name) for name in _FIELDS}
    fields: dict[str, Any] = {name: v[:] if type(v) is array else v for name, v in values.items()}
    return AccountHistory(**fields)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector: a plan or a partition keeps hundreds of thousands of objects alive,
    which every collection traverses again (it tripled the time to read and validate the handbook)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
