"""YAML files with positions, for the rule-test and story files: reading, collecting problems at their
line and column, plain values, and the merge of defaults under events."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .._errors import RuleFileError, RuleProblem
from .._rules.parser import TOO_DEEP, suggest

__all__ = ["Reader", "merge", "plain", "read_yaml"]


def read_yaml(path: Path) -> Any:
    """The YAML document at ``path``, with positions (ruamel round-trip); ``RuleFileError`` if unreadable."""
    try:
        return YAML(typ="rt", pure=True).load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RuleFileError([RuleProblem(str(path), line, column, "yaml_syntax", str(exc.problem))]) from None
    except RecursionError:  # nested deeper than the YAML reader goes: a problem, never a traceback
        raise RuleFileError([RuleProblem(str(path), 1, 1, "too_deep", TOO_DEEP)]) from None
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise RuleFileError([RuleProblem(str(path), 1, 1, "unreadable", str(exc))]) from None


class Reader:
    """Collects the problems of one YAML file, each at the position of the node or key it is about."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[RuleProblem] = []

    def problem(self, node: Any, key: Any, code: str, message: str, suggestion: str | None = None) -> None:
        line, column = 1, 1
        try:
            if key is None:
                line, column = node.lc.line + 1, node.lc.col + 1
            elif isinstance(node, CommentedSeq):
                line, column = (v + 1 for v in node.lc.item(key))
            else:
                line, column = (v + 1 for v in node.lc.key(key))
        except (AttributeError, KeyError, IndexError, TypeError):
            pass
        self.problems.append(RuleProblem(str(self.path), line, column, code, message, suggestion))

    def keys(self, node: Any, allowed: tuple[str, ...], what: str) -> bool:
        if not isinstance(node, CommentedMap):
            self.problem(node, None, "invalid_type", f"{what} must be a mapping")
            return False
        for key in node:
            if key not in allowed:
                self.problem(
                    node,
                    key,
                    "unknown_key",
                    f"unknown {what} key {key!r}; expected {', '.join(allowed)}",
                    suggest(str(key), allowed),
                )
        return True

    def line(self, node: Any) -> int:
        return int(getattr(getattr(node, "lc", None), "line", 0)) + 1


def plain(value: Any) -> Any:
    """ruamel containers to plain dicts and lists, scalars to str/int/float/bool."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
