"""``payguard replay --partitions N``: the same ``--out``, summary, rejects and exit code as the serial
command; on a real two-worker ``LocalCluster``; options it cannot honour are refused, not ignored."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard._cli import main

from ..conftest import make_event
from .worlds import DEMO, SHIPPED_RULES, SYNCHRONOUS, decided, replay_both, write_jsonl

KEY = "partitioned-replay-test-key-0123"


def replay(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args, "--audit-key", KEY], catch_exceptions=False)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def by_event_id(text_lines: list[str]) -> list[str]:
    return sorted(text_lines, key=lambda line: json.loads(line)["event_id"])


def test_a_local_cluster_starts_while_another_program_holds_the_dask_dashboard_port(tmp_path: Path) -> None:
    # another analyst's cluster, or a notebook's, on Dask's default port 8787: the replay does not need it
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already held by someone else: the same situation
            other.bind(("0.0.0.0", 8787))
            other.listen()
        out = tmp_path / "out.jsonl"
        result = replay(*DEMO[0], "--rules", str(SHIPPED_RULES), "--partitions", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(lines(out)) == 459


def test_the_demo_on_a_two_worker_local_cluster_writes_the_serial_out_and_summary(tmp_path: Path) -> None:
    common = [*DEMO[0], "--rules", str(SHIPPED_RULES), "--audit-key", KEY]  # the demo without its history
    replays = replay_both(
        tmp_path, common, ["--partitions", "2"], files={"--out": "jsonl", "--summary-json": "json"}
    )
    serial_out, parted_out = replays.read("jsonl")
    assert by_event_id(parted_out.splitlines()) == by_event_id(serial_out.splitlines())
    serial_summary, summary = (json.loads(text) for text in replays.read("json"))
    assert decided(summary) == decided(serial_summary)
    assert summary["partitioned"]["engine"] == "dask"
    assert summary["partitioned"]["partitions"] == 2
    assert summary["iterations"] == len(summary["iteration_changes"]) >= 2
    assert summary["iteration_changes"][-1] == 0
    assert "partitioned on dask: 2 partitions" in replays.results["parted"].stderr


def test_bad_records_are_rejected_with_file_and_line_counted_and_exit_3_as_serially(tmp_path: Path) -> None:
    good = [make_event(id=f"b{n}", timestamp=f"2026-03-02T1{n}:00:00+08:00") for n in range(4)]
    conflict = make_event(id="b1", timestamp="2026-03-02T19:00:00+08:00", amount="999.00")
    duplicate = make_event(id="b2", timestamp="2026-03-02T12:00:00+08:00")
    events = write_jsonl(tmp_path / "e.jsonl", [*good, conflict, duplicate])
    with Path(events).open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
        handle.write(json.dumps({**good[0], "id": "b9", "amount": "-3"}) + "\n")
    replays = replay_both(
        tmp_path,
        [events, "--rules", str(SHIPPED_RULES), "--audit-key", KEY],
        ["--partitions", "3", *SYNCHRONOUS],
        files={"--rejects": "rejects.jsonl", "--summary-json": "json", "--out": "jsonl"},
        exit_code=3,
    )
    serial_rejects, parted_rejects = (
        [json.loads(line) for line in text.splitlines()] for text in replays.read("rejects.jsonl")
    )
    assert [(r["file"], r["line"]) for r in parted_rejects] == [
        (r["file"], r["line"]) for r in serial_rejects
    ]
    assert sorted(r["line"] for r in parted_rejects) == [
        5,
        7,
        8,
    ]  # the conflict, the broken line, the bad amount
    assert {r["file"] for r in parted_rejects} == {events}
    serial_summary, summary = (json.loads(text) for text in replays.read("json"))
    assert (summary["rejected"], summary["conflicts"], summary["duplicates"]) == (2, 1, 1)
    assert decided(summary) == decided(serial_summary)
    serial_out, parted_out = replays.read("jsonl")
    assert parted_out == serial_out
    assert f"{events}:7: rejected:" in replays.results["parted"].stderr


@pytest.mark.parametrize(
    ("option", "value"), [("--audit-checkpoints", "c.jsonl"), ("--store", "sqlite:///s.db")]
)
def test_options_the_partitioned_replay_cannot_honour_are_refused_with_exit_2(
    tmp_path: Path, option: str, value: str
) -> None:
    result = replay(
        *DEMO[0], "--rules", str(SHIPPED_RULES), "--partitions", "2", option, str(tmp_path / value)
    )
    assert result.exit_code == 2
    assert f"{option} is not supported with --partitions" in result.stderr


def test_an_engine_option_without_partitions_is_a_usage_error() -> None:
    result = replay(*DEMO[0], "--rules", str(SHIPPED_RULES), "--dask-scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2
    assert "goes with --partitions N" in result.stderr


def test_each_partition_stays_on_its_worker_between_iterations(tmp_path: Path) -> None:
    from payguard import Guard, load_rule_set
    from payguard._backtest.dask import DaskEngine, local_cluster
    from payguard._backtest.driver import run

    # a partition moved between workers is pickled whole: the handbook file took minutes an iteration
    cluster, client = local_cluster(2)
    try:
        engine = DaskEngine(client)
        guard = Guard(load_rule_set(SHIPPED_RULES), max_future=None)
        summary = run(DEMO[0], guard, engine, 4)
        assert summary.to_dict()["iteration_changes"][-1] == 0
        assert sorted(set(engine._workers)) == sorted(client.scheduler_info()["workers"])
        held = client.who_has(engine._states)
        for index, state in enumerate(engine._states):
            assert list(held[state.key]) == [engine._workers[index]]
    finally:
        client.close()
        cluster.close()


def test_a_dask_scheduler_that_does_not_answer_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    import dask

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = replay(
            *DEMO[0], "--rules", str(SHIPPED_RULES), "--partitions", "2", "--dask-scheduler", address
        )
    assert result.exit_code == 2, result.stderr
    assert f"cannot reach the Dask scheduler at {address!r}" in result.stderr
