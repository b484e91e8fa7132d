"""Scenario stories: the format of ``rules/scenarios/`` (described in its README), read and validated.

A story is a sequence of canonical events over days or weeks, with what must happen at each step::

    id: scam-police-safe-account        # the file's name without .yaml
    kind: scam                          # scam | ordinary
    title: ...
    source: ...                         # scam: the published case; ordinary: the rationale
    story: ...
    defaults: {currency: CNY}           # merged under every event (dicts merge, other values replace)
    history: [ ...events... ]           # recorded as executed, not judged
    steps:
      - event: {...}
        expect: interrupt               # pass | stop | interrupt | any
        resolve: fraud                  # optional: legitimate | fraud | cancelled, applied right after
        why: ...

Every problem of every file is collected and raised as one ``RuleFileError``, each at its line and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .._errors import InvalidEventError, RuleFileError, RuleProblem
from .._event import Event, parse_event
from ._yaml import Reader, merge, plain, read_yaml

__all__ = [
    "EXPECTATIONS",
    "KINDS",
    "OUTCOMES",
    "Story",
    "StoryStep",
    "find_story_files",
    "load_stories",
    "load_story",
]

KINDS = ("scam", "ordinary")
EXPECTATIONS = ("pass", "stop", "interrupt", "any")
OUTCOMES = ("legitimate", "fraud", "cancelled")
_REQUIRED = ("id", "kind", "title", "source", "story", "steps")
_FILE_KEYS = ("id", "kind", "typology", "title", "source", "story", "defaults", "history", "steps")
_STEP_KEYS = ("event", "expect", "resolve", "why")
_TEXT_KEYS = ("id", "kind", "typology", "title", "source", "story")


@dataclass(frozen=True)
class StoryStep:
    """One decided event of a story and what must happen to it."""

    number: int  # 1-based, as a reader counts the steps
    event: Mapping[str, Any]  # the canonical dict, defaults merged in
    expect: str
    resolve: str | None
    why: str
    line: int
    amount: Decimal | None
    currency: str | None

    @property
    def event_id(self) -> str:
        return str(self.event["id"])

    @property
    def must_stop(self) -> bool:
        """``stop`` or ``interrupt``: an interrupt is a stop too."""
        return self.expect in ("stop", "interrupt")


@dataclass(frozen=True)
class Story:
    """A scam or ordinary-life story: its history, then its steps in time order."""

    id: str
    path: str
    kind: str
    typology: str | None
    title: str
    history: tuple[Mapping[str, Any], ...]
    steps: tuple[StoryStep, ...]


def find_story_files(paths: Iterable[str | Path]) -> list[Path]:
    """The story files (``*.yaml``, ``*.yml``) at or under ``paths``, each directory's sorted by path."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise RuleFileError([RuleProblem(str(path), 1, 1, "file_not_found", "no such file or directory")])
    return found


def load_stories(paths: Iterable[str | Path] | str | Path) -> tuple[Story, ...]:
    """Every story at or under ``paths``, validated; ``RuleFileError`` lists every problem of every file.

    Besides each file's own problems: two files may not share a story id.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    problems: list[RuleProblem] = []
    stories: list[Story] = []
    seen: dict[str, str] = {}
    for path in find_story_files(paths):
        try:
            story = load_story(path)
        except RuleFileError as exc:
            problems += exc.problems
            continue
        if story.id in seen:
            problems.append(
                RuleProblem(
                    story.path, 1, 1, "duplicate_id", f"story id {story.id!r} is also {seen[story.id]}"
                )
            )
            continue
        seen[story.id] = story.path
        stories.append(story)
    if problems:
        raise RuleFileError(problems)
    return tuple(stories)


def load_story(path: str | Path) -> Story:
    """Read and validate one story file; ``RuleFileError`` lists its problems, each with its position."""
    path = Path(path)
    reader = Reader(path)
    doc = read_yaml(path)
    if not reader.keys(doc, _FILE_KEYS, "story"):
        raise RuleFileError(reader.problems)
    for key in _REQUIRED:
        if key not in doc:
            reader.problem(doc, None, "missing_field", f"a story needs {key!r}")
    for key in _TEXT_KEYS:
        if key in doc and not (isinstance(doc[key], str) and doc[key].strip()):
            reader.problem(doc, key, "invalid_type", f"{key} must be a non-empty string")
    story_id = str(doc.get("id", path.stem))
    if isinstance(doc.get("id"), str) and story_id != path.stem:
        reader.problem(
            doc, "id", "invalid_value", f"the id must be the file's name {path.stem!r}, not {story_id!r}"
        )
    if isinstance(doc.get("kind"), str) and doc["kind"] not in KINDS:
        reader.problem(
            doc, "kind", "invalid_value", f"kind must be one of {', '.join(KINDS)}, not {doc['kind']!r}"
        )
    defaults = doc.get("defaults") or CommentedMap()
    if not isinstance(defaults, CommentedMap):
        reader.problem(doc, "defaults", "invalid_type", "defaults must be a mapping")
        defaults = CommentedMap()
    events = _Events(reader, story_id, defaults)
    history = tuple(
        event
        for index, node in enumerate(_sequence(reader, doc, "history"))
        if (event := events.read(doc["history"], index, node, f"history event {index + 1}")) is not None
    )
    steps = tuple(
        step
        for index, node in enumerate(_sequence(reader, doc, "steps"))
        if (step := _step(reader, events, doc["steps"], index, node)) is not None
    )
    if "steps" in doc and not steps and not reader.problems:
        reader.problem(doc, "steps", "missing_field", "a story needs at least one step")
    if reader.problems:
        raise RuleFileError(reader.problems)
    return Story(
        id=story_id,
        path=str(path),
        kind=str(doc["kind"]),
        typology=None if doc.get("typology") is None else str(doc["typology"]),
        title=str(doc["title"]),
        history=history,
        steps=steps,
    )


def _sequence(reader: Reader, doc: CommentedMap, key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, CommentedSeq):
        reader.problem(doc, key, "invalid_type", f"{key} must be a list")
        return []
    return list(value)


def _step(reader: Reader, events: _Events, seq: CommentedSeq, index: int, node: Any) -> StoryStep | None:
    number = index + 1
    if not reader.keys(node, _STEP_KEYS, "step"):
        return None
    expect = node.get("expect")
    if "expect" not in node:
        reader.problem(
            seq, index, "missing_field", f"step {number} needs 'expect' ({', '.join(EXPECTATIONS)})"
        )
    elif expect not in EXPECTATIONS:
        reader.problem(
            node,
            "expect",
            "invalid_value",
            f"expect must be one of {', '.join(EXPECTATIONS)}, not {expect!r}",
        )
    resolve = node.get("resolve")
    if resolve is not None and resolve not in OUTCOMES:
        reader.problem(
            node, "resolve", "invalid_value", f"resolve must be one of {', '.join(OUTCOMES)}, not {resolve!r}"
        )
    elif resolve is not None and expect == "pass":
        # a payment that must pass is never stopped, so there is nothing to resolve
        reader.problem(
            node, "resolve", "invalid_value", "resolve follows a step that must stop, not one that must pass"
        )
    if "event" not in node:
        reader.problem(seq, index, "missing_field", f"step {number} needs an 'event'")
        return None
    event = events.read(node, "event", node["event"], f"step {number}")
    if event is None or expect not in EXPECTATIONS:
        return None
    parsed = events.parsed[str(event["id"])]
    return StoryStep(
        number=number,
        event=event,
        expect=str(expect),
        resolve=None if resolve not in OUTCOMES else str(resolve),
        why=str(node.get("why") or ""),
        line=reader.line(node),
        amount=parsed.amount,
        currency=parsed.currency,
    )


class _Events:
    """Reads a story's events in order: defaults merged, ids unique, each validated by ``parse_event``,
    history before the steps and the steps in time order."""

    def __init__(self, reader: Reader, story_id: str, defaults: CommentedMap) -> None:
        self.reader = reader
        self.story_id = story_id
        self.defaults_node = defaults
        self.defaults = plain(defaults)
        self.parsed: dict[str, Event] = {}
        self.last: Event | None = None

    def read(self, parent: Any, key: Any, node: Any, where: str) -> dict[str, Any] | None:
        reader = self.reader
        if not isinstance(node, CommentedMap):
            reader.problem(parent, key, "invalid_type", f"{where}: an event must be a mapping")
            return None
        event = merge(self.defaults, plain(node))
        raw_id = event.get("id")
        label = f"story {self.story_id!r} {where}" + (
            f" (event {raw_id!r})" if isinstance(raw_id, str) else ""
        )
        if not isinstance(raw_id, str) or not raw_id:
            reader.problem(parent, key, "missing_field", f"{label}: every event needs an id")
            return None
        if raw_id in self.parsed:
            reader.problem(
                node, "id", "duplicate_id", f"{label}: event id {raw_id!r} is used twice in this story"
            )
            return None
        try:
            parsed = parse_event(event)
        except InvalidEventError as exc:
            for error in exc.errors:
                line, column = self._position(node, error.field)
                reader.problems.append(
                    RuleProblem(str(reader.path), line, column, "invalid_event", f"{label}: {error}")
                )
            return None
        if self.last is not None and parsed.timestamp < self.last.timestamp:
            reader.problem(
                node,
                "timestamp" if "timestamp" in node else None,
                "out_of_order",
                f"{label}: {parsed.timestamp.isoformat()} is before event {self.last.id!r} "
                f"({self.last.timestamp.isoformat()}); history and steps run in time order",
            )
        self.parsed[raw_id] = parsed
        self.last = parsed
        return event

    def _position(self, node: CommentedMap, field: str) -> tuple[int, int]:
        """Where the bad field is written: in the event, else in the defaults, else the event itself."""
        for root in (node, self.defaults_node):
            found = _locate(root, field.split("."))
            if found is not None:
                return found
        return node.lc.line + 1, node.lc.col + 1


def _locate(node: Any, parts: list[str]) -> tuple[int, int] | None:
    for depth, part in enumerate(parts):
        if not isinstance(node, CommentedMap) or part not in node:
            return None
        if depth == len(parts) - 1:
            line, column = node.lc.key(part)
            return line + 1, column + 1
        node = node[part]
    return None
