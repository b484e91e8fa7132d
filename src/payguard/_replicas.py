"""What a guard does on a store that many processes share (``RedisStore``): it reads the lists another
process set (``Guard.set_list``) and loads the rule set another process's ``Guard.reload`` published."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import PayguardError
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet

__all__ = ["NOTHING_READ", "Published", "load_published", "with_published"]

# what a guard last read of the published lists: (epoch, the lists it merged them into, merged, versions)
Published = tuple[int, Any, Mapping[str, frozenset[str]], Mapping[str, int]]
NOTHING_READ: Published = (0, None, {}, {})


def with_published(
    store: Any,
    epoch: int,
    lists: Mapping[str, frozenset[str]],
    versions: Mapping[str, int],
    last: Published,
) -> Published:
    """``lists`` (and their ``versions``) with the lists published in ``store`` as of ``epoch``; read from
    the store again only when the epoch moved (``last``: what the previous call returned)."""
    seen, base, merged, merged_versions = last
    if seen == epoch and base is lists:
        return last
    merged = dict(lists)
    merged_versions = dict(versions)
    for name, (version, entries) in store.published_lists().items():
        if name in lists:  # a list the rule set in force does not declare is not read
            merged[name] = entries
            merged_versions[name] = version
    return (epoch, lists, merged, merged_versions)


def load_published(digest: str, path: str) -> RuleSet:
    """The rule set another process published, loaded from ``path``; ``PayguardError`` if the files there
    are not that rule set (another version on this host)."""
    ruleset = load_rule_set(path)
    if ruleset.digest != digest:
        raise PayguardError(
            f"the rule files at {path} on this host have digest {ruleset.digest[:12]}, not {digest[:12]}"
        )
    return ruleset
