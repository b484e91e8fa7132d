"""The installed payguard's version, as decisions' audit records and ``payguard --version`` show it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["PAYGUARD_VERSION"]

try:
    PAYGUARD_VERSION = version("payguard")
except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
    PAYGUARD_VERSION = "0+unknown"
