"""The Spark adapter on a real ``local[2]`` master: the same step functions as on Dask, run in
``mapInPandas`` over rows laid out by partition and sorted by seq, give the serial replay's answer on the
demo and on a dense world where stops propagate; ``payguard replay --spark-master`` writes the serial
``--out`` and an audit per partition that verifies.

Spark needs Java and the extra ``payguard[spark]``: without them these tests skip, saying which is
missing, unless ``PAYGUARD_REQUIRE_SPARK=1`` (CI sets it), where they fail."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard import backtest
from payguard._cli import main

from .worlds import DEMO, DENSE_RULES, SHIPPED_RULES, by_event, decided, dense_world, serial, write_jsonl

pytestmark = pytest.mark.slow
KEY = "spark-partitioned-test-key-012345"


def missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if shutil.which("java") is None:
        return "java is not installed (apt-get install default-jre-headless)"
    for module in ("pyspark", "pyarrow", "pandas"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'payguard[spark]')"
    return None


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    reason = missing()
    if reason is not None:
        if os.environ.get("PAYGUARD_REQUIRE_SPARK") == "1":
            pytest.fail(f"{reason}, and PAYGUARD_REQUIRE_SPARK=1 requires the Spark tests to run")
        pytest.skip(reason)
    with backtest.spark_session("local[2]", 2) as made:
        yield made


def test_the_demo_on_spark_decides_every_event_as_the_serial_replay(session: Any) -> None:
    expected, expected_summary = serial(DEMO[0], SHIPPED_RULES, history=DEMO[1])
    lines: list[dict[str, Any]] = []
    summary = backtest.spark(
        DEMO[0], SHIPPED_RULES, partitions=2, session=session, history=DEMO[1], write=lines.append
    )
    assert lines == expected  # in replay order
    assert decided(summary.to_dict()) == decided(expected_summary)
    assert summary.engine == "spark"
    assert summary.to_dict()["iteration_changes"][-1] == 0


def test_a_dense_world_on_spark_is_the_serial_world(session: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(DENSE_RULES, encoding="utf-8")
    files = [write_jsonl(tmp_path / "dense.jsonl", dense_world(accounts=24, events=1000))]
    expected, expected_summary = serial(files, rules)
    lines: list[dict[str, Any]] = []
    summary = backtest.spark(files, rules, partitions=3, session=session, write=lines.append)
    assert by_event(lines) == by_event(expected)
    assert decided(summary.to_dict()) == decided(expected_summary)
    changes = summary.to_dict()["iteration_changes"]
    assert len(changes) >= 3  # stops propagated across partitions, and the last iteration verified
    assert changes[-1] == 0


def test_compare_and_the_report_on_spark_are_the_serial_ones(session: Any, tmp_path: Path) -> None:
    from payguard import Guard, load_rule_set
    from payguard._replay import replay
    from payguard._report import Collector, ReportContext, render_report

    from .test_compare import DENSE_OLD, without_time

    rules, old = tmp_path / "rules.yaml", tmp_path / "old.yaml"
    rules.write_text(DENSE_RULES, encoding="utf-8")
    old.write_text(DENSE_OLD, encoding="utf-8")
    files = [write_jsonl(tmp_path / "dense.jsonl", dense_world(accounts=24, events=1000))]
    expected: list[dict[str, Any]] = []
    collector = Collector()
    expected_summary = replay(
        files,
        Guard(load_rule_set(rules), max_future=None),
        write=expected.append,
        compare=Guard(load_rule_set(old), max_future=None),
        observe=collector.observe,
    )
    lines: list[dict[str, Any]] = []
    path = tmp_path / "report.html"
    summary = backtest.spark(
        files, rules, partitions=3, session=session, write=lines.append, compare=old, report=path
    )
    assert by_event(lines) == by_event(expected)
    assert decided(summary.to_dict()) == decided(expected_summary.to_dict())
    assert summary.to_dict()["compare"]["changed_total"] > 5
    context = ReportContext(files, str(rules), load_rule_set(rules), str(old), load_rule_set(old))
    html = render_report(context, expected_summary, collector)
    assert without_time(path.read_text(encoding="utf-8")) == without_time(html)


def test_replay_with_a_spark_master_writes_the_serial_out_and_an_audit_per_partition(
    session: Any, tmp_path: Path
) -> None:
    common = [*DEMO[0], "--rules", str(SHIPPED_RULES), "--audit-key", KEY]
    runner = CliRunner()
    serial_run = runner.invoke(
        main,
        ["replay", *common, "--out", str(tmp_path / "s.jsonl"), "--audit", str(tmp_path / "s-audit.jsonl")],
    )
    assert serial_run.exit_code == 0, serial_run.stderr
    # the session the fixture made is this process's active one: the command runs on it, and leaves it
    parted = runner.invoke(
        main,
        [
            "replay",
            *common,
            "--partitions",
            "2",
            "--spark-master",
            "local[2]",
            "--out",
            str(tmp_path / "p.jsonl"),
            "--audit",
            str(tmp_path / "audit.jsonl"),
        ],
    )
    assert parted.exit_code == 0, parted.stderr
    assert "partitioned on spark: 2 partitions" in parted.stderr

    def by_id(path: Path) -> list[str]:
        return sorted(path.read_text().splitlines(), key=lambda line: json.loads(line)["event_id"])

    assert by_id(tmp_path / "p.jsonl") == by_id(tmp_path / "s.jsonl")
    verified = runner.invoke(main, ["audit", "verify", str(tmp_path / "audit.manifest.json"), "--key", KEY])
    assert verified.exit_code == 0, verified.stderr
    assert "every part intact, 3 files, 459 records" in verified.stdout
    assert session.sparkContext._jsc is not None  # not stopped by the command
