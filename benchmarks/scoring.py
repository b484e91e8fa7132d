"""The `scoring` section of `make bench`: what scores cost a decision.

The default rule set against the same rule set with a `scoring:` header and a score on every rule (the
actions stay, so both decide alike and match the same rules): the difference is the cost of adding up
scores and applying thresholds. Runs alternate, best of 5 each, on the same events.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from payguard import Guard

ROOT = Path(__file__).resolve().parent.parent


def scored_copy(source: Path, target: Path) -> Path:
    """``source`` (a rule directory) copied to ``target`` with scoring thresholds and a score on each rule."""
    shutil.copytree(source, target)
    yaml = YAML(typ="rt")
    for path in target.glob("*.yaml"):
        if path.stem.endswith("_test"):
            continue
        doc = yaml.load(path.read_text(encoding="utf-8"))
        if "ruleset" in doc:
            doc["ruleset"]["scoring"] = {"review": 30, "hold": 60, "interrupt": 90}
        for rule in doc.get("rules") or []:
            rule["score"] = 10
        with path.open("w", encoding="utf-8") as out:
            yaml.dump(doc, out)
    return target


def bench(  # bench.py binds all but `quick` with functools.partial
    traffic: Callable[[int], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    settle: Callable[[], None],
    engines: list[str],
    table: tuple[Callable[..., None], Callable[..., str], Callable[[float], str]],
    quick: bool,
) -> dict[str, Any]:
    history, events = traffic(3000 if quick else 20000)
    settle()
    header, row, us = table
    print(
        "\n### Scores: the default rule set without and with scoring (no audit), best of 5 alternating runs\n"
    )
    header("engine", "without µs/decision", "with scoring µs/decision", "ratio")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"without": ROOT / "rules", "with": scored_copy(ROOT / "rules", Path(tmp) / "rules")}
        for engine in engines:
            best = {"without": float("inf"), "with": float("inf")}
            for _attempt in range(5):
                for variant, path in paths.items():
                    guard = Guard.from_path(path, engine=engine)
                    guard.record(history)
                    start = time.perf_counter()
                    for event in events:
                        guard.evaluate(event)
                    best[variant] = min(best[variant], (time.perf_counter() - start) / len(events))
                    guard.close()
            ratio = best["with"] / best["without"]
            print(row(engine, us(best["without"]), us(best["with"]), f"{ratio:.3f}"))
            results[engine] = {**best, "ratio": ratio}
    return results
