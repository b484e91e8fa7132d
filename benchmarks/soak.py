"""Soak test (`make soak`): a long run of generated traffic through the default rule set.

Evaluates N events (default 1,000,000) of ordinary traffic from 4 threads with the audit on and the
in-memory store, and checks that
  - memory after warm-up stays flat (resident memory sampled every 10 % of the run),
  - every event has exactly one audit record and the audit chain verifies,
  - the decisions equal a single-threaded run of the same events.
Then it pays from M one-off accounts (default 1,000,000, each seen once, to a one-off payee) over ten
years of event time, and checks that the in-memory store forgets them past its horizon (a year and an
hour, so after a tenth of the run): resident memory is flat over the second half of the run, and the
accounts kept stay under the horizon's worth.
Threads take the events of disjoint sets of customers (the account each event is about), in time
order, as a payment pipeline partitioned by customer would; the traffic's payees are merchants,
utilities, landlords and family, so no feature of one partition depends on the order of another.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payguard import Guard, MemoryStore, parse_event, verify_file
from payguard._stores.history import HORIZON
from payguard._synthetic import benign_traffic

ROOT = Path(__file__).resolve().parent.parent


def _rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * 4096


def run(
    events: list[Any], threads: int, audit: Path
) -> tuple[dict[str, tuple[str, tuple[str, ...]]], list[int]]:
    guard = Guard.from_path(
        ROOT / "rules", audit=audit, audit_key="soak-audit-key-16b", store=MemoryStore(max_decisions=10_000)
    )
    parts: list[list[Any]] = [[] for _ in range(threads)]
    for event in events:
        incoming = event.type.value in ("transfer_in", "loan_disbursement", "deposit_redemption")
        subject = event.payee.account if incoming and event.payee else event.payer.account
        parts[hash(subject) % threads].append(event)
    results: dict[str, tuple[str, tuple[str, ...]]] = {}
    samples: list[int] = []
    done = [0]
    lock = threading.Lock()
    step = max(1, len(events) // 10)

    def work(part: list[Any]) -> None:
        for event in part:
            decision = guard.evaluate(event)
            results[event.id] = (decision.action.value, decision.rule_ids)
            with lock:
                done[0] += 1
                if done[0] % step == 0:
                    samples.append(_rss())

    workers = [threading.Thread(target=work, args=(part,)) for part in parts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    guard.close()
    return results, samples


def one_off(accounts: int) -> dict[str, bool]:
    """The one-off accounts' run (see the module doc): the checks and their outcome."""
    step = 10 * 365 * 86400 // accounts  # ten years of event time: the horizon passes after a tenth
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    store = MemoryStore()
    guard = Guard.from_path(ROOT / "rules", store=store, max_future=None)  # ten years of event time
    samples: list[int] = []
    kept: list[int] = []
    gc.collect()
    started = time.perf_counter()
    for n in range(accounts):
        moment = datetime.fromtimestamp(start + n * step, tz=UTC).isoformat()
        guard.evaluate(
            {
                "id": f"one-off-{n}",
                "timestamp": moment,
                "amount": "12.50",
                "currency": "CNY",
                "payer": {"account": f"62220{n:011d}"},
                "payee": {"account": f"62170{n:011d}", "type": "personal"},
            }
        )
        if (n + 1) % max(1, accounts // 10) == 0:
            samples.append(_rss())
            kept.append(len(store.accounts))
    elapsed = time.perf_counter() - started
    warm = samples[len(samples) // 2 :]
    growth = (warm[-1] - warm[0]) / max(warm[0], 1) if len(warm) > 1 else 0.0
    horizon_accounts = 2 * (HORIZON // step + 1)  # a payer and a payee an event
    print(f"\n{accounts:,} one-off accounts over ten years of event time: {accounts / elapsed:,.0f} events/s")
    print("resident memory (MB) every 10 %: " + ", ".join(f"{s / 1e6:.0f}" for s in samples))
    print("accounts kept every 10 %: " + ", ".join(f"{k:,}" for k in kept))
    print(f"forgotten {store.forgotten:,}; growth over the second half: {growth:.1%}")
    return {
        "one-off accounts forgotten past the horizon": kept[-1] <= horizon_accounts + 1000,
        "memory flat with one-off accounts (growth under 10 % over the second half)": growth < 0.10,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--one-off-accounts", type=int, default=1_000_000)
    args = parser.parse_args()
    customers = max(100, args.events // 35)
    _, month = benign_traffic(customers, seed=21, start=datetime(2026, 3, 1, tzinfo=UTC), history_days=0)
    events = [parse_event(e) for e in month[: args.events]]
    print(f"{len(events):,} events of {customers:,} customers, {args.threads} threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        gc.collect()
        gc.freeze()  # the million parsed events are the script's, not payguard's: keep collections off them
        started = time.perf_counter()
        threaded, samples = run(events, args.threads, Path(tmp) / "threads.jsonl")
        elapsed = time.perf_counter() - started
        report = verify_file(Path(tmp) / "threads.jsonl")
        ids = [json.loads(line)["event_id"] for line in (Path(tmp) / "threads.jsonl").open(encoding="utf-8")]
        single, _ = run(events, 1, Path(tmp) / "single.jsonl")
    warm = samples[len(samples) // 2 :]
    growth = (warm[-1] - warm[0]) / max(warm[0], 1) if len(warm) > 1 else 0.0
    checks = {
        "one audit record per event": len(ids) == len(events) and len(set(ids)) == len(events),
        "audit chain verifies": report.ok,
        "decisions equal a single-threaded run": threaded == single,
        "memory flat after warm-up (growth under 10 % over the second half)": growth < 0.10,
    }
    print(f"{len(events) / elapsed:,.0f} events/s with {args.threads} threads, audit on")
    print("resident memory (MB) every 10 %: " + ", ".join(f"{s / 1e6:.0f}" for s in samples))
    print(f"growth over the second half: {growth:.1%}")
    if args.one_off_accounts:
        del events, threaded, single  # the first run's inputs and results are not the second run's memory
        gc.unfreeze()
        gc.collect()
        checks.update(one_off(args.one_off_accounts))
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
