"""structlog's wrapper class for payguard's audit chain.

Kept out of the compiled modules: mypyc compiles a subclass of a library's Python class (structlog's
``BoundLoggerBase`` here) into code that has crashed, so this one small class stays interpreted.
"""

from __future__ import annotations

from typing import Any, Final

import structlog

__all__ = ["WHOLE", "AuditLogger"]

# the key under which a whole record travels through the logger (``processors.unpack_record`` unwraps it)
WHOLE: Final = "payguard_record"


class AuditLogger(structlog.BoundLoggerBase):
    """One method that runs the processor chain and hands the line to the sink: a custom wrapper class, as
    structlog documents them. The generic ``BoundLogger`` builds a bound method through ``__getattr__`` and
    passes each event through two more calls."""

    def record(self, kind: str, whole: dict[str, Any]) -> None:
        args, kw = self._process_event("msg", None, {"record": kind, WHOLE: whole})
        self._logger.msg(*args, **kw)
