"""``--compare`` and ``--report`` partitioned are the serial ones: the old rule set is replayed partitioned
beside the new one to its own fixed point, and the partitions count what the report shows. The same
``--out`` lines (their old columns included), the same summary (its ``compare`` section included) and the
same report, its data and its HTML but for the time it was written, on the demo and on the dense world
where stops propagate, in 1 and 3 partitions (Dask's synchronous scheduler; the command once on a
two-worker ``LocalCluster``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from payguard import Guard, load_rule_set
from payguard._backtest.dask import DaskEngine
from payguard._backtest.driver import run
from payguard._errors import InvalidEventError
from payguard._replay import replay
from payguard._report import Collector, ReportContext, render_report
from payguard.backtest import partitioned

from .worlds import (
    DEMO,
    DENSE_RULES,
    SHIPPED_RULES,
    SYNCHRONOUS,
    decided,
    dense_world,
    replay_both,
    write_jsonl,
)

KEY = "partitioned-compare-test-key-0123"
# the old rule sets: the new ones with other thresholds, so that decisions change directly and as knock-on
# effects of earlier stops
DENSE_OLD = DENSE_RULES.replace("gte: 0.6", "gte: 0.8").replace("gte: 5}", "gte: 4}")
SHIPPED_OLD = """\
rules:
  - id: OLD_large_hold
    description: the old rule set held every payment from 3,000
    when: {type: transfer_out, amount: {gte: 3000}}
    action: hold
    reason: a large payment
"""


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("compare")
    dense_new, dense_old = folder / "dense.yaml", folder / "dense-old.yaml"
    dense_new.write_text(DENSE_RULES, encoding="utf-8")
    dense_old.write_text(DENSE_OLD, encoding="utf-8")
    shipped_old = folder / "rules-old"
    shutil.copytree(SHIPPED_RULES, shipped_old)
    (shipped_old / "zz_old.yaml").write_text(SHIPPED_OLD, encoding="utf-8")
    dense_files = [write_jsonl(folder / "dense.jsonl", dense_world(accounts=24, events=1000))]
    return {
        "demo": {"files": DEMO[0], "rules": SHIPPED_RULES, "old": shipped_old, "history": DEMO[1]},
        "dense": {"files": dense_files, "rules": dense_new, "old": dense_old, "history": []},
    }


def guard(rules: Path) -> Guard:
    return Guard(load_rule_set(rules), max_future=None)


def report_data(collector: Collector) -> dict[str, Any]:
    """Everything the report reads from a collector, in the order it reads it (ties in counts are broken
    by the order keys were first met)."""
    return {
        "days": {day: dict(counts) for day, counts in sorted(collector.days.items())},
        "day_money": [(day, list(table.items())) for day, table in collector.day_money.items()],
        "rules": sorted(collector.rules.items()),
        "shadow": sorted(collector.shadow.items()),
        "overlap": {rule: list(counter.items()) for rule, counter in sorted(collector.overlap.items())},
        "changes": sorted(collector.changes.items()),
        "old_hits": sorted(collector.old_hits.items()),
        "new_hits": sorted(collector.new_hits.items()),
        "compared": collector.compared,
    }


def without_time(html: str) -> str:
    """The report but for the minute it was written."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "(time)", html)


@pytest.fixture(scope="module")
def serial_runs(
    worlds: dict[str, dict[str, Any]],
) -> dict[str, tuple[list[dict[str, Any]], Any, Collector, dict[str, Any]]]:
    found = {}
    for name, world in worlds.items():
        lines: list[dict[str, Any]] = []
        collector = Collector()
        summary = replay(
            world["files"],
            guard(world["rules"]),
            write=lines.append,
            compare=guard(world["old"]),
            observe=collector.observe,
            history=world["history"],
        )
        found[name] = (lines, summary, collector, report_data(collector))  # before a report adds to it
    return found


@pytest.mark.parametrize("partitions", [1, 3])
@pytest.mark.parametrize("name", ["demo", "dense"])
def test_compare_and_the_report_partitioned_are_the_serial_ones(
    name: str,
    partitions: int,
    worlds: dict[str, dict[str, Any]],
    serial_runs: dict[str, tuple[list[dict[str, Any]], Any, Collector, dict[str, Any]]],
) -> None:
    world = worlds[name]
    expected_lines, expected, expected_collector, expected_data = serial_runs[name]
    assert expected.compare.to_dict()["changed_total"] > 5  # the old rule set decides otherwise
    lines: list[dict[str, Any]] = []
    collector = Collector()
    summary = run(
        world["files"],
        guard(world["rules"]),
        DaskEngine(),
        partitions,
        write=lines.append,
        compare=guard(world["old"]),
        collector=collector,
        history=world["history"],
    )
    assert lines == expected_lines  # with old_action, old_hits (and old_score) on every line
    assert decided(summary.to_dict()) == decided(expected.to_dict())
    assert summary.to_dict()["compare"] == expected.to_dict()["compare"]
    assert report_data(collector) == expected_data
    context = report_context(world)
    assert without_time(render_report(context, summary, collector)) == without_time(
        render_report(context, expected, expected_collector)
    )
    old_iterations = summary.to_dict()["partitioned"]["compare_per_iteration"]
    assert old_iterations[-1]["changes"] == 0  # the old rule set's replay reached its own fixed point


def report_context(world: dict[str, Any]) -> ReportContext:
    rules, old = world["rules"], world["old"]
    return ReportContext(world["files"], str(rules), load_rule_set(rules), str(old), load_rule_set(old))


@pytest.mark.parametrize("partitions", [1, 3])
def test_the_library_call_takes_compare_and_report_as_the_command_does(
    partitions: int,
    worlds: dict[str, dict[str, Any]],
    serial_runs: dict[str, tuple[list[dict[str, Any]], Any, Collector, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    world = worlds["dense"]
    expected_lines, expected, expected_collector, _data = serial_runs["dense"]
    lines: list[dict[str, Any]] = []
    path = tmp_path / "report.html"
    summary = partitioned(
        world["files"],
        world["rules"],
        partitions=partitions,
        compare=world["old"],
        report=path,
        write=lines.append,
    )
    assert lines == expected_lines
    assert decided(summary.to_dict()) == decided(expected.to_dict())
    assert without_time(path.read_text(encoding="utf-8")) == without_time(
        render_report(report_context(world), expected, expected_collector)
    )


@pytest.mark.parametrize(("engine", "partitions"), [(list(SYNCHRONOUS), "3"), ([], "2")])
def test_replay_partitioned_with_compare_and_report_writes_the_serial_out_summary_and_report(
    engine: list[str], partitions: str, worlds: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    world = worlds["demo"]
    common = [
        *world["files"],
        "--rules",
        str(world["rules"]),
        "--compare",
        str(world["old"]),
        "--audit-key",
        KEY,
    ]
    common += [f"--history={name}" for name in world["history"]]
    replays = replay_both(
        tmp_path,
        common,
        ["--partitions", partitions, *engine],
        files={"--out": "jsonl", "--summary-json": "json", "--report": "html"},
    )
    assert "the old rule set (--compare):" in replays.results["parted"].stderr
    assert f"report: {replays.path('parted', 'html')}" in replays.results["parted"].stderr
    serial_out, parted_out = replays.read("jsonl")
    assert sorted(parted_out.splitlines()) == sorted(serial_out.splitlines())
    assert "old_action" in serial_out
    serial_summary, parted_summary = (json.loads(text) for text in replays.read("json"))
    assert decided(parted_summary) == decided(serial_summary)
    assert parted_summary["compare"]["changed_total"] > 5
    serial_html, parted_html = replays.read("html")
    assert without_time(parted_html) == without_time(serial_html)


def test_the_old_rule_set_decides_only_what_the_new_one_takes_and_fails_where_serially_it_fails(
    tmp_path: Path,
) -> None:
    declared = "attributes: {segment: int}\n"
    events = dense_world(accounts=12, events=300)
    for event in events[::60]:  # a type only a rule set that declares the attribute rejects
        event["attributes"] = {"segment": "x"}
    files = [write_jsonl(tmp_path / "dense.jsonl", events)]
    plain, strict = tmp_path / "plain.yaml", tmp_path / "strict.yaml"
    plain.write_text(DENSE_OLD, encoding="utf-8")
    strict.write_text(DENSE_RULES.replace("rules:\n", declared + "rules:\n", 1), encoding="utf-8")
    # the new rule set rejects them: the old one never decides them, serially or partitioned
    expected: list[dict[str, Any]] = []
    summary = replay(files, guard(strict), write=expected.append, compare=guard(plain))
    assert summary.rejected == 5
    lines: list[dict[str, Any]] = []
    parted = run(files, guard(strict), DaskEngine(), 3, write=lines.append, compare=guard(plain))
    assert lines == expected
    assert decided(parted.to_dict()) == decided(summary.to_dict())
    # the old one rejects what the new one decides: the serial replay stops there, and so does this one
    with pytest.raises(InvalidEventError) as serially:
        replay(files, guard(plain), compare=guard(strict))
    with pytest.raises(InvalidEventError) as partitioned_too:
        run(files, guard(plain), DaskEngine(), 3, compare=guard(strict))
    assert str(partitioned_too.value) == str(serially.value)


def test_each_rule_set_records_the_history_it_takes_and_the_old_one_alone_rejecting_stops_both(
    tmp_path: Path,
) -> None:
    declared = "attributes: {segment: int}\n"
    world = dense_world(accounts=12, events=500)  # the first days' payments as the history of the last's
    past, events = world[:200], world[200:]
    for event in past[::40]:  # a type only a rule set that declares the attribute rejects
        event["attributes"] = {"segment": "x"}
    files = [write_jsonl(tmp_path / "dense.jsonl", events)]
    history = [write_jsonl(tmp_path / "history.jsonl", past)]
    plain, strict = tmp_path / "plain.yaml", tmp_path / "strict.yaml"
    plain.write_text(DENSE_OLD, encoding="utf-8")
    strict.write_text(DENSE_RULES.replace("rules:\n", declared + "rules:\n", 1), encoding="utf-8")
    # the new rule set rejects them (reported, counted); the old one records them, serially and partitioned
    expected: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    summary = replay(
        files,
        guard(strict),
        write=expected.append,
        compare=guard(plain),
        history=history,
        reject=lambda record, reason: rejected.append((record.line, reason)),
    )
    assert (summary.history, summary.rejected) == (195, 5)
    assert [line for line, _reason in rejected] == [1, 41, 81, 121, 161]
    lines: list[dict[str, Any]] = []
    parted = run(
        files, guard(strict), DaskEngine(), 3, write=lines.append, compare=guard(plain), history=history
    )
    assert lines == expected
    assert decided(parted.to_dict()) == decided(summary.to_dict())
    # the old one rejects history the new one records: the serial replay stops there, and so does this one
    with pytest.raises(InvalidEventError) as serially:
        replay(files, guard(plain), compare=guard(strict), history=history)
    with pytest.raises(InvalidEventError) as partitioned_too:
        run(files, guard(plain), DaskEngine(), 3, compare=guard(strict), history=history)
    assert str(partitioned_too.value) == str(serially.value)
    assert "attributes.segment" in str(serially.value)
