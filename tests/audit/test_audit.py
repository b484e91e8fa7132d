"""The audit trail: every decision recorded, masked, chained, and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payguard import Action, AuditError, Guard, InvalidEventError, MemoryStore, verify_file
from payguard._audit.keys import AuditKeys
from payguard._audit.processors import GENESIS, record_hash
from payguard._audit.sinks import lines_backwards
from payguard._stores.history import AccountHistory
from payguard._stores.memory import _MemoryTransaction

from ..conftest import ROOT, make_event

WriteRules = Callable[..., Path]
RULES = """
keyword_sets:
  safe_account: [安全账户]
rules:
  - id: large_new
    description: large payment to a new payee
    when: {amount: {gte: 20000}, is_new_payee: true, payee.account: {exists: true}}
    action: hold
    reason: Large payment to someone new.
  - id: safe_memo
    description: safe-account language
    when: {memo: {contains_any: safe_account}}
    action: interrupt
    reason: Safe account scam.
  - id: night_watch
    description: shadow
    mode: shadow
    when: {is_night: true}
    action: review
    reason: night
"""


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def audited(write_rules: WriteRules, tmp_path: Path) -> tuple[Guard, Path]:
    path = tmp_path / "audit.jsonl"
    guard = Guard.from_path(write_rules(RULES), audit=path, audit_key="bank-secret-of-16-bytes")
    yield guard, path
    guard.close()


def test_each_decision_has_one_record_with_what_a_regulator_asks(audited: tuple[Guard, Path]) -> None:
    guard, path = audited
    decision = guard.evaluate(
        make_event(amount="25000", memo="安全账户", timestamp="2026-03-02T01:00:00+08:00")
    )
    (record,) = records(path)
    assert record["record"] == "decision"
    assert record["decision_id"] == decision.decision_id
    assert (record["event_id"], record["event_time"], record["action"]) == (
        "evt-1",
        "2026-03-02T01:00:00+08:00",
        "interrupt",
    )
    assert [h["rule_id"] for h in record["hits"]] == ["large_new", "safe_memo"]
    assert [h["rule_id"] for h in record["shadow_hits"]] == ["night_watch"]
    assert record["ruleset"] == {"id": "test", "version": "1", "digest": guard.ruleset.digest}
    assert record["engine"] == guard.engine
    assert record["latency_us"] > 0
    assert record["payguard_version"]
    assert record["evidence"]["amount"] == "25000"
    assert record["evidence"]["is_new_payee"] is True
    assert record["evidence"]["is_night"] is True
    assert record["evidence"]["memo"] == {"erased": True, "length": 4}
    assert record["prev_hash"] == GENESIS
    keys = AuditKeys.derive("bank-secret-of-16-bytes")
    assert record["key_id"] == keys.key_id
    assert record["hash"] == record_hash(record, keys.chain)


def test_a_rejected_event_leaves_a_trace(audited: tuple[Guard, Path]) -> None:
    guard, path = audited
    with pytest.raises(InvalidEventError):
        guard.evaluate(make_event(amount="-5", channel="pigeon"))
    (record,) = records(path)
    assert record["record"] == "rejected"
    assert record["event_id"] == "evt-1"
    assert {e["field"] for e in record["errors"]} == {"amount", "channel"}


def test_identifiers_are_masked_and_joinable_and_names_dropped(audited: tuple[Guard, Path]) -> None:
    guard, path = audited
    guard.evaluate(make_event(id="a", amount="25000"))
    guard.evaluate(make_event(id="b", amount="30000"))
    first, second = records(path)
    assert first["payer"].startswith("…2222#")
    assert first["payer"] == second["payer"], "the keyed hash lets records about one account be joined"
    assert {"payer", "payee", "evidence.payee.account"} <= set(first["masked"])
    text = path.read_text(encoding="utf-8")
    for secret in ("6222000011112222", "6222000033334444", "Wang Fang", "Li Lei"):
        assert secret not in text


# Realistic identifiers: not a run of one digit, which would also occur inside hashes.
account_numbers = (
    st.from_regex(r"[0-9]{12,19}", fullmatch=True)
    | st.from_regex(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{12,20}", fullmatch=True)
).filter(lambda s: len(set(s)) > 4)
names = st.from_regex(r"[A-Z][a-z]{3,8} [A-Z][a-z]{3,10}", fullmatch=True) | st.from_regex(
    r"[\u4e00-\u9fa5]{3,4}", fullmatch=True
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payer=account_numbers, payee=account_numbers, payer_name=names, payee_name=names, device=account_numbers
)
def test_no_full_account_number_or_name_ever_reaches_the_audit_output(
    write_rules: WriteRules,
    tmp_path: Path,
    payer: str,
    payee: str,
    payer_name: str,
    payee_name: str,
    device: str,
) -> None:
    path = tmp_path / f"audit-{os.urandom(4).hex()}.jsonl"
    event = make_event(
        amount="25000",
        memo=f"to {payee_name} 安全账户",
        payer={"account": payer, "name": payer_name, "customer_id": payer},
        payee={"account": payee, "name": payee_name},
        session={"device_id": device, "ip": "203.0.113.77"},
    )
    with Guard.from_path(write_rules(RULES), audit=path, audit_key="another-secret-key") as guard:
        guard.evaluate(event)
        with pytest.raises(InvalidEventError):
            guard.evaluate({**event, "id": "bad", "amount": "0"})
    text = path.read_text(encoding="utf-8")
    for secret in (payer, payee, payer_name, payee_name, device, "203.0.113.77"):
        assert secret not in text


PRIVATE_RULES = """
attributes:
  mcc: {type: string, public: true}
  employer: string
  salary_band: int
rules:
  - id: vulnerable_at_odd_merchant
    description: a vulnerable customer paying a merchant in an unusual category
    when:
      payer.vulnerability: {exists: true}
      attributes.mcc: "7995"
      attributes.employer: {exists: true}
      attributes.salary_band: {gte: 1}
    action: review
    reason: check with the customer
"""


def test_evidence_masks_attributes_unless_public_and_never_shows_vulnerability_text(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    event = make_event(
        payer={"vulnerability": ["bereaved since March", "dementia diagnosis"]},
        attributes={"mcc": "7995", "employer": "Shenzhen Metro Line 4 depot", "salary_band": 3},
    )
    with Guard.from_path(
        write_rules(PRIVATE_RULES), audit=path, audit_key="bank-secret-of-16-bytes"
    ) as guard:
        assert guard.evaluate(event).rule_ids == ("vulnerable_at_odd_merchant",)
    text = path.read_text(encoding="utf-8")
    for secret in ("bereaved", "dementia", "Shenzhen Metro"):
        assert secret not in text
    (record,) = records(path)
    evidence = record["evidence"]
    assert evidence["attributes.mcc"] == "7995"  # declared public: true
    assert evidence["attributes.employer"].startswith("…")  # masked like an account number
    assert evidence["attributes.salary_band"].startswith("#")
    assert evidence["payer.vulnerability"] == {"erased": True, "items": 2}
    assert {"evidence.attributes.employer", "evidence.attributes.salary_band"} <= set(record["masked"])
    assert "evidence.payer.vulnerability" in record["erased"]
    assert "_public_attributes" not in record
    assert verify_file(path).ok


def test_a_callable_or_a_structlog_logger_can_be_the_sink(write_rules: WriteRules) -> None:
    received: list[dict[str, Any]] = []
    with Guard.from_path(write_rules(RULES), audit=received.append) as guard:
        guard.evaluate(make_event())
    assert [r["event_id"] for r in received] == ["evt-1"]
    capture = structlog.testing.CapturingLogger()
    bound = structlog.wrap_logger(capture, processors=[structlog.processors.JSONRenderer()])
    with Guard.from_path(write_rules(RULES), audit=bound) as guard:
        guard.evaluate(make_event())
    (call,) = capture.calls
    assert json.loads(call.args[0])["event"] == "decision"
    raw = structlog.testing.CapturingLogger()
    with Guard.from_path(write_rules(RULES), audit=raw) as guard:
        guard.evaluate(make_event())
    assert json.loads(raw.calls[0].args[0])["event_id"] == "evt-1"


def test_payguard_never_configures_structlog(write_rules: WriteRules, tmp_path: Path) -> None:
    before = structlog.get_config()
    with Guard.from_path(write_rules(RULES), audit=tmp_path / "a.jsonl") as guard:
        guard.evaluate(make_event())
    assert structlog.get_config() == before


def test_a_failing_sink_raises_audit_error_and_nothing_is_counted(write_rules: WriteRules) -> None:
    calls = {"n": 0}

    def flaky(record: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("kafka is down")

    with Guard.from_path(write_rules(RULES), audit=flaky) as guard:
        with pytest.raises(AuditError, match="kafka is down"):
            guard.evaluate(make_event(amount="25000"))
        retried = guard.evaluate(make_event(amount="25000"))
        assert retried.action is Action.HOLD
        assert retried.features["is_new_payee"] is True


def tamper(path: Path, how: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if how == "edit":
        lines[2] = lines[2].replace('"action":"hold"', '"action":"allow"')
    elif how == "remove":
        del lines[2]
    elif how == "reorder":
        lines[2], lines[3] = lines[3], lines[2]
    elif how == "cut":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(("how", "bad_line"), [("edit", 3), ("remove", 3), ("reorder", 3), ("cut", 5)])
def test_verify_names_the_first_bad_line_of_a_tampered_file(
    write_rules: WriteRules, tmp_path: Path, how: str, bad_line: int
) -> None:
    path = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=path) as guard:
        for n in range(5):
            guard.evaluate(make_event(id=f"e{n}", amount="25000", payee={"account": f"P-{n}"}))
    assert verify_file(path).ok
    tamper(path, how)
    report = verify_file(path)
    assert (report.ok, report.first_bad_line) == (False, bad_line)
    cli = subprocess.run(
        [sys.executable, "-m", "payguard._cli", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1
    assert f"{path}:{bad_line}:" in cli.stderr


def test_eight_threads_write_whole_lines_in_one_valid_chain(write_rules: WriteRules, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=path) as guard:

        def work(worker: int) -> None:
            for n in range(150):
                guard.evaluate(make_event(id=f"w{worker}-{n}", payer={"account": f"A-{worker}"}))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report = verify_file(path)
    assert (report.ok, report.records) == (True, 1200)
    assert len({r["event_id"] for r in records(path)}) == 1200


WRITER = """
import sys, payguard
guard = payguard.Guard.from_path(sys.argv[1], audit=sys.argv[2])
start = int(sys.argv[3])
print("ready", flush=True)
n = start
while True:
    guard.evaluate({"id": f"e{n}", "timestamp": "2026-03-02T10:00:00+08:00", "amount": "10", "currency": "CNY",
                    "payer": {"account": "A"}, "payee": {"account": "B"}, "memo": "x" * 1500})
    n += 1
"""


@pytest.mark.slow
def test_a_process_killed_mid_write_loses_at_most_its_last_line_and_the_chain_continues(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    rules = write_rules(RULES)
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(WRITER)
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(rules), str(path), "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    lines = path.read_bytes().split(b"\n")
    complete = lines[:-1]
    assert all(json.loads(line)["record"] == "decision" for line in complete)
    assert len(complete) > 10
    # Make sure the interesting case is covered even if the kill fell between two lines.
    if lines[-1] == b"":
        with path.open("ab") as handle:
            handle.write(b'{"record":"decision","event_id":"half-writ')
    report = verify_file(path)
    assert (report.ok, report.first_bad_line, report.reason) == (
        False,
        len(complete) + 1,
        "incomplete last record: an interrupted write, or the file was cut",
    )
    with Guard.from_path(rules, audit=path) as guard:
        guard.evaluate(make_event(id="after-restart"))
    report = verify_file(path)
    assert report.ok
    assert report.records == len(complete) + 2, "the restart's resumed record names the partial line"
    assert report.notes[:1] == (
        f"line {len(complete) + 1}: incomplete record left by an interrupted write; chain continues",
    )


class _LostConnection(_MemoryTransaction):
    def account(self, key: str) -> AccountHistory:
        raise ConnectionError("store is down")


class _FlakyStore(MemoryStore):
    """A store that opens transactions but loses its connection when a history is read."""

    def transaction(self) -> _MemoryTransaction:
        return _LostConnection(self)


class _DownStore(MemoryStore):
    """A store that cannot even begin a transaction."""

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTransaction]:
        raise ConnectionError("store is down")
        yield _MemoryTransaction(self)  # pragma: no cover - never reached


@pytest.mark.parametrize("store", [_FlakyStore, _DownStore])
def test_an_internal_failure_is_held_and_audited_with_its_cause(
    write_rules: WriteRules, tmp_path: Path, store: type[MemoryStore]
) -> None:
    path = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=path, store=store()) as guard:
        decision = guard.evaluate(make_event())
    assert decision.action is Action.HOLD
    assert decision.error == "ConnectionError: store is down"
    (record,) = records(path)
    assert (record["action"], record["error"]) == ("hold", "ConnectionError: store is down")
    assert record["hits"][0]["rule_id"] == "payguard.internal_error"


def test_with_on_error_raise_a_failing_store_raises(write_rules: WriteRules) -> None:
    guard = Guard.from_path(write_rules(RULES), store=_DownStore(), on_error="raise")
    with guard, pytest.raises(ConnectionError):
        guard.evaluate(make_event())


def test_each_decision_records_the_digest_of_the_rule_set_that_made_it(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    v2 = write_rules(RULES.replace("gte: 20000", "gte: 10000"), name="v2.yaml")
    with Guard.from_path(write_rules(RULES), audit=path) as guard:
        first = guard.ruleset.digest
        stop = threading.Event()

        def evaluate() -> None:
            n = 0
            while not stop.is_set():
                guard.evaluate(make_event(id=f"t{n}", amount="15000", payee={"account": f"P{n}"}))
                n += 1

        worker = threading.Thread(target=evaluate)
        worker.start()
        time.sleep(0.05)
        second = guard.reload(v2).digest
        time.sleep(0.05)
        stop.set()
        worker.join()
    seen = records(path)
    assert {r["ruleset"]["digest"] for r in seen} == {first, second}
    for record in seen:
        held = record["action"] == "hold"
        assert held == (record["ruleset"]["digest"] == second), "15000 is held only by the reloaded rule set"


def test_fsync_policy_is_validated(tmp_path: Path, write_rules: WriteRules) -> None:
    with pytest.raises(AuditError, match="fsync"):
        Guard.from_path(write_rules(RULES), audit=tmp_path / "a.jsonl", audit_fsync="sometimes")
    with Guard.from_path(write_rules(RULES), audit=tmp_path / "b.jsonl", audit_fsync="always") as guard:
        guard.evaluate(make_event())
    assert verify_file(tmp_path / "b.jsonl").ok


def _lines_reading_forward(data: bytes) -> list[tuple[int, bytes]]:
    """The obvious way: every newline-terminated line with its offset, last first."""
    found, offset = [], 0
    for raw in data.split(b"\n")[:-1]:
        found.append((offset, raw))
        offset += len(raw) + 1
    return found[::-1]


audit_lines = st.one_of(
    st.text("0123456789abcdef", min_size=1, max_size=8).map(lambda h: f'{{"hash":"{h}","prev_hash":"x"}}\n'),
    st.just('{"hash":"cut-short'),  # what a crash mid-write leaves
    st.just('{"hash":"whole-but-unterminated","prev_hash":"x"}'),  # cut just before its newline
    st.just("\n"),
    st.just("not json\n"),
    st.just('{"no_hash":1}\n'),
)


@given(lines=st.lists(audit_lines, max_size=12), block=st.integers(1, 40))
def test_the_lines_found_reading_backwards_are_the_ones_found_reading_forwards(
    lines: list[str], block: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    data = "".join(lines).encode()
    path.write_bytes(data)
    with path.open("rb") as handle:
        assert list(lines_backwards(handle, block=block)) == _lines_reading_forward(data)
