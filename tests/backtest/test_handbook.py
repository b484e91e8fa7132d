"""The handbook's card file (``shared/data/handbook``, read in place) partitioned in 2 is the serial
replay, line for line after sorting by event id: its first days, written to a temporary file, so that both
replays take seconds rather than the full file's minutes (``make bench`` replays all of it)."""

from __future__ import annotations

import gzip
from datetime import timedelta

import pytest

from ..conftest import ROOT, SHARED_DATA
from .worlds import by_event, decided, parted, serial

HANDBOOK = SHARED_DATA / "handbook" / "handbook_2018-04.csv.gz"
RULES = ROOT / "examples" / "handbook" / "rules.yaml"
ROWS = 20_000  # about two days of the month's 288,062 card payments


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if not HANDBOOK.exists():
        pytest.skip(f"{HANDBOOK} is not there: shared/data is not beside the checkout")
    path = tmp_path_factory.mktemp("handbook") / "handbook_head.csv"
    with gzip.open(HANDBOOK, "rt", encoding="utf-8") as source, path.open("w", encoding="utf-8") as out:
        for number, line in enumerate(source):
            if number > ROWS:  # the header, then ROWS payments
                break
            out.write(line)
    return [str(path)]


def test_the_handbook_card_payments_in_two_partitions_are_the_serial_replay(head: list[str]) -> None:
    # labels known a day later list the fraud's terminal: feedback within the slice
    options = {"mapping": "handbook", "feedback_delay": int(timedelta(days=1).total_seconds())}
    expected, expected_summary = serial(head, RULES, **options)
    lines, summary = parted(head, RULES, 2, **options)
    assert len(lines) == summary.evaluated > 19_000  # amounts of 0 are rejected, as serially
    assert by_event(lines) == by_event(expected)
    assert decided(summary.to_dict()) == decided(expected_summary)
    assert summary.listed_by_feedback > 0
    assert any(line["action"] != "allow" for line in lines)
    runs = summary.to_dict()["partitioned"]["per_iteration"]
    # the verifying iteration replays only the accounts whose credits a stop in the other partition changed
    assert len(runs) >= 2
    assert runs[-1]["rows_replayed"] < runs[0]["rows_replayed"] / 10
