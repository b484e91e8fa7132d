"""``--audit`` with ``--partitions``: one audit file per partition, each keyed, chained and signed as the
serial trail is, with one record per decision across them, the refused records in a file of their own,
and a manifest that ``payguard audit verify`` checks file by file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from payguard import Guard, load_rule_set
from payguard._audit.verify import verify_file
from payguard._cli import main
from payguard.replay import replay

from ..conftest import make_event
from .worlds import DEMO, SHIPPED_RULES, parted, write_jsonl

KEY = "partitioned-audit-test-key-012345"
# what says when and by which process a record was written, not what was decided
RUN_FIELDS = frozenset({"decision_id", "evaluated_at", "latency_us", "hash", "prev_hash", "duplicate_of"})


def records(path: Path) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [record for record in found if record["record"] != "checkpoint"]


def decided(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without what differs between two runs, by event id."""
    kept = [{k: v for k, v in record.items() if k not in RUN_FIELDS} for record in found]
    return sorted(kept, key=lambda record: (record["event_id"], record["record"]))


def without_decision_ids(found: list[dict[str, Any]]) -> str:
    """The records as text, the decision ids that messages name (one per run) blanked."""
    return re.sub(r"decision [0-9a-f]{12}-\d{12}", "decision ID", json.dumps(found, sort_keys=True))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    result = CliRunner().invoke(main, ["audit", "keygen", "--out", str(folder)])
    assert result.exit_code == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def serial_audit(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("serial") / "audit.jsonl"
    guard = Guard(load_rule_set(SHIPPED_RULES), max_future=None, audit=str(path), audit_key=KEY)
    replay(DEMO[0], guard, history=DEMO[1], feedback_delay=3600)
    guard.close()
    return records(path)


@pytest.mark.parametrize("partitions", [1, 3])
def test_each_partition_audits_its_decisions_and_together_they_are_the_serial_trail(
    partitions: int, tmp_path: Path, keys: Path, serial_audit: list[dict[str, Any]]
) -> None:
    path = tmp_path / "audit.jsonl"
    lines, summary = parted(
        DEMO[0],
        SHIPPED_RULES,
        partitions,
        history=DEMO[1],
        feedback_delay=3600,
        audit=str(path),
        audit_key=KEY,
        audit_signing_key=str(keys / "audit.key"),
    )
    manifest = json.loads((tmp_path / "audit.manifest.json").read_text())
    assert summary.audit_manifest == str(tmp_path / "audit.manifest.json")
    names = [entry["file"] for entry in manifest["files"]]
    assert names == [f"audit.part-{i:03d}.jsonl" for i in range(partitions)] + ["audit.refused.jsonl"]
    found: list[dict[str, Any]] = []
    for entry in manifest["files"]:
        report = verify_file(tmp_path / entry["file"], key=KEY, public_key=keys / "audit.pub")
        assert report.ok, (entry, report.reason)
        assert report.hashes_checked
        assert report.signatures_checked
        assert report.records == entry["records"]
        found += records(tmp_path / entry["file"])
    # every decision exactly one record, across the partitions, and the same record as serially
    assert (
        len(found) == len(lines) == summary.evaluated == manifest["decisions"] == manifest["records"] == 459
    )
    assert sorted(record["event_id"] for record in found) == sorted(line["event_id"] for line in lines)
    assert decided(found) == decided(serial_audit)
    assert any(record.get("lists") for record in found)  # feedback listed payees: versions as serially


def test_the_records_refused_before_partitioning_are_audited_as_the_serial_guard_audits_them(
    tmp_path: Path,
) -> None:
    good = [make_event(id=f"r{n}", timestamp=f"2026-03-02T1{n}:00:00+08:00") for n in range(4)]
    conflict = make_event(id="r1", timestamp="2026-03-02T19:00:00+08:00", amount="999.00")
    invalid = {**good[0], "id": "r9", "amount": "-3"}
    events = write_jsonl(tmp_path / "e.jsonl", [*good, conflict, invalid])
    serial_path = tmp_path / "serial.jsonl"
    guard = Guard(load_rule_set(SHIPPED_RULES), max_future=None, audit=str(serial_path), audit_key=KEY)
    replay([events], guard)
    guard.close()
    _lines, summary = parted([events], SHIPPED_RULES, 2, audit=str(tmp_path / "a.jsonl"), audit_key=KEY)
    refused = records(tmp_path / "a.refused.jsonl")
    # in replay order: the bad amount (10:00), then the event id reused for another event (19:00)
    assert [(r["event_id"], r["errors"][0]["code"]) for r in refused] == [
        ("r9", "greater_than"),
        ("r1", "duplicate_id"),
    ]
    serial_refused = [r for r in records(serial_path) if r["record"] == "rejected"]
    assert without_decision_ids(decided(refused)) == without_decision_ids(decided(serial_refused))
    parts = [*records(tmp_path / "a.part-000.jsonl"), *records(tmp_path / "a.part-001.jsonl")]
    first = next(r for r in parts if r["event_id"] == "r1")
    assert refused[1]["duplicate_of"] == first["decision_id"]  # names the decision it conflicts with
    assert summary.evaluated == 4


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's audit from ``payguard replay --partitions 3 --audit``, keyed and unsigned."""
    folder = tmp_path_factory.mktemp("cli")
    result = cli(
        "replay",
        *DEMO[0],
        "--history",
        DEMO[1][0],
        "--rules",
        str(SHIPPED_RULES),
        "--partitions",
        "3",
        "--dask-scheduler",
        "synchronous",
        "--audit",
        str(folder / "audit.jsonl"),
        "--audit-key",
        KEY,
    )
    assert result.exit_code == 0, result.stderr
    assert f"audit: 4 files, listed in {folder / 'audit.manifest.json'}" in result.stderr
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    for path in folder.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / "audit.manifest.json"


def test_audit_verify_takes_the_manifest_and_checks_every_file_it_names(written: Path) -> None:
    result = cli("audit", "verify", str(written / "audit.manifest.json"), "--key", KEY)
    assert result.exit_code == 0, result.stderr
    for part in (
        "audit.part-000.jsonl",
        "audit.part-001.jsonl",
        "audit.part-002.jsonl",
        "audit.refused.jsonl",
    ):
        assert f"{written / part}: intact" in result.stdout
    assert "every part intact, 4 files, 459 records" in result.stdout


def test_an_edited_record_in_one_partition_file_is_found(written: Path, tmp_path: Path) -> None:
    manifest = copy_of(written, tmp_path)
    part = tmp_path / "audit.part-001.jsonl"
    text = part.read_text().splitlines(keepends=True)
    record = json.loads(text[5])
    record["action"] = "allow" if record["action"] != "allow" else "hold"
    text[5] = json.dumps(record, separators=(",", ":")) + "\n"
    part.write_text("".join(text))
    result = cli("audit", "verify", str(manifest), "--key", KEY)
    assert result.exit_code == 1
    assert f"{part}:6: record was edited" in result.stderr
    assert f"{tmp_path / 'audit.part-000.jsonl'}: intact" in result.stdout


def test_a_partition_file_cut_at_a_record_verifies_alone_but_not_against_the_manifest(
    written: Path, tmp_path: Path
) -> None:
    manifest = copy_of(written, tmp_path)
    part = tmp_path / "audit.part-002.jsonl"
    part.write_text("".join(part.read_text().splitlines(keepends=True)[:-1]))
    assert cli("audit", "verify", str(part), "--key", KEY).exit_code == 0  # its chain is whole
    result = cli("audit", "verify", str(manifest), "--key", KEY)
    assert result.exit_code == 1
    assert f"{part}: holds" in result.stderr
    assert "records were removed" in result.stderr


def test_a_partition_file_removed_is_found(written: Path, tmp_path: Path) -> None:
    manifest = copy_of(written, tmp_path)
    (tmp_path / "audit.part-000.jsonl").unlink()
    result = cli("audit", "verify", str(manifest), "--key", KEY)
    assert result.exit_code == 1
    assert f"{tmp_path / 'audit.part-000.jsonl'}: cannot read" in result.stderr


def test_a_signed_manifest_that_was_edited_is_found(tmp_path: Path, keys: Path) -> None:
    parted(DEMO[0], SHIPPED_RULES, 2, audit=str(tmp_path / "audit.jsonl"), audit_key=KEY,
           audit_signing_key=str(keys / "audit.key"))  # fmt: skip
    manifest = tmp_path / "audit.manifest.json"
    public = str(keys / "audit.pub")
    assert cli("audit", "verify", str(manifest), "--key", KEY, "--public-key", public).exit_code == 0
    data = json.loads(manifest.read_text())
    data["files"] = data["files"][1:]  # hide a partition's file
    data["records"] = sum(entry["records"] for entry in data["files"])
    manifest.write_text(json.dumps(data))
    result = cli("audit", "verify", str(manifest), "--key", KEY, "--public-key", public)
    assert result.exit_code == 1
    assert "the manifest's signature does not match" in result.stderr


def test_a_partitioned_replay_never_writes_over_an_existing_audit(written: Path) -> None:
    result = cli(
        "replay", *DEMO[0], "--rules", str(SHIPPED_RULES), "--partitions", "3",
        "--audit", str(written / "audit.jsonl"), "--audit-key", KEY,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "audit.manifest.json' exists: a partitioned replay writes a new audit trail" in result.stderr
