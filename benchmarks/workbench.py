"""The workbench section of the benchmarks (issue 21): what ``--report`` adds to a replay of the card file
(target: at most 10 %), and ``explain`` of one event of it against replaying the file up to that event
(target: at most twice the time, in bounded memory). Each figure is one child process's wall time and peak
resident memory (``os.wait4``), so the runs do not share caches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the event explained: the middle of the 288,062 records, so "up to it" is half the file
EVENT = "handbook-144031"
_UP_TO = """
import sys
from payguard import Guard
from payguard._replay import replay
replay([sys.argv[1]], Guard.from_path(sys.argv[2], engine="python"), mapping="handbook", until=sys.argv[3])
"""


def _child(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def bench(
    root: Path, data: Path, formatting: tuple[Callable[..., None], Callable[..., str]], quick: bool
) -> dict[str, Any]:
    header, row = formatting
    source = data / "handbook" / "handbook_2018-04.csv.gz"
    if not source.exists():
        print("\n(workbench skipped: shared/data/handbook is not beside the checkout)")
        return {}
    rules = str(root / "examples" / "handbook" / "rules.yaml")
    cli = [sys.executable, "-m", "payguard._cli"]
    print("\n### Workbench: the report and explain on the handbook file (288,062 card transactions)\n")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        replay = [*cli, "replay", str(source), "--mapping", "handbook", "--rules", rules]
        explain = [*cli, "explain", "--rules", rules, "--mapping", "handbook", "--event-id", EVENT]
        runs = {
            "replay": replay,
            "replay --report": [*replay, "--report", str(Path(tmp) / "report.html")],
            f"replay up to {EVENT}": [sys.executable, "-c", _UP_TO, str(source), rules, EVENT],
            f"explain {EVENT}": [*explain, str(source)],
        }
        if quick:
            runs = dict(list(runs.items())[2:])
        header("run", "seconds", "peak MB")
        for name, command in runs.items():
            seconds, peak = _child(command, root)
            results[name] = {"seconds": round(seconds, 2), "peak_mb": round(peak, 1)}
            print(row(name, f"{seconds:.1f}", f"{peak:,.0f}"))
    if "replay --report" in results:
        ratio = results["replay --report"]["seconds"] / results["replay"]["seconds"] - 1
        print(f"\nthe report adds {ratio:+.1%} to the replay (target: at most +10 %)")
        results["report_overhead"] = round(ratio, 4)
    ratio = results[f"explain {EVENT}"]["seconds"] / results[f"replay up to {EVENT}"]["seconds"]
    print(f"explain takes {ratio:.2f}x the replay up to its event (target: at most 2x)")
    results["explain_ratio"] = round(ratio, 3)
    return results


def bench_replay(
    root: Path, data: Path, table: tuple[Callable[..., None], Callable[..., str]], quick: bool
) -> dict[str, Any]:
    """The replay of the handbook file with the default rules and the audit on, as one command."""
    header, row = table
    del quick  # the whole file, always
    source = data / "handbook" / "handbook_2018-04.csv.gz"
    if not source.exists():
        print("\n(replay skipped: shared/data/handbook is not beside the checkout)")
        return {}
    print("\n### Replay of the handbook file (288,062 card transactions), default rules, audit on\n")
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "payguard._cli",
            "replay",
            str(source),
            "--mapping",
            "handbook",
            "--rules",
            str(root / "rules"),
            "--audit",
            str(Path(tmp) / "audit.jsonl"),
            "--summary-json",
            str(Path(tmp) / "summary.json"),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=False, stderr=subprocess.DEVNULL, cwd=root)
        elapsed = time.perf_counter() - start
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    header("records", "evaluated", "rejected", "seconds (whole command)", "events/s (evaluation loop)")
    print(
        row(
            f"{summary['records']:,}",
            f"{summary['evaluated']:,}",
            summary["rejected"],
            f"{elapsed:.1f}",
            f"{summary['events_per_second']:,.0f}",
        )
    )
    return {
        "seconds": elapsed,
        **{k: summary[k] for k in ("records", "evaluated", "rejected", "events_per_second")},
    }
