"""The integrity sections of `make bench` (issue 18): the audit seal, the idempotency digest, the memo path.

Each function imports `bench` (the script beside this file) when it runs, for its traffic and table helpers:
at import time `bench` is still being defined.
"""

from __future__ import annotations

import random
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from payguard import parse_event
from payguard._event import digest


def bench_seal(quick: bool) -> dict[str, Any]:
    """The audit trail's seal: unkeyed SHA-256 chain (before issue 18), HMAC chain, HMAC chain with an
    Ed25519 checkpoint every 1,000 records to the file and a witness file. Issue 18 allows 2 µs."""
    import bench

    from payguard._audit.keys import write_signing_pair

    history, raw = bench.traffic(5000 if quick else 30000)
    events = [parse_event(e) for e in raw]
    bench.settle()
    print("\n### Audit seal: default rule set, default engine, file sink; best of 3 runs\n")
    bench.header("audit trail", "µs/decision", "adds to the unkeyed chain µs")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        private, _public, _signer = write_signing_pair(Path(tmp) / "keys")
        variants: dict[str, dict[str, Any]] = {
            "unkeyed SHA-256 chain": {},
            "keyed HMAC chain (audit_key)": {"audit_key": "bench-key-of-16+bytes"},
            "keyed chain + checkpoints every 1,000, to a callable witness": {
                "audit_key": "bench-key-of-16+bytes",
                "audit_signing_key": private,
                "audit_checkpoints": lambda _checkpoint: None,
            },
            "keyed chain + checkpoints every 1,000": {
                "audit_key": "bench-key-of-16+bytes",
                "audit_signing_key": private,
                "audit_checkpoints": Path(tmp) / "witness.jsonl",
            },
        }
        for name, options in variants.items():
            times = []
            for attempt in range(3):  # the file system's write-back makes single runs vary
                sink = Path(tmp) / f"seal-{len(results)}-{attempt}.jsonl"
                chosen = dict(options)
                if isinstance(chosen.get("audit_checkpoints"), Path):  # a new audit file, a new witness file
                    chosen["audit_checkpoints"] = Path(tmp) / f"witness-{attempt}.jsonl"
                guard = bench._default_guard(audit=sink, **chosen)
                guard.record(history)
                elapsed, _ = bench.timed(events, guard.evaluate)
                guard.close()
                times.append(elapsed / len(events))
            results[name] = min(times)
            print(
                bench.row(
                    name, bench.us(results[name]), bench.us(results[name] - next(iter(results.values())))
                )
            )
    return results


def bench_idempotency(quick: bool) -> dict[str, Any]:
    """What the idempotency record costs a decision: the event's digest, and a repeated id answered."""
    import bench

    history, raw = bench.traffic(5000 if quick else 30000)
    events = [parse_event(e) for e in raw]
    bench.settle()
    print("\n### Idempotency: the digest of each event, and repeated ids (default rules, no audit)\n")
    bench.header("digest µs/event", "evaluate µs/decision", "repeated id µs/answer")
    guard = bench._default_guard(engine="python")
    guard.record(history)
    hashing = bench._loop(events, digest) / len(events)
    fresh = bench._loop(events, guard.evaluate) / len(events)
    repeated = bench._loop(events, guard.evaluate) / len(events)  # every id now decided: the first decisions
    guard.close()
    print(bench.row(bench.us(hashing), bench.us(fresh), bench.us(repeated)))
    return {"digest": hashing, "evaluate": fresh, "repeated": repeated}


def _normalize_before(text: str) -> str:
    """The keyword normalisation before TR39 folding (NFKC, case folding, punctuation and spaces dropped),
    for comparison."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if not unicodedata.category(ch).startswith(("P", "Z", "S", "C")))


def bench_text(quick: bool) -> dict[str, Any]:
    """The memo path: normalising a memo for keyword matching, the first time (a memo not seen before)
    and again (remembered), before and after ignorable dropping and confusable folding."""
    import bench

    from payguard._common import text

    count = 20_000 if quick else 200_000
    rng = random.Random(3)
    words = ["转入", "安全账户", "房租", "工资", "rent", "for", "March", "invoice", "safe", "account", "谢谢"]
    memos = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) + f" {n}" for n in range(count)]
    results: dict[str, Any] = {}
    print("\n### Memo normalisation for keyword matching, one thread\n")
    bench.header("normalisation", "new memo µs", "repeated memo µs")
    for name, function in (("before (NFKC, case, punctuation)", _normalize_before), ("now (+ TR39)", None)):
        text._TEXTS.clear()
        call = function or text.normalize_text
        first = bench._loop(memos, call)
        again = bench._loop(memos, call) if function is None else first
        print(bench.row(name, bench.us(first / count), bench.us(again / count)))
        results[name] = {"new_us": first / count * 1e6, "repeated_us": again / count * 1e6}
    return results
