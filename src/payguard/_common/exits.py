"""The exit codes every payguard command shares: scripts and orchestrators branch on them."""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_FINDINGS", "EXIT_INTERNAL", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK: Final = 0  # done, nothing found
EXIT_FINDINGS: Final = 1  # done, and something to look at (a failing test, a tampered audit file)
EXIT_USAGE: Final = 2  # the command's arguments: a rule set that does not load, a file that cannot be opened
EXIT_INVALID: Final = 3  # the input: rejected records, unreadable files
EXIT_INTERNAL: Final = 4  # payguard itself (a worker that died)
