"""The backtest report of ``payguard replay --report``: one self-contained HTML file, drawn in a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard import Guard
from payguard._cli import main
from payguard._replay import replay
from payguard._report import Collector

from .conftest import make_event

WriteRules = Callable[..., Path]
RULES = """
rules:
  - {id: large, description: large, when: {amount: {gte: 1000}}, action: hold, reason: r}
  - {id: huge, description: huge, when: {amount: {gte: 5000}}, action: hold, reason: r}
  - {id: again, description: retry, when: {recent_stops_60m: {gte: 1}}, action: interrupt, reason: r}
  - {id: trial, description: shadow, mode: shadow, when: {amount: {gte: 500}}, action: hold, reason: r}
"""


def event(n: int, day: int, minute: int, amount: str, fraud: bool) -> dict[str, Any]:
    return make_event(
        id=f"e{n}",
        timestamp=f"2026-03-0{day}T10:{minute:02d}:00+08:00",
        amount=amount,
        label={"is_fraud": fraud},
        payer={"account": f"62220000{n % 2}"},
    )


EVENTS = [
    event(1, 2, 0, "1500", True),  # held by large alone
    event(3, 2, 5, "20", False),  # interrupted: a stop 5 minutes before, same payer
    event(5, 3, 0, "6000", True),  # large and huge: stopped, but by neither alone
    event(2, 3, 30, "700", False),  # the shadow rule alone would have held it
    event(4, 4, 0, "10", False),
]


def write_events(path: Path) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    return path


def collected(rules: Path, events: Path, old: Path | None = None) -> Collector:
    collector = Collector()
    compare = Guard.from_path(old) if old is not None else None
    replay([str(events)], Guard.from_path(rules), observe=collector.observe, compare=compare)
    return collector


def test_per_rule_counts_money_and_what_only_one_rule_stopped(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    collector = collected(write_rules(RULES), write_events(tmp_path / "e.jsonl"))
    large, huge = collector.rules["large"], collector.rules["huge"]
    assert (large.hits, large.fraud, large.legit, large.only) == (2, 2, 0, 1)
    assert {k: str(v) for k, v in large.fraud_money.items()} == {"CNY": "7500"}
    assert {k: str(v) for k, v in large.only_money.items()} == {"CNY": "1500"}
    assert (huge.hits, huge.only) == (1, 0)
    assert collector.overlap["large"] == {"huge": 1}
    trial = collector.shadow["trial"]
    assert (trial.hits, trial.newly_stopped, trial.newly_legit, trial.newly_fraud) == (3, 1, 1, 0)
    assert {day.day: dict(counts) for day, counts in collector.days.items()} == {
        2: {"hold": 1, "interrupt": 1},
        3: {"hold": 1, "allow": 1},
        4: {"allow": 1},
    }


def test_compare_splits_changes_by_label_and_marks_knock_on_effects(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    old = write_rules(RULES, name="old.yaml")
    new = write_rules(RULES.replace("gte: 1000", "gte: 2000"), name="new.yaml")
    collector = collected(new, write_events(tmp_path / "e.jsonl"), old)
    direct = collector.changes[("hold", "allow")]  # e1: the new threshold, on this payment
    assert (direct.fraud, direct.legit, direct.knock_on, direct.examples) == (1, 0, 0, ["e1"])
    knock_on = collector.changes[("interrupt", "allow")]  # e3: no stop before it any more
    assert (knock_on.legit, knock_on.knock_on, knock_on.knock_on_examples) == (1, 1, ["e3"])
    assert {row["rule_id"]: (row["old"], row["new"]) for row in collector.rule_deltas()}["large"] == (2, 1)


def report(write_rules: WriteRules, tmp_path: Path) -> tuple[Path, Any]:
    events = write_events(tmp_path / "e.jsonl")
    old = write_rules(RULES, name="old.yaml")
    new = write_rules(RULES.replace("gte: 1000", "gte: 2000"), name="new.yaml")
    path = tmp_path / "report.html"
    args = ["replay", str(events), "--rules", str(new), "--compare", str(old), "--report", str(path)]
    return path, CliRunner().invoke(main, args)


def test_the_report_is_one_self_contained_printable_file(write_rules: WriteRules, tmp_path: Path) -> None:
    path, result = report(write_rules, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"report: {path}" in result.stderr
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html
    assert not re.search(r"(src|href)\s*=|url\(|@import|@font-face", html)  # nothing fetched: works offline
    assert "@media print" in html
    assert html.count('<svg class="chart"') == 2
    assert "<code>large</code>" in html
    assert "Shadow rules, as if enforced" in html
    assert "knock-on" in html
    assert "e3" in html


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Appended to a copy of the report (the report itself has no script): measures every chart and its bars,
# lists every resource the page fetched, and writes the result into the page for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("svg.chart")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const bars = [...svg.querySelectorAll("rect.bar")].filter((r) => {
      const b = r.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length;
    return {width: box.width, height: box.height, bars};
  });
  const resources = performance.getEntriesByType("resource").map((r) => r.name);
  const pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify({charts, resources}); document.body.appendChild(pre);
});
window.addEventListener("error", (e) => console.error("page error: " + e.message));
</script>"""


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it from Debian)")
def test_a_headless_browser_draws_the_charts_with_a_clean_console(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    path, result = report(write_rules, tmp_path)
    assert result.exit_code == 0, result.stderr
    probed = tmp_path / "probed.html"
    probed.write_text(
        path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    browser = chromium()
    assert browser is not None
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout)
    assert found is not None, run.stderr[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(probe["charts"]) == 2
    for chart in probe["charts"]:
        assert chart["width"] > 0
        assert chart["height"] > 0
        assert chart["bars"] > 0
    assert probe["resources"] == []
    assert [line for line in run.stderr.splitlines() if ":CONSOLE" in line] == []
