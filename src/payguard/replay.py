"""Replays and backtests: a rule set run over transaction files as live evaluation would have run it.

``order(files)`` is the canonical replay order, the one both the serial ``replay`` and the partitioned
backtests (``payguard.backtest``) number events by.
"""

from __future__ import annotations

from ._replay import REORDER_WINDOW, ReplaySummary, decision_row, order, parse_duration, replay

__all__ = ["REORDER_WINDOW", "ReplaySummary", "decision_row", "order", "parse_duration", "replay"]
