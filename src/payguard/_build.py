"""Which of payguard's modules run compiled by mypyc in this interpreter, and whether any is out of date.

The modules on the per-event path are compiled when the package is built (see ``pyproject.toml``). An
editable install compiles them next to their source, so after the source is edited the compiled module is
stale until the next install: ``python -m payguard._build`` exits 1 then (or when a module is not
compiled for this interpreter), which is how ``make`` knows to reinstall, and the test suite refuses to run
against stale modules.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

__all__ = ["COMPILED", "compiled_modules", "stale_modules"]

COMPILED = (
    "_audit.processors",
    "_audit.sinks",
    "_audit.trail",
    "_audit.record",
    "_common.cache",
    "_common.money",
    "_common.text",
    "_common.time",
    "_decision",
    "_engine.durable",
    "_engine.fact",
    "_features.calculator",
    "_features.catalogue",
    "_features.context",
    "_guard",
    "_pipeline",
    "_stores.codec",
    "_stores.history",
    "_stores.memory",
    "_stores.redis",
    "_stores.rows",
)
_PACKAGE = Path(__file__).resolve().parent
# Only a source checkout (an editable install) can have compiled modules older than their source: an
# installed wheel writes both at install time, in no particular order.
_CHECKOUT = (_PACKAGE.parent.parent / "pyproject.toml").exists()


def _origin(name: str) -> Path | None:
    """The file a fresh import of ``payguard.<name>`` loads (an extension module wins over source).

    Searched afresh: a compiled module that is already imported may report another ``__file__``.
    """
    folder = _PACKAGE.joinpath(*name.split(".")[:-1])
    spec = importlib.machinery.PathFinder.find_spec(f"payguard.{name}", [str(folder)])
    return Path(spec.origin) if spec is not None and spec.origin else None


def _source(name: str) -> Path:
    return _PACKAGE.joinpath(*name.split(".")).with_suffix(".py")


def compiled_modules() -> dict[str, bool]:
    """For each module mypyc compiles, whether this interpreter loads it compiled."""
    found = {}
    for name in COMPILED:
        origin = _origin(name)
        found[name] = origin is not None and origin.name.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        )
    return found


def stale_modules() -> list[str]:
    """Compiled modules older than their source beside them (an editable install not rebuilt)."""
    if not _CHECKOUT:
        return []
    stale = []
    for name in COMPILED:
        origin, source = _origin(name), _source(name)
        compiled = origin is not None and origin.suffix != ".py"
        if (
            compiled
            and origin is not None
            and source.exists()
            and origin.stat().st_mtime < source.stat().st_mtime
        ):
            stale.append(name)
    return stale


def main() -> int:
    compiled, stale = compiled_modules(), stale_modules()
    missing = [name for name, ok in compiled.items() if not ok]
    if stale:
        print(f"payguard: compiled modules older than their source: {', '.join(stale)}", file=sys.stderr)
    if missing:
        print(f"payguard: not compiled for this interpreter: {', '.join(missing)}", file=sys.stderr)
    return 1 if stale or missing else 0


if __name__ == "__main__":
    sys.exit(main())
