"""payguard benchmarks: `make bench` (all sections) or `python benchmarks/bench.py SECTION...`.

Sections:
  engine    generated rule sets of 10, 25 and 100 rules, each engine, against the bare durable_rules C calls
  features  feature computation per event (memory and SQLite stores), memory per active account
  audit     what the audit trail (file sink, default flush policy) adds per decision
  seal      what the keyed chain (audit_key) and signed checkpoints (every 1,000) add to the audit trail
  e2e       the default rule set end to end on one thread: throughput, p50/p99/p99.9, where the time goes;
            and a generated 500-rule set
  replay    the replay of shared/data/handbook/handbook_2018-04.csv.gz with the default rules, audit on
  scoring   the default rule set without and with scores on every rule (scoring.py)
  workbench what replay --report adds, and explain of one card event against replaying up to it (workbench.py)
  serve     payguard serve over loopback: 1 and 8 clients, 1 and 2 workers, the library call (sidecar.py)
  redis     a RedisStore on a loopback redis-server: record/s, decisions/s of 1 and 2 evaluator processes,
            round trips and Redis CPU per event (redis_store.py)
  backtest  the handbook file serially and partitioned on a Dask LocalCluster of 1 and 2 workers (backtest.py)
  text      the memo path: normalising a new or a repeated memo for keyword matching, before and after
            TR39 confusable folding and ignorable dropping

Numbers are wall-clock on the machine it runs on; they print as Markdown tables. `--quick` uses fewer events.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import random
import re
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import integrity  # the seal, idempotency and text sections, beside this file
import redis_store  # the redis section, beside this file
import scoring  # the scoring section, beside this file
import sidecar  # the serve section, beside this file
import workbench  # the workbench section, beside this file

import backtest  # the backtest section, beside this file
import payguard
from payguard import Guard, SQLiteStore, load_rule_set, parse_event
from payguard._build import COMPILED, compiled_modules
from payguard._event import digest
from payguard._stores.history import EMPTY
from payguard._synthetic import benign_traffic

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
try:
    import durable_rules_engine

    ENGINES = ["durable", "python"]
except ImportError:
    durable_rules_engine = None
    ENGINES = ["python"]

_CONDITIONS = [
    "amount: {gte: 20000}",
    "amount: {gte: 5000}",
    "amount: {lt: 100}",
    "payee.type: personal",
    "payee.type: [merchant, business]",
    "channel: atm",
    "channel: [mobile_app, internet_banking]",
    "session.on_call: true",
    "not: {session.caller_in_contacts: true}",
    "session.screen_sharing: true",
    "payer.age: {gte: 65}",
    "payer.age: {lt: 25}",
    "memo: {contains_any: safe}",
    "memo: {contains_any: task}",
    "memo: {exists: true}",
    "cop_result: no_match",
    "intel.payee_mule_score: {gte: 0.5}",
    "is_new_payee: true",
    "is_night: true",
    "outbound_count_1h: {gte: 3}",
]


def generated_rules(count: int, seed: int = 1) -> str:
    """A rule set of ``count`` rules of one to three shared conditions, as real rule sets share them."""
    rng = random.Random(seed)
    lines = [
        "ruleset: {id: generated, version: '1', currency: CNY, timezone: Asia/Shanghai}",
        "keyword_sets:",
        "  safe: [安全账户, safe account]",
        "  task: [刷单, 佣金, commission]",
        "rules:",
    ]
    for n in range(count):
        chosen = rng.sample(range(len(_CONDITIONS)), rng.randint(1, 3))
        # one test per field (YAML keys are unique in a mapping)
        by_field = {_CONDITIONS[i].split(":")[0]: _CONDITIONS[i] for i in chosen}
        conditions = list(by_field.values())
        action = rng.choice(["review", "hold", "interrupt"])
        lines.append(f"  - id: r{n:03d}")
        lines.append("    description: generated")
        lines.append("    when:")
        lines += [f"      {c}" for c in conditions]
        lines.append(f"    action: {action}")
        lines.append("    reason: generated")
    return "\n".join(lines) + "\n"


def traffic(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(history, events): ordinary traffic from the benign generator, ``count`` events to measure."""
    customers = max(50, count // 35)
    history, month = benign_traffic(
        customers, seed=3, start=datetime(2026, 3, 1, tzinfo=UTC), history_days=30
    )
    return history, month[:count]


def settle() -> None:
    """Collect, then hide every object alive now (the benchmark's own inputs) from the garbage collector.

    Later collections then traverse what payguard builds (its store, its caches) and not the tens of
    thousands of parsed events the benchmark holds in lists, which no pipeline holds: a full collection over
    those cost up to 0.4 s, landing in one section's timing or another's by chance.
    """
    gc.collect()
    gc.freeze()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "p99.9": at(0.999)}


def timed(events: list[Any], call: Callable[[Any], Any]) -> tuple[float, list[float]]:
    gc.collect()
    samples = []
    clock = time.perf_counter
    start = clock()
    for event in events:
        t = clock()
        call(event)
        samples.append(clock() - t)
    return clock() - start, samples


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def header(*cells: str) -> None:
    """Print the head of a Markdown table."""
    print(row(*cells))
    print(row(*["---"] * len(cells)))


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}"


# -- sections -----------------------------------------------------------------------------------------


def bench_engine(quick: bool) -> dict[str, Any]:
    count = 5000 if quick else 30000
    _, raw = traffic(count)
    events = [parse_event(e) for e in raw]
    settle()
    results: dict[str, Any] = {}
    print("\n### Matching engines: generated rule sets, one thread, in-memory store, no audit\n")
    header(
        "rules",
        "engine",
        "decisions/s",
        "p50 µs",
        "p99 µs",
        "match only µs",
        "bare C calls µs",
        "adapter / bare",
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in (10, 25, 100):
            path = Path(tmp) / f"r{size}.yaml"
            path.write_text(generated_rules(size), encoding="utf-8")
            ruleset = load_rule_set(path)
            for engine in ENGINES:
                guard = Guard(ruleset, engine=engine)
                elapsed, samples = timed(events, guard.evaluate)
                compiled, lists = guard.pipeline, guard.lists
                facts = []
                with guard.store.transaction() as txn:
                    for event in events[:5000]:
                        _context, features = compiled.compute(compiled.validate(event), txn)
                        facts.append(compiled.plan.fact(event, features, lists))
                # best of three, the adapter and the bare C calls taking turns: a slow moment of the machine
                # then weighs on neither side alone
                match_time = bare_time = math.inf
                for _ in range(3):
                    match_time = min(match_time, _loop(facts, compiled.matcher.match))
                    if engine == "durable":
                        bare_time = min(bare_time, _bare_durable(compiled.matcher, facts))
                bare = ratio = "-"
                if engine == "durable":
                    bare = us(bare_time / len(facts))
                    ratio = f"{match_time / bare_time:.2f}"
                p = percentiles(samples)
                rate = len(events) / elapsed
                print(
                    row(
                        size,
                        engine,
                        f"{rate:,.0f}",
                        us(p["p50"]),
                        us(p["p99"]),
                        us(match_time / len(facts)),
                        bare,
                        ratio,
                    )
                )
                results[f"{size}/{engine}"] = {
                    "rate": rate,
                    **p,
                    "match": match_time / len(facts),
                    "bare": bare,
                }
    return results


def _loop(items: list[Any], call: Callable[[Any], Any]) -> float:
    """The time of ``call`` over ``items`` in one tight loop, timed as ``_bare_durable`` times the C calls
    (``timed`` reads the clock around every call, which would charge 0.1 µs a call to one side only)."""
    gc.collect()
    start = time.perf_counter()
    for item in items:
        call(item)
    return time.perf_counter() - start


def _bare_durable(matcher: Any, facts: list[dict[str, Any]]) -> float:
    """The C calls alone for the same compiled rules, as the adapter makes them: assert, start, drain,
    retract by id, on facts encoded beforehand."""
    from payguard._engine.durable import RETRACT, _part, encode_fact_carefully

    engine = durable_rules_engine
    # the texts the adapter ends up sending each chunk: the careful form where orjson wrote a float as 1e-07
    refused = re.compile(r":-?[0-9]+[eE]")
    texts = [
        [
            encode_fact_carefully(_part(fact, keys)) if refused.search(text) else text
            for keys, text in zip(matcher.keys, matcher.texts(fact), strict=True)
        ]
        for fact in facts
    ]
    handles = matcher.handles
    gc.collect()
    start = time.perf_counter()
    for chunk_texts in texts:
        for handle, text in zip(handles, chunk_texts, strict=True):
            code, state = engine.assert_fact(handle, text)
            if code == 1:
                continue
            result = engine.start_action_for_state(handle, state)
            message = result[1] if result else None
            while message:
                message = engine.complete_and_start_action(handle, state)
            engine.retract_fact(handle, RETRACT)
    return time.perf_counter() - start


def _all_features_rules() -> str:
    from payguard._rules.fields import FEATURES

    tests = "\n".join(f"        - {{{name}: {{exists: true}}}}" for name in FEATURES)
    return (
        "ruleset: {id: features, version: '1', currency: CNY, timezone: Asia/Shanghai}\n"
        "keyword_sets: {safe: [安全账户]}\n"
        "rules:\n  - id: reads_every_feature\n    description: d\n    mode: shadow\n    when:\n      any:\n"
        f"{tests}\n    action: review\n    reason: r\n"
    )


def _synthetic(count: int, accounts: int, seed: int = 5) -> list[Any]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = []
    for n in range(count):
        payer = rng.randrange(accounts)
        events.append(
            parse_event(
                {
                    "id": f"s{n}",
                    "timestamp": (start + timedelta(seconds=n * 30 * 86400 // count)).isoformat(),
                    "amount": f"{rng.randint(100, 500000) / 100:.2f}",
                    "currency": "CNY",
                    "payer": {"account": f"A{payer:06d}", "balance_before": "50000.00"},
                    "payee": {
                        "account": f"A{rng.randrange(accounts):06d}"
                        if rng.random() < 0.3
                        else f"M{rng.randrange(2000):04d}",
                        "type": "personal",
                    },
                }
            )
        )
    return events


def bench_features(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.yaml"
        path.write_text(_all_features_rules(), encoding="utf-8")
        ruleset = load_rule_set(path)
        # Each event is validated just before its features are computed (outside the timer), as in
        # ``evaluate``: features computed over events parsed long before would also pay for bringing each
        # event object back into the CPU caches, which no pipeline pays.
        events = [e.to_dict() for e in _synthetic(20000 if quick else 100000, 5000)]
        settle()
        print("\n### Features: every feature of the catalogue computed, one thread\n")
        header("store", "features per event µs (compute + history update)", "evaluate events/s")
        for name, factory in (
            ("memory", lambda: None),
            ("sqlite", lambda: SQLiteStore(Path(tmp) / f"{time.time_ns()}.db")),
        ):
            store = factory()
            guard = Guard(ruleset, engine="python", store=store)
            compiled = guard.pipeline
            sample = events if name == "memory" else events[:20000]
            feature_time = 0.0
            clock = time.perf_counter
            for data in sample:
                admitted = compiled.validate(data)
                with guard.store.transaction() as txn:
                    t = clock()
                    context, _features = compiled.compute(admitted, txn)
                    compiled.features.commit(context, payguard.Action.ALLOW, None)
                    feature_time += clock() - t
            guard2 = Guard(ruleset, engine="python", store=factory())
            elapsed, _ = timed(sample, guard2.evaluate)
            print(row(name, us(feature_time / len(sample)), f"{len(sample) / elapsed:,.0f}"))
            results[name] = {
                "features_us": feature_time / len(sample) * 1e6,
                "evaluate_rate": len(sample) / elapsed,
            }
        count, accounts = (200_000, 20_000) if quick else (1_000_000, 100_000)
        print(f"\n### Memory: {count:,} events over {accounts:,} accounts, in-memory store\n")
        stream = _synthetic(count, accounts, seed=9)
        settle()
        guard = Guard(ruleset, engine="python", store=payguard.MemoryStore(max_decisions=1))
        gc.collect()
        rss_before = _rss()
        for event in stream:
            guard.evaluate(event)
        gc.collect()
        rss_after = _rss()
        memory = guard.store
        assert isinstance(memory, payguard.MemoryStore)
        active = len(memory.accounts)
        deep = sum(_deep_size(key) + _deep_size(history) for key, history in memory.accounts.items())
        header(
            "accounts with history",
            "bytes per account (deep size of its history)",
            "resident memory growth per account",
        )
        print(row(f"{active:,}", f"{deep / active:,.0f}", f"{(rss_after - rss_before) / active:,.0f}"))
        results["memory"] = {
            "events": count,
            "accounts": active,
            "deep_bytes_per_account": deep / active,
            "rss_bytes_per_account": (rss_after - rss_before) / active,
        }
    return results


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * 4096


def _deep_size(value: Any) -> int:
    """Bytes of ``value`` and everything it holds (histories are int arrays and a few ints).

    The empty array every history's unused lists share is one object for all accounts: not counted."""
    if value is EMPTY:
        return 0
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k) + _deep_size(v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        size += sum(_deep_size(v) for v in value)
    elif dataclasses.is_dataclass(value):  # an AccountHistory, compiled by mypyc or not
        size += sum(_deep_size(getattr(value, f.name)) for f in dataclasses.fields(value))
    return size


def _default_guard(**options: Any) -> Guard:
    return Guard.from_path(ROOT / "rules", **options)


def bench_audit(quick: bool) -> dict[str, Any]:
    history, raw = traffic(5000 if quick else 30000)
    events = [parse_event(e) for e in raw]
    settle()
    results = {}
    print(
        "\n### Audit trail: default rule set, file sink, default flush policy (flush per record, no fsync);"
        " best of 3 runs\n"
    )
    header("engine", "without audit µs/decision", "with audit µs/decision", "audit adds µs")
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            best = []
            for audit in (None, "audit"):
                times = []
                for attempt in range(3):  # the file system's write-back makes single runs vary
                    sink = None if audit is None else Path(tmp) / f"audit-{engine}-{attempt}.jsonl"
                    guard = _default_guard(engine=engine, audit=sink, audit_key="bench-audit-key-16")
                    guard.record(history)
                    elapsed, _ = timed(events, guard.evaluate)
                    guard.close()
                    times.append(elapsed / len(events))
                best.append(min(times))
            print(row(engine, us(best[0]), us(best[1]), us(best[1] - best[0])))
            results[engine] = {"without": best[0], "with": best[1]}
    return results


def bench_e2e(quick: bool) -> dict[str, Any]:
    history, raw = traffic(5000 if quick else 30000)
    settle()
    results: dict[str, Any] = {}
    print("\n### End to end: default rule set (36 rules), features, audit to a file, one thread\n")
    header(
        "engine",
        "decisions/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "validation",
        "features",
        "matching",
        "audit",
        "rest",
    )
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            guard = _default_guard(
                engine=engine, audit=Path(tmp) / f"e2e-{engine}.jsonl", audit_key="bench-audit-key-16"
            )
            guard.record(history)
            elapsed, samples = timed(raw, guard.evaluate)
            guard.close()
            split = _split(engine, history, raw, Path(tmp) / f"split-{engine}.jsonl")
            p = percentiles(samples)
            rate = len(raw) / elapsed
            print(
                row(
                    engine,
                    f"{rate:,.0f}",
                    us(p["p50"]),
                    us(p["p99"]),
                    us(p["p99.9"]),
                    *(f"{us(split[k])} µs" for k in ("validation", "features", "matching", "audit", "rest")),
                )
            )
            results[engine] = {"rate": rate, **p, **split}
        print("\n### A generated rule set of 500 rules, end to end (features, audit to a file)\n")
        header("engine", "decisions/s", "p50 µs", "p99 µs")
        path = Path(tmp) / "r500.yaml"
        path.write_text(generated_rules(500, seed=7), encoding="utf-8")
        for engine in ENGINES:
            guard = Guard.from_path(
                path, engine=engine, audit=Path(tmp) / f"r500-{engine}.jsonl", audit_key="bench-audit-key-16"
            )
            guard.record(history)
            elapsed, samples = timed(raw[:10000], guard.evaluate)
            guard.close()
            p = percentiles(samples)
            print(row(engine, f"{min(len(raw), 10000) / elapsed:,.0f}", us(p["p50"]), us(p["p99"])))
            results[f"500/{engine}"] = {"rate": min(len(raw), 10000) / elapsed, **p}
    return results


def _split(
    engine: str, history: list[dict[str, Any]], raw: list[dict[str, Any]], audit: Path
) -> dict[str, float]:
    """Where one decision's time goes, measured phase by phase on the guard's own parts."""
    guard = _default_guard(engine=engine, audit=audit, audit_key="bench-audit-key-16")
    guard.record(history)
    compiled, lists = guard.pipeline, guard.lists
    totals = dict.fromkeys(("validation", "features", "matching", "audit", "rest"), 0.0)
    clock = time.perf_counter
    gc.collect()
    for n, data in enumerate(raw):
        t0 = clock()
        admitted = compiled.validate(data)
        event = admitted.event
        t1 = clock()
        fingerprint = digest(event)
        t1b = clock()
        with guard.store.transaction() as txn:
            txn.decision(event.id)
            context, features = compiled.compute(admitted, txn)
            t2 = clock()
            indices = compiled.matcher.match(compiled.plan.fact(event, features, lists))
            t3 = clock()
            decision = compiled.decide(f"split-{n}", event, indices, features)
            t4 = clock()
            assert guard.audit is not None
            guard.audit.write(compiled.record(decision, admitted, t0))
            t5 = clock()
            compiled.features.commit(context, decision.action, decision.decision_id)
            txn.put_decision(event.id, decision, fingerprint)
        t6 = clock()
        totals["validation"] += t1 - t0
        totals["features"] += t2 - t1b
        totals["matching"] += t3 - t2
        totals["audit"] += t5 - t4
        totals["rest"] += (t1b - t1) + (t4 - t3) + (t6 - t5)
    guard.close()
    return {k: v / len(raw) for k, v in totals.items()}


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "engine": bench_engine,
    "features": bench_features,
    "audit": bench_audit,
    "seal": integrity.bench_seal,
    "e2e": bench_e2e,
    "replay": functools.partial(workbench.bench_replay, ROOT, DATA, (header, row)),
    "scoring": functools.partial(scoring.bench, traffic, settle, ENGINES, (header, row, us)),
    "workbench": functools.partial(workbench.bench, ROOT, DATA, (header, row)),
    "backtest": functools.partial(backtest.bench, ROOT, DATA, (header, row)),
    "idempotency": integrity.bench_idempotency,
    "text": integrity.bench_text,
    "serve": functools.partial(sidecar.bench, traffic, (header, row)),
    "redis": functools.partial(redis_store.bench, traffic, (header, row, us)),
}


def reference_loop() -> float:
    """Microseconds for a fixed pure-Python loop: the machine's speed at the moment, to compare runs."""
    return min(timeit.repeat("sum(range(10000))", number=2000, repeat=5)) / 2000 * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    parser.add_argument("--quick", action="store_true", help="fewer events (for a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    chosen = args.sections or list(SECTIONS)
    print(
        f"payguard {payguard.__version__} on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; engines: {', '.join(ENGINES)}; "
        f"{sum(compiled_modules().values())} of {len(COMPILED)} per-event modules compiled by mypyc"
    )
    before = reference_loop()
    results: dict[str, Any] = {name: SECTIONS[name](args.quick) for name in chosen}
    after = reference_loop()
    # The machine is shared: the same loop before and after tells how fast it was during this run.
    print(f"\nreference loop (sum(range(10000)), best of 5): {before:.1f} µs before, {after:.1f} µs after")
    results["reference_loop_us"] = {"before": before, "after": after}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
