"""The layers of docs/architecture.md: each part of payguard imports only the parts in the rows below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "src" / "payguard"

# the rows of the design's layer table, top first; a part is a folder or a module directly in payguard/
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {"__init__", "_cli", "_render", "testing", "_replay", "_explain", "_report", "_serve"}
        | {"replay", "backtest", "_backtest"}
    ),
    frozenset({"_guard"}),
    frozenset({"_pipeline", "_replicas"}),
    frozenset({"_engine", "_features"}),
    frozenset({"_rules", "_audit", "_stores"}),
    frozenset({"_lifecycle"}),
    frozenset({"_event", "_decision", "_io"}),
    frozenset({"_common", "_errors", "_build", "_synthetic"}),
)
ROW = {part: row for row, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """``payguard._rules.loader`` -> ``_rules``; ``payguard`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """The modules ``path`` imports (payguard's resolved to absolute names), with their lines."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
            if node.module is None:  # from . import durable: each name may be a module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_payguard_has_a_row() -> None:
    parts = {part_of(module_name(path)) for path in SOURCES}
    assert parts - set(ROW) == set(), "a new folder or module needs its row in docs/architecture.md"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_part_imports_only_from_the_rows_below_it(path: Path) -> None:
    importer = part_of(module_name(path))
    wrong = []
    for line, module in imports_of(path):
        if not module.startswith("payguard"):
            continue
        imported = part_of(module)
        # the tools of the top row (the CLI runs replays and rule tests) may use each other
        same_row_allowed = ROW[importer] == 0
        if imported != importer and (
            ROW[imported] < ROW[importer] or (ROW[imported] == ROW[importer] and not same_row_allowed)
        ):
            wrong.append(
                f"line {line}: {importer} (row {ROW[importer]}) imports {module} (row {ROW[imported]})"
            )
    assert wrong == []


def test_the_named_rules_of_the_house_hold() -> None:
    importers: dict[str, set[str]] = {}
    for path in SOURCES:
        for _line, module in imports_of(path):
            importers.setdefault(module.split(".")[0], set()).add(module_name(path))
            if module.startswith("payguard."):
                importers.setdefault(".".join(module.split(".")[:2]), set()).add(module_name(path))
    assert importers["durable_rules_engine"] == {"payguard._engine.durable"}
    rules = {m for m in importers.get("payguard._engine", set()) if m.startswith("payguard._rules")}
    assert rules == set(), "the rule language never imports an engine"
    stores = {m for m in importers.get("payguard._features", set()) if m.startswith("payguard._stores")}
    assert stores == set(), "stores never import the features"
    audit = {m for m in importers.get("payguard._guard", set()) if m.startswith("payguard._audit")}
    assert audit == set(), "the audit trail never imports the guard"


def test_the_import_walker_sees_relative_imports() -> None:
    # the walker itself: a relative import in a subpackage resolves to the module it names
    found = {module: line for line, module in imports_of(PACKAGE / "_features" / "calculator.py")}
    assert "payguard._stores.history" in found
    assert "payguard._features.context" in found
