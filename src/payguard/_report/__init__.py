"""The backtest report of ``payguard replay --report FILE.html``: collected while replaying, rendered once."""

from .collect import Collector
from .html import ReportContext, render_report, write_report

__all__ = ["Collector", "ReportContext", "render_report", "write_report"]
