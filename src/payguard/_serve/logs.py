"""The server's log: one JSON line per request on stderr, never an account number, never the audit trail.

The logger is payguard's own (``structlog.wrap_logger``): the server never calls ``structlog.configure()``,
so an application that embeds the app keeps its own logging set-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

__all__ = ["request_logger"]


def _timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return event_dict


def _render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> bytes:
    return orjson.dumps(event_dict, default=str, option=orjson.OPT_APPEND_NEWLINE)


class _LineWriter:
    """Writes each line with one ``write(2)``: the workers of ``--workers N`` share one stderr, and a line
    written in pieces (as ``print`` writes the text, then the newline) can be cut by another worker's."""

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd

    def msg(self, line: bytes) -> None:
        view = memoryview(line)
        while view:  # a line longer than the pipe's buffer may go out in parts; the rest follows
            view = view[os.write(self._fd, view) :]

    log = debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg


def request_logger(level: str = "info", fd: int = 2) -> Any:
    """A structlog logger writing JSON lines at ``level`` (debug, info, warning, error) and above, to the
    file descriptor ``fd`` (stderr)."""
    return structlog.wrap_logger(
        _LineWriter(fd),
        processors=[
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        cache_logger_on_first_use=True,
    )
