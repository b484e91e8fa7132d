"""Sealing the audit trail against an insider: a keyed chain, signed checkpoints at a witness, one writer,
and a restart that checks what it continues from (issue 18, item 1).

Each attack below is one that succeeded on the plain SHA-256 chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from payguard import AuditError, Guard, verify_file
from payguard._audit.keys import AuditKeys, load_public_key, write_signing_pair
from payguard._audit.processors import canonical, chain_hashes, record_hash
from payguard._cli import main

from ..conftest import ROOT, make_event

WriteRules = Callable[..., Path]
RULES = """
rules:
  - id: large
    description: large payment
    when: {amount: {gte: 100000}}
    action: interrupt
    reason: Large payment.
"""
KEY = "bank-secret-of-16+bytes"


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    private, public, _signer = write_signing_pair(tmp_path / "keys")
    return private, public


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def sealed_file(
    rules: Path, folder: Path, pair: tuple[Path, Path], events: int = 7, every: int = 3
) -> tuple[Path, Path]:
    """An audit file of ``events`` decisions with a checkpoint every ``every``, and its witness."""
    audit, witness = folder / "audit.jsonl", folder / "witness.jsonl"
    with Guard.from_path(
        rules,
        audit=audit,
        audit_key=KEY,
        audit_signing_key=pair[0],
        audit_checkpoint_every=every,
        audit_checkpoints=witness,
    ) as guard:
        for n in range(events):
            guard.evaluate(make_event(id=f"e{n}", amount="150000" if n == 2 else "15"))
    return audit, witness


def rechain(records: list[dict[str, Any]], key: bytes | None) -> bytes:
    """What an insider's script does: drop the checkpoints it cannot re-sign, relink and rehash the rest."""
    previous = "0" * 64
    out = b""
    for record in records:
        if record["record"] == "checkpoint":
            continue
        record["prev_hash"] = previous
        record["hash"] = previous = record_hash(record, key)
        out += canonical(record) + b"\n"
    return out


def full_check(audit: Path, witness: Path, public: Path) -> Any:
    return verify_file(audit, key=KEY, public_key=public, checkpoints=witness)


def test_a_decision_rewritten_with_every_hash_recomputed_is_found_with_the_key(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=audit, audit_key=KEY) as guard:
        for n in range(4):
            guard.evaluate(make_event(id=f"e{n}", amount="150000" if n == 2 else "15"))
    records = lines(audit)
    assert records[2]["action"] == "interrupt"
    records[2]["action"] = "allow"
    audit.write_bytes(rechain(records, None))  # the 15-line script: SHA-256 over every record again
    report = verify_file(audit, key=KEY)
    assert (report.ok, report.first_bad_line) == (False, 1)
    assert report.reason == "record was edited: its hash does not match"


def test_without_the_key_verify_says_plainly_that_record_hashes_were_not_checked(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=audit, audit_key=KEY) as guard:
        guard.evaluate(make_event())
    report = verify_file(audit)
    assert (report.ok, report.hashes_checked) == (True, False)
    assert "record hashes were NOT checked" in report.notes[0]
    result = CliRunner().invoke(main, ["audit", "verify", str(audit)])
    assert result.exit_code == 0
    assert result.stdout == f"{audit}: form and chain intact, 1 records; hashes not checked\n"
    assert "record hashes were NOT checked" in result.stderr


def test_a_keyed_record_downgraded_to_plain_sha256_is_found(write_rules: WriteRules, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=audit, audit_key=KEY) as guard:
        for n in range(3):
            guard.evaluate(make_event(id=f"e{n}"))
    records = lines(audit)
    records[2].update(key_id=None, action="allow")
    records[2]["hash"] = record_hash(records[2])  # the last record: nothing after it links to its hash
    audit.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    report = verify_file(audit, key=KEY)
    assert (report.ok, report.first_bad_line) == (False, 3)
    assert report.reason == "record without a key_id after keyed records: it was rewritten"
    audit.write_bytes(rechain([{**r, "key_id": None} for r in records], None))
    assert verify_file(audit, key=KEY).reason == (
        "no record carries a key_id: the hashes are plain SHA-256, anyone could rewrite them"
    )


def test_masking_and_chain_keys_are_derived_apart_and_records_name_their_key(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    keys = AuditKeys.derive(KEY)
    assert len({keys.mask, keys.chain, KEY.encode()}) == 3
    rules = write_rules(RULES)
    seen = []
    for n, key in enumerate((KEY, KEY, "another-key-of-16+bytes")):
        with Guard.from_path(rules, audit=tmp_path / f"{n}.jsonl", audit_key=key) as guard:
            guard.evaluate(make_event())
        (record,) = lines(tmp_path / f"{n}.jsonl")
        seen.append((record["key_id"], record["payer"]))
    assert seen[0] == seen[1], "one key: the same key_id, and masked identifiers join"
    assert seen[2][0] != seen[0][0]
    assert seen[2][1] != seen[0][1], "the key_id says why records under another key do not join"


# -- signed checkpoints and the witness ---------------------------------------------------------------


def test_checkpoints_every_n_records_and_on_close_go_to_the_file_and_the_witness(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    audit, witness = sealed_file(write_rules(RULES), tmp_path, pair, events=7, every=3)
    kinds = [r["record"] for r in lines(audit)]
    assert kinds == ["decision"] * 3 + ["checkpoint"] + ["decision"] * 3 + [
        "checkpoint",
        "decision",
        "checkpoint",
    ]
    in_file = [r for r in lines(audit) if r["record"] == "checkpoint"]
    assert lines(witness) == in_file
    assert [c["records"] for c in in_file] == [3, 6, 7]
    decisions = [r for r in lines(audit) if r["record"] == "decision"]
    assert in_file[-1]["head"] == decisions[-1]["hash"]
    assert {c["key_id"] for c in in_file} == {AuditKeys.derive(KEY).key_id}
    report = full_check(audit, witness, pair[1])
    assert (report.ok, report.records, report.checkpoints) == (True, 7, 6)
    assert report.hashes_checked
    assert report.signatures_checked


def test_a_callable_witness_receives_each_checkpoint(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    received: list[dict[str, Any]] = []
    with Guard.from_path(
        write_rules(RULES),
        audit=tmp_path / "a.jsonl",
        audit_signing_key=pair[0],
        audit_checkpoint_every=2,
        audit_checkpoints=received.append,
    ) as guard:
        for n in range(3):
            guard.evaluate(make_event(id=f"e{n}"))
    assert [c["records"] for c in received] == [2, 3]


@pytest.mark.parametrize("attack", ["delete", "reorder", "truncate", "empty"])
def test_an_insider_holding_the_chain_key_cannot_pass_a_rewritten_file_past_the_witness(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path], attack: str
) -> None:
    audit, witness = sealed_file(write_rules(RULES), tmp_path, pair, events=7, every=3)
    records = [r for r in lines(audit) if r["record"] != "checkpoint"]
    if attack == "delete":
        del records[2]  # the interrupt of 150,000
    elif attack == "reorder":
        records[1], records[2] = records[2], records[1]
    elif attack == "truncate":
        records = records[:5]  # below the checkpoint of 6 records
    else:
        records = []
    audit.write_bytes(rechain(records, AuditKeys.derive(KEY).chain))
    assert verify_file(audit, key=KEY).ok, "the chain alone cannot tell: its key holder rebuilt it"
    report = full_check(audit, witness, pair[1])
    assert not report.ok
    assert "checkpoint at" in (report.reason or "")
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "verify",
            str(audit),
            "--key",
            KEY,
            "--public-key",
            str(pair[1]),
            "--checkpoints",
            str(witness),
        ],
    )
    assert result.exit_code == 1


def test_a_forged_or_altered_checkpoint_fails_its_signature(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    audit, witness = sealed_file(write_rules(RULES), tmp_path, pair, events=4, every=2)
    text = witness.read_text(encoding="utf-8").replace('"records":2', '"records":1', 1)
    witness.write_text(text, encoding="utf-8")
    report = full_check(audit, witness, pair[1])
    assert (
        report.reason
        == f"{witness}:1: checkpoint signature does not match: the checkpoint was altered or forged"
    )
    other = write_signing_pair(tmp_path / "other")[1]
    report = verify_file(audit, key=KEY, public_key=other)
    assert not report.ok
    assert "not by the public key given" in (report.reason or "")


def test_flipping_any_byte_of_a_small_sealed_file_is_noticed(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    """As systemd's journal sealing is tested (test-journal-verify): each byte in turn, one bit of it (the
    bit cycling with the position; every bit of every byte under ``make fuzz``), and verify must fail."""
    audit, _witness = sealed_file(write_rules(RULES), tmp_path, pair, events=2, every=2)
    original = audit.read_bytes()
    public = load_public_key(pair[1])
    assert verify_file(audit, key=KEY, public_key=public).ok
    every_bit = bool(os.environ.get("PAYGUARD_FUZZ"))
    missed = []
    for position in range(len(original)):
        for bit in range(8) if every_bit else (position % 8,):
            flipped = bytearray(original)
            flipped[position] ^= 1 << bit
            audit.write_bytes(bytes(flipped))
            if verify_file(audit, key=KEY, public_key=public).ok:
                missed.append((position, bit))
    assert missed == []


# -- lines that are not records, and restarts ------------------------------------------------------------


def test_a_complete_line_without_a_hash_is_tampering_not_an_interrupted_write(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    with Guard.from_path(write_rules(RULES), audit=audit, audit_key=KEY) as guard:
        for n in range(3):
            guard.evaluate(make_event(id=f"e{n}"))
    original = audit.read_bytes().splitlines(keepends=True)
    for injected in (b'{"record":"decision","event_id":"x","action":"allow"}\n', b'{"record":"decis\n'):
        audit.write_bytes(b"".join([*original[:2], injected, original[2]]))
        report = verify_file(audit, key=KEY)
        assert (report.ok, report.first_bad_line) == (False, 3)
        assert report.reason is not None
        assert report.reason.startswith("not an audit record")


def test_a_restarted_guard_refuses_a_file_whose_tail_was_forged(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    rules, audit = write_rules(RULES), tmp_path / "audit.jsonl"
    with Guard.from_path(rules, audit=audit, audit_key=KEY) as guard:
        guard.evaluate(make_event(id="e0"))
    (last,) = lines(audit)
    forged = {**last, "event_id": "forged", "prev_hash": last["hash"]}
    forged["hash"] = record_hash(forged)  # whatever hash it likes: the guard used to continue from it
    with audit.open("ab") as handle:
        handle.write(canonical(forged) + b"\n")
    with pytest.raises(AuditError, match="cannot be continued: record was edited"):
        Guard.from_path(rules, audit=audit, audit_key=KEY)
    with pytest.raises(AuditError, match="key_id"):
        Guard.from_path(rules, audit=audit)  # a guard without the key cannot check it either


def test_a_restarted_guard_checks_the_tail_from_its_last_checkpoint_and_the_witness(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    rules = write_rules(RULES)
    audit, witness = sealed_file(rules, tmp_path, pair, events=7, every=3)
    options: dict[str, Any] = {
        "audit_key": KEY,
        "audit_signing_key": pair[0],
        "audit_checkpoint_every": 3,
        "audit_checkpoints": witness,
    }
    with Guard.from_path(rules, audit=audit, **options) as guard:
        guard.evaluate(make_event(id="after-restart"))
    report = full_check(audit, witness, pair[1])
    assert (report.ok, report.records) == (True, 8), "the count goes on from the last checkpoint"
    kept = audit.read_bytes().splitlines(keepends=True)
    audit.write_bytes(b"".join(kept[:-2]))  # the last record and the checkpoint that sealed it
    with pytest.raises(AuditError, match="witness's last checkpoint sealed 8"):
        Guard.from_path(rules, audit=audit, **options)
    audit.write_bytes(b"".join(kept).replace(b'"event_id":"after-restart"', b'"event_id":"after-rewrite"'))
    with pytest.raises(AuditError, match="record was edited"):
        Guard.from_path(rules, audit=audit, **options)
    audit.write_bytes(b"")
    with pytest.raises(AuditError, match="it is empty, but the witness's last checkpoint sealed 8"):
        Guard.from_path(rules, audit=audit, **options)


def test_a_key_rotation_after_a_clean_shutdown_continues_and_verifies_with_both_keys(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    rules, audit = write_rules(RULES), tmp_path / "audit.jsonl"
    for key in (KEY, "the-next-key-of-16+bytes"):
        with Guard.from_path(rules, audit=audit, audit_key=key, audit_signing_key=pair[0]) as guard:
            guard.evaluate(make_event(id=key))
    assert verify_file(audit, key=[KEY, "the-next-key-of-16+bytes"], public_key=pair[1]).ok
    report = verify_file(audit, key=KEY, public_key=pair[1])
    assert (report.ok, report.first_bad_line) == (False, 3)
    assert "not with the key given" in (report.reason or "")


HOLDER = """
import sys, payguard
guard = payguard.Guard.from_path(sys.argv[1], audit=sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
"""


def test_a_second_writer_on_one_audit_file_is_refused(write_rules: WriteRules, tmp_path: Path) -> None:
    rules, audit = write_rules(RULES), tmp_path / "audit.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(rules), str(audit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(AuditError, match="being written by another guard"):
            Guard.from_path(rules, audit=audit)
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    with Guard.from_path(rules, audit=audit) as guard:  # the lock goes with the process
        guard.evaluate(make_event())


SHUTDOWN = """
import sys, payguard
guard = payguard.Guard.from_path(sys.argv[1], audit=sys.argv[2], audit_signing_key=sys.argv[3])
guard.evaluate({"id": "e1", "timestamp": "2026-03-02T10:00:00+08:00", "amount": "10", "currency": "CNY",
                "payer": {"account": "A"}, "payee": {"account": "B"}})
"""


def test_a_clean_shutdown_without_close_still_seals_the_trail(
    write_rules: WriteRules, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    audit = tmp_path / "audit.jsonl"
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHUTDOWN), str(write_rules(RULES)), str(audit), str(pair[0])],
        check=True,
        cwd=ROOT,
    )
    assert [r["record"] for r in lines(audit)] == ["decision", "checkpoint"]


# -- the command line ----------------------------------------------------------------------------------


def test_keygen_writes_a_pair_that_signs_and_verifies_and_never_overwrites(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["audit", "keygen", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0
    private, public = tmp_path / "k" / "audit.key", tmp_path / "k" / "audit.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert result.stdout.startswith("signer ")
    again = CliRunner().invoke(main, ["audit", "keygen", "--out", str(tmp_path / "k")])
    assert again.exit_code == 2
    assert "never overwrites a key" in again.stderr
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(make_event(id=f"e{n}")) + "\n" for n in range(3)), encoding="utf-8")
    audit, witness = tmp_path / "audit.jsonl", tmp_path / "witness.jsonl"
    replayed = CliRunner().invoke(
        main,
        [
            "replay", str(events), "--rules", str(write_rules(RULES)), "--audit", str(audit),
            "--audit-key", KEY, "--audit-signing-key", str(private), "--audit-checkpoints", str(witness),
        ],
    )  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    verified = CliRunner().invoke(
        main,
        [
            "audit",
            "verify",
            str(audit),
            "--key",
            KEY,
            "--public-key",
            str(public),
            "--checkpoints",
            str(witness),
        ],
    )
    assert verified.exit_code == 0
    assert verified.stdout == f"{audit}: intact, 3 records, 2 checkpoints agree\n"
    missing = CliRunner().invoke(main, ["audit", "verify", str(tmp_path / "missing.jsonl")])
    assert missing.exit_code == 3


def test_the_remnant_of_a_crash_is_named_by_the_restart_and_nothing_else_passes_for_one(
    write_rules: WriteRules, tmp_path: Path
) -> None:
    rules, audit = write_rules(RULES), tmp_path / "audit.jsonl"
    with Guard.from_path(rules, audit=audit, audit_key=KEY) as guard:
        guard.evaluate(make_event(id="e0"))
    with audit.open("ab") as handle:
        handle.write(b'{"record":"decision","event_id":"half-writ')  # what a kill mid-write leaves
    with Guard.from_path(rules, audit=audit, audit_key=KEY) as guard:
        guard.evaluate(make_event(id="e1"))
    resumed = json.loads(audit.read_bytes().splitlines()[2])
    remnant = b'{"record":"decision","event_id":"half-writ'
    assert resumed["interrupted"] == {"length": len(remnant), "sha256": hashlib.sha256(remnant).hexdigest()}
    assert verify_file(audit, key=KEY).ok
    audit.write_bytes(audit.read_bytes().replace(b"half-writ", b"half-wrot"))
    report = verify_file(audit, key=KEY)
    assert (report.ok, report.first_bad_line) == (False, 2)


@given(key=st.binary(min_size=1, max_size=100), memo=st.text(max_size=50))
def test_the_chain_computes_the_hmac_that_verify_recomputes(key: bytes, memo: str) -> None:
    chain = chain_hashes(key=key, key_id="k")
    record = chain(None, "msg", {"record": "decision", "memo": memo})
    body = canonical({k: v for k, v in record.items() if k != "hash"})
    assert record["hash"] == hmac.new(key, body, "sha256").hexdigest() == record_hash(record, key)
