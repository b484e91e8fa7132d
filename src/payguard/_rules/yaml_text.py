"""A rule file's text as YAML: every way ruamel can refuse it becomes a problem with a position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .parser import TOO_DEEP, _Loader

__all__ = ["read_yaml"]

UNHASHABLE_KEY = "a key must be a plain value: this one is a mapping or a list that holds one (a stray '{'?)"


def read_yaml(loader: _Loader, path: Path, text: str) -> Any:
    """The document of ``text``, or ``None`` after reporting why it cannot be read."""
    yaml = YAML(typ="rt", pure=True)
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        said = exc.problem or exc.context or "invalid YAML"
        loader.problem(pos, "yaml_syntax", " ".join(str(said).split()))
    except YAMLError as exc:
        loader.problem((1, 1), "yaml_syntax", " ".join(str(exc).split()))
    except RecursionError:  # ruamel composes nested nodes recursively
        loader.problem((1, 1), "too_deep", TOO_DEEP)
    except TypeError:  # ruamel hashes a mapping key; one holding a list cannot be hashed
        loader.problem(_unhashable_key(text), "yaml_syntax", UNHASHABLE_KEY)
    return None


def _unhashable_key(text: str) -> tuple[int, int]:
    """Where the first key that is a mapping or a list starts (composing builds no Python keys)."""
    pending: list[Node] = [YAML(typ="rt", pure=True).compose(text)]
    while pending:
        node = pending.pop()
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    return key.start_mark.line + 1, key.start_mark.column + 1
                pending.append(value)
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)
    return 1, 1
