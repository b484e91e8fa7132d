"""The documentation stays true to the code: the README's feature table is the declarations', and the
documents link only to files inside the repository.

Regenerate the README's feature table with ``.venv/bin/python tests/test_docs.py``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path

import pytest

from payguard._cli import features_table
from payguard._rules import fields
from payguard._rules.fields import FEATURES, Kind

ROOT = Path(__file__).resolve().parent.parent  # not from conftest: this file also runs as a script
README = ROOT / "README.md"
START, END = "<!-- features-table:start -->", "<!-- features-table:end -->"
REGENERATE = "regenerate it with: .venv/bin/python tests/test_docs.py"
DOCUMENTS = [
    README,
    ROOT / "CHANGELOG.md",
    ROOT / "benchmarks" / "RESULTS.md",
    *sorted(ROOT.glob("docs/*.md")),
]


def readme_features_table() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"the README needs one {START}"
    assert text.count(END) == 1, f"the README needs one {END}"
    return text.split(START)[1].split(END)[0].strip()


def test_the_readme_feature_table_is_the_one_generated_from_the_declarations() -> None:
    assert readme_features_table() == features_table(), (
        f"the README's feature table is out of step; {REGENERATE}"
    )


def test_every_declared_feature_has_its_row_in_the_readme_with_its_kind_and_description() -> None:
    rows = readme_features_table().splitlines()[2:]
    expected = []
    for spec in FEATURES.values():
        description = spec.description.replace("|", "\\|")
        expected.append(f"| `{spec.name}` | {spec.kind.value} | {description} |")
    assert rows == expected, REGENERATE


def test_the_generated_table_follows_a_changed_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    before = features_table()
    changed = dict(FEATURES)
    changed["is_night"] = dataclasses.replace(FEATURES["is_night"], kind=Kind.INT, description="a | b")
    del changed["local_hour"]
    monkeypatch.setattr(fields, "FEATURES", changed)
    after = features_table()
    assert "| `is_night` | int | a \\| b |" in after.splitlines()
    assert "`local_hour`" not in after
    assert after != before


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks hold output, not links
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_document_links_only_to_files_inside_the_repository(path: Path) -> None:
    assert path.is_file()
    wrong = []
    for target in _links(path):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            wrong.append(target)
    assert wrong == []


@pytest.mark.parametrize("path", [README, *sorted(ROOT.glob("docs/*.md"))], ids=lambda p: p.name)
def test_the_user_documents_name_no_path_outside_the_repository(path: Path) -> None:
    assert "../shared" not in path.read_text(encoding="utf-8")


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or an attribute of one (``payguard._rules.fields.FEATURES``)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_the_private_modules_the_readme_names_exist() -> None:
    text = README.read_text(encoding="utf-8")
    dotted = set(re.findall(r"payguard(?:\.\w+)*\._\w+(?:\.\w+)*", text))
    paths = set(re.findall(r"src/payguard/[\w/]+\.py", text))
    assert dotted, "the pattern finds the modules the README names"
    missing = sorted(name for name in dotted if not _resolves(name))
    missing += sorted(path for path in paths if not (ROOT / path).is_file())
    parts = set(re.findall(r"`(_\w+(?:/\w+)*(?:/|\.py))`", text))  # `_engine/`, `_guard.py`
    missing += sorted(part for part in parts if not (ROOT / "src" / "payguard" / part).exists())
    assert missing == [], "the README names modules that do not exist"


def regenerate() -> None:
    """Write the generated feature table between the README's markers."""
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START)
    tail = rest.split(END)[1]
    README.write_text(f"{head}{START}\n{features_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
