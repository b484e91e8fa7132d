"""The condition tree a rule's ``when`` compiles to, and its reference semantics.

Semantics, shared exactly by both engines:

- a comparison (``eq``, ``ne``, ``gt``, ``in``, ``not_in``...) on a field the event does not have is false;
- ``exists`` tests presence; ``not`` negates its whole condition, so ``not: {x: {eq: 1}}`` is true when
  ``x`` is absent;
- a money comparison also requires the event's currency to be the rule's currency;
- ``matches``, ``contains_any``, ``in_list``, long ``in`` lists and list-field tests are *predicates*:
  payguard computes them in Python before matching (RE2 regular expressions, normalised keyword search,
  named-list lookups), and the engines only read the resulting booleans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

__all__ = [
    "MAX_ALTERNATIVES",
    "NATIVE_IN_LIMIT",
    "AllOf",
    "AnyOf",
    "Compare",
    "Condition",
    "Exists",
    "InSet",
    "Not",
    "Pred",
    "fields_of",
    "leaves",
    "push_negations",
]

# ``in`` lists up to this size are matched natively by the engine; longer ones become predicates,
# because wide alternatives hang durable_rules' node tables (512 children per node).
NATIVE_IN_LIMIT = 8

Scalar = Union[str, int, float, bool]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Compare:
    """``field op value``; money values are minor units and carry the rule's ``currency``."""

    field: str
    op: str  # eq ne gt gte lt lte
    value: Scalar
    currency: str | None = None


@dataclass(frozen=True)
class InSet:
    """``field in values`` (or ``not in`` when ``negate``); a short list of scalars."""

    field: str
    values: tuple[Scalar, ...]
    negate: bool = False


@dataclass(frozen=True)
class Exists:
    field: str
    present: bool = True


@dataclass(frozen=True)
class Pred:
    """A boolean computed before matching: ``kind`` is matches, contains_any, in_list, set_in, set_not_in,
    list_eq, list_in, list_not_in or list_exists; ``arg`` its argument."""

    field: str
    kind: str
    arg: tuple[Scalar, ...] | str | bool


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    child: Condition


Condition = Compare | InSet | Exists | Pred | AllOf | AnyOf | Not
Leaf = Compare | InSet | Exists | Pred


def leaves(node: Condition) -> Iterator[Leaf]:
    """Every leaf under ``node``, depth first."""
    if isinstance(node, AllOf | AnyOf):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        yield node


def fields_of(node: Condition) -> set[str]:
    """The field and feature names a condition reads."""
    return {leaf.field for leaf in leaves(node)}


def push_negations(node: Condition, negate: bool = False) -> Condition:
    """An equivalent tree where ``Not`` only wraps leaves (negation normal form)."""
    if isinstance(node, Not):
        return push_negations(node.child, not negate)
    if isinstance(node, AllOf | AnyOf):
        children = tuple(push_negations(child, negate) for child in node.children)
        flip = negate
        if isinstance(node, AllOf):
            return AnyOf(children) if flip else AllOf(children)
        return AllOf(children) if flip else AnyOf(children)
    if isinstance(node, Exists) and negate:
        return Exists(node.field, not node.present)
    return Not(node) if negate else node


# A rule's condition, expanded into alternatives (``any`` adds, ``all`` multiplies), may have at most this
# many. durable_rules reports every satisfied alternative and fails above 64 at once.
MAX_ALTERNATIVES = 60


def alternatives(node: Condition) -> int:
    """How many alternatives ``node`` expands to in durable_rules (negations pushed to the leaves)."""

    def width(n: Condition) -> int:
        if isinstance(n, AllOf):
            product = 1
            for child in n.children:
                product *= width(child)
            return product
        if isinstance(n, AnyOf):
            return sum(width(child) for child in n.children)
        if isinstance(n, Not):
            inner = n.child
            if isinstance(inner, Compare):
                return 4 if inner.currency else 2
            if isinstance(inner, InSet):
                return 2 if not inner.negate else len(inner.values) + 1
            return 1
        if isinstance(n, InSet) and not n.negate:
            return len(n.values)
        return 1

    return width(push_negations(node))
