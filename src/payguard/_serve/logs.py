"""The server's log: one JSON line per request on stderr, never an account number, never the audit trail.

The logger is payguard's own (``structlog.wrap_logger``): the server never calls ``structlog.configure()``,
so an application that embeds the app keeps its own logging set-up.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog

__all__ = ["request_logger"]


def _timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return event_dict


def _render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def request_logger(level: str = "info", stream: TextIO | None = None) -> Any:
    """A structlog logger writing JSON lines at ``level`` (debug, info, warning, error) and above."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream if stream is not None else sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        cache_logger_on_first_use=True,
    )
