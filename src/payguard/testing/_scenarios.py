"""Running the scenario library on a rule set, judging each step and summarising what the rules did.

    from payguard.testing import run_scenarios
    report = run_scenarios("rules/scenarios", rules="rules/")
    report.summary.must_stop, report.summary.missed, report.summary.money

Each story runs on a fresh guard: its history recorded as executed, then each step evaluated and judged
(``pass``: allow or review; ``stop``: hold or interrupt; ``interrupt``: interrupt; ``any``: not judged). A
step's ``resolve`` is applied with ``Guard.resolve`` right after it when the step was stopped, and
ignored (and reported in the story's notes) when it was not. A ``pass`` step that was stopped counts as
stopped, and is then resolved ``legitimate``, as the bank's call-back would: the story goes on as the
customer lives it, and its later steps are judged after a released stop, not after one left open.
Events are run as written: a later step's balance is the one the writer gave it (as if the earlier
payments went through), whatever was decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from .._decision import Action, Decision, RulesetRef
from .._engine import resolve_engine
from .._errors import InvalidEventError, RuleFileError, RuleProblem
from .._guard import Guard
from .._rules.loader import load_rule_set
from .._rules.model import RuleSet
from ._stories import Story, StoryStep, load_stories

__all__ = [
    "MAX_MONEY_LET_THROUGH",
    "MoneyLetThrough",
    "ScenarioReport",
    "ScenarioSummary",
    "StepResult",
    "StoryResult",
    "run_scenarios",
    "run_story",
]

# issue 17 §3: at most 3 % of the money of must-stop steps let through, in each currency
MAX_MONEY_LET_THROUGH = Decimal("0.03")
_PERCENT = Decimal("0.01")


def _percent(part: Decimal | int, whole: Decimal | int) -> str:
    """``part`` of ``whole`` in percent with two decimals, as a string ("0.00" of nothing)."""
    if not whole:
        return "0.00"
    return str((Decimal(100) * Decimal(part) / Decimal(whole)).quantize(_PERCENT, ROUND_HALF_EVEN))


@dataclass(frozen=True)
class StepResult:
    """What the rule set decided for one step, and whether that meets the step's expectation."""

    story: str
    number: int
    event_id: str
    line: int
    expect: str
    action: Action
    rules: tuple[str, ...]  # the enforced hits
    shadow_rules: tuple[str, ...]
    score: int
    amount: Decimal | None
    currency: str | None
    resolve: str | None = None  # as written in the story, or ``legitimate`` for a stopped ``pass`` step
    resolved: bool = False  # whether it was applied (the step was stopped)

    @property
    def stopped(self) -> bool:
        return self.action in (Action.HOLD, Action.INTERRUPT)

    @property
    def must_stop(self) -> bool:
        """``stop`` or ``interrupt``: an interrupt is a stop too."""
        return self.expect in ("stop", "interrupt")

    @property
    def met(self) -> bool | None:
        """Whether the decision meets ``expect``; ``None`` for ``any`` (not judged)."""
        if self.expect == "pass":
            return not self.stopped
        if self.expect == "stop":
            return self.stopped
        if self.expect == "interrupt":
            return self.action is Action.INTERRUPT
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "event_id": self.event_id,
            "line": self.line,
            "expect": self.expect,
            "action": self.action.value,
            "met": self.met,
            "rules": list(self.rules),
            "shadow_rules": list(self.shadow_rules),
            "score": self.score,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "resolve": self.resolve,
            "resolved": self.resolved,
        }


@dataclass(frozen=True)
class StoryResult:
    """One story's steps as decided, and notes (a ``resolve`` ignored because its step was not stopped)."""

    id: str
    path: str
    kind: str
    title: str
    steps: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def failing(self) -> tuple[StepResult, ...]:
        """The judged steps whose decision does not meet their expectation."""
        return tuple(step for step in self.steps if step.met is False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "kind": self.kind,
            "title": self.title,
            "failing": [step.number for step in self.failing],
            "notes": list(self.notes),
            "steps": [step.to_dict() for step in self.steps],
        }


@dataclass(frozen=True)
class MoneyLetThrough:
    """In one currency: the amounts of the must-stop steps, and of those the rules let through."""

    must_stop: Decimal = Decimal(0)
    let_through: Decimal = Decimal(0)

    @property
    def share(self) -> Decimal:
        """``let_through / must_stop`` (0 when no money had to be stopped)."""
        return self.let_through / self.must_stop if self.must_stop else Decimal(0)

    def to_dict(self) -> dict[str, str]:
        return {
            "must_stop": str(self.must_stop),
            "let_through": str(self.let_through),
            "percent": _percent(self.let_through, self.must_stop),
        }


@dataclass(frozen=True)
class ScenarioSummary:
    """The counts over every story run on one rule set.

    Must-stop steps are those expecting ``stop`` or ``interrupt``; must-pass steps those expecting
    ``pass``, in any kind of story (a scam story may hold the victim's ordinary payments before the scam).
    Money is summed per currency; ``combined`` adds the currencies up in the rule set's own at its header's
    reference rates (``fx``), and ``unconverted`` names those it has no rate for.
    """

    stories: int
    steps: int
    judged: int
    unmet: int
    must_stop: int
    stopped: int
    must_interrupt: int
    interrupted: int
    must_pass: int
    pass_stopped: int
    pass_interrupted: int
    resolves_ignored: int
    money: Mapping[str, MoneyLetThrough] = field(default_factory=dict)
    combined: MoneyLetThrough | None = None
    combined_currency: str | None = None
    unconverted: tuple[str, ...] = ()

    @property
    def missed(self) -> int:
        """Must-stop steps the rules let through (allowed or reviewed)."""
        return self.must_stop - self.stopped

    @classmethod
    def of(
        cls,
        stories: Iterable[StoryResult],
        currency: str | None = None,
        rates: Mapping[str, Decimal] | None = None,
    ) -> ScenarioSummary:
        """The summary of ``stories``; with the rule set's ``currency`` and reference ``rates``, also the
        money of every currency they convert, in that currency."""
        stories = list(stories)
        steps = [step for story in stories for step in story.steps]
        money: dict[str, MoneyLetThrough] = {}
        for step in steps:
            if step.must_stop and step.amount is not None and step.currency is not None:
                before = money.get(step.currency, MoneyLetThrough())
                missed = Decimal(0) if step.stopped else step.amount
                money[step.currency] = MoneyLetThrough(
                    before.must_stop + step.amount, before.let_through + missed
                )
        combined: MoneyLetThrough | None = None
        unconverted: tuple[str, ...] = ()
        if currency is not None:
            known = {currency: Decimal(1), **(rates or {})}
            combined = MoneyLetThrough(
                sum((row.must_stop * known[c] for c, row in money.items() if c in known), Decimal(0)),
                sum((row.let_through * known[c] for c, row in money.items() if c in known), Decimal(0)),
            )
            unconverted = tuple(sorted(c for c in money if c not in known))
        stop = [s for s in steps if s.must_stop]
        must_interrupt = [s for s in steps if s.expect == "interrupt"]
        must_pass = [s for s in steps if s.expect == "pass"]
        return cls(
            stories=len(stories),
            steps=len(steps),
            judged=sum(s.met is not None for s in steps),
            unmet=sum(s.met is False for s in steps),
            must_stop=len(stop),
            stopped=sum(s.stopped for s in stop),
            must_interrupt=len(must_interrupt),
            interrupted=sum(s.action is Action.INTERRUPT for s in must_interrupt),
            must_pass=len(must_pass),
            pass_stopped=sum(s.stopped for s in must_pass),
            pass_interrupted=sum(s.action is Action.INTERRUPT for s in must_pass),
            resolves_ignored=sum(len(story.notes) for story in stories),
            money=dict(sorted(money.items())),
            combined=combined,
            combined_currency=currency,
            unconverted=unconverted,
        )

    def unmet_targets(self, max_money_let_through: Decimal = MAX_MONEY_LET_THROUGH) -> list[str]:
        """The targets of issue 17 §3 this rule set misses, as sentences (empty: all met): every must-stop
        step stopped, every must-interrupt step interrupted, every must-pass step passed, and in each
        currency at most ``max_money_let_through`` of the must-stop money let through."""
        unmet = []
        if self.missed:
            unmet.append(f"{self.missed} of {self.must_stop} must-stop steps were let through")
        if self.interrupted < self.must_interrupt:
            unmet.append(
                f"{self.must_interrupt - self.interrupted} of {self.must_interrupt} must-interrupt "
                "steps were not interrupted"
            )
        if self.pass_stopped:
            unmet.append(f"{self.pass_stopped} of {self.must_pass} must-pass steps were stopped")
        for currency, row in self.money.items():
            if row.share > max_money_let_through:
                unmet.append(
                    f"{_percent(row.let_through, row.must_stop)} % of the must-stop money in {currency} "
                    f"was let through (at most {_percent(max_money_let_through, 1)} %)"
                )
        return unmet

    def to_dict(self) -> dict[str, Any]:
        return {
            "stories": self.stories,
            "steps": self.steps,
            "judged": self.judged,
            "unmet": self.unmet,
            "must_stop": {"steps": self.must_stop, "stopped": self.stopped, "missed": self.missed},
            "must_interrupt": {"steps": self.must_interrupt, "interrupted": self.interrupted},
            "must_pass": {
                "steps": self.must_pass,
                "stopped": self.pass_stopped,
                "stopped_percent": _percent(self.pass_stopped, self.must_pass),
                "interrupted": self.pass_interrupted,
            },
            "money_let_through": {currency: row.to_dict() for currency, row in self.money.items()},
            "money_let_through_combined": (
                None
                if self.combined is None
                else {
                    **self.combined.to_dict(),
                    "currency": self.combined_currency,
                    "not_converted": list(self.unconverted),
                }
            ),
            "resolves_ignored": self.resolves_ignored,
        }


@dataclass(frozen=True)
class ScenarioReport:
    """Every story's result on one rule set, and their summary."""

    ruleset: RulesetRef
    engine: str
    stories: tuple[StoryResult, ...]
    # the rule set's currency and reference rates, to add the currencies' money up (``summary.combined``)
    currency: str | None = None
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def summary(self) -> ScenarioSummary:
        return ScenarioSummary.of(self.stories, self.currency, self.rates)

    @property
    def ok(self) -> bool:
        """Whether every judged step met its expectation."""
        return all(not story.failing for story in self.stories)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset.to_dict(),
            "engine": self.engine,
            "ok": self.ok,
            "summary": self.summary.to_dict(),
            "stories": [story.to_dict() for story in self.stories],
        }


def run_story(story: Story, ruleset: RuleSet, *, engine: str = "auto") -> StoryResult:
    """Run one story on a fresh guard over ``ruleset`` and judge each step.

    An event the rule set refuses (an attribute of the wrong type for its declarations) raises
    ``RuleFileError`` at the story's line for it.
    """
    guard = Guard(ruleset, engine=engine, on_error="raise", max_future=None)  # stories run in event time
    try:
        try:
            guard.record(story.history)
        except InvalidEventError as exc:
            raise _refused(story, 1, f"history: {exc}") from None
        results: list[StepResult] = []
        notes: list[str] = []
        for step in story.steps:
            try:
                decision = guard.evaluate(step.event)
            except InvalidEventError as exc:
                raise _refused(story, step.line, f"step {step.number}: {exc}") from None
            resolved = False
            outcome = step.resolve
            if outcome is None and step.expect == "pass" and decision.stopped:
                outcome = "legitimate"  # an ordinary payment held: the customer confirms it on the call
            if outcome is not None:
                if decision.stopped:
                    guard.resolve(decision.decision_id, outcome)
                    resolved = True
                else:
                    notes.append(
                        f"step {step.number} (event {step.event_id!r}): resolve: {step.resolve} ignored, "
                        f"the step was {decision.action.value}"
                    )
            results.append(_result(story, step, decision, outcome if resolved else step.resolve, resolved))
    finally:
        guard.close()
    return StoryResult(story.id, story.path, story.kind, story.title, tuple(results), tuple(notes))


def _refused(story: Story, line: int, message: str) -> RuleFileError:
    return RuleFileError([RuleProblem(story.path, line, 1, "invalid_event", f"story {story.id!r} {message}")])


def _result(
    story: Story, step: StoryStep, decision: Decision, resolve: str | None, resolved: bool
) -> StepResult:
    return StepResult(
        story=story.id,
        number=step.number,
        event_id=step.event_id,
        line=step.line,
        expect=step.expect,
        action=decision.action,
        rules=tuple(hit.rule_id for hit in decision.hits),
        shadow_rules=tuple(hit.rule_id for hit in decision.shadow_hits),
        score=decision.score,
        amount=step.amount,
        currency=step.currency,
        resolve=resolve,
        resolved=resolved,
    )


def run_scenarios(
    paths: Iterable[str | Path | Story] | str | Path,
    *,
    rules: RuleSet | str | Path,
    engine: str = "auto",
) -> ScenarioReport:
    """Run every story at or under ``paths`` (files, directories, or ``Story`` values) on ``rules``.

    Raises ``RuleFileError`` listing every problem when a story file or the rule set does not load.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    given = list(paths)
    stories = [s for s in given if isinstance(s, Story)]
    stories += load_stories([p for p in given if not isinstance(p, Story)])
    ruleset = rules if isinstance(rules, RuleSet) else load_rule_set(rules)
    results = tuple(run_story(story, ruleset, engine=engine) for story in stories)
    ref = RulesetRef(ruleset.id, ruleset.version, ruleset.digest)
    return ScenarioReport(ref, resolve_engine(engine), results, ruleset.currency, dict(ruleset.fx))
