"""Matching: a rule set's fact plan, and the matchers that test a fact against every rule.

Two matchers implement ``Matcher`` with the same semantics: durable_rules' C core (``durable``) and
generated Python (``python``, the reference and the oracle the other is tested against).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from .._errors import PayguardError
from .._event import Event
from . import durable
from .fact import Fact, Plan
from .python import PythonMatcher

__all__ = ["ENGINES", "Matcher", "make_matcher", "resolve_engine"]

ENGINES: Final = ("auto", "durable", "python")


class Matcher(Protocol):
    """Tests a rule set's rules against one event; returns the indices of the rules that matched."""

    @property
    def name(self) -> str:
        """The engine's name, as decisions report it."""

    def match(self, fact: Fact) -> list[int]:
        """The rules a ready fact (``Plan.fact``) matches."""

    def match_event(
        self,
        event: Event,
        features: Mapping[str, Any],
        lists: Mapping[str, frozenset[str]],
        minor: Mapping[str, int],
    ) -> list[int]:
        """The rules ``event`` matches, given its features, the named lists and money in minor units."""


def resolve_engine(engine: str) -> str:
    """``engine`` as a matcher's name: ``auto`` is durable_rules where it imports, else Python."""
    if engine not in ENGINES:
        raise PayguardError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "auto":
        return "durable" if durable.AVAILABLE else "python"
    return engine


def make_matcher(plan: Plan, engine: str = "auto") -> Matcher:
    """The matcher of ``engine`` (see ``ENGINES``) for ``plan``; ``EngineError`` if it cannot run here."""
    if resolve_engine(engine) == "durable":
        return durable.DurableMatcher(plan)
    return PythonMatcher(plan)
