"""The lifecycle of a stopped payment: decide -> hold or interrupt -> the bank calls the customer -> resolve.

Run: .venv/bin/python examples/lifecycle.py [AUDIT_FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import payguard

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = {"account": "6222000011112222", "age": 67, "balance_before": "230000.00"}


def payment(event_id: str, time: str, amount: str, payee: str, **fields: object) -> dict[str, object]:
    return {
        "id": event_id,
        "timestamp": f"2026-03-16T{time}:00+08:00",
        "amount": amount,
        "currency": "CNY",
        "channel": "mobile_app",
        "payer": CUSTOMER,
        "payee": {"account": payee, "type": "personal"},
        **fields,
    }


def main() -> int:
    audit = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out" / "lifecycle-audit.jsonl"
    guard = payguard.Guard.from_path(ROOT / "rules", audit=audit, audit_key="replace-with-a-secret")

    # 1. She pays her nephew 48,000 for his used car, a first large payment to him: held for a call-back.
    car = guard.evaluate(payment("car-1", "10:05", "48000.00", "6217000022223333"))
    print(f"car-1: {car.action.value}")
    # The bank calls her back on her registered number; she confirms: the payment goes ahead.
    resolution = guard.resolve(car.decision_id, "legitimate", note="call-back 10:20, confirmed the car")
    print(f"car-1 resolved: {resolution.outcome.value}")
    # The nephew is now a known payee, and the resolved hold no longer counts as a stop.
    second = guard.evaluate(payment("car-2", "10:40", "2000.00", "6217000022223333"))
    print(f"car-2: {second.action.value}")

    # 2. A caller posing as police has her move money to a "safe account": interrupted.
    scam = guard.evaluate(
        payment("safe-1", "15:00", "150000.00", "6217555500001111", memo="转入安全账户配合调查")
    )
    print(f"safe-1: {scam.action.value}")
    # The bank's call confirms the scam: the payee account joins the fraud list, in the store.
    guard.resolve(scam.decision_id, "fraud", note="police impersonation, reported to 96110")
    retry = guard.evaluate(payment("safe-2", "15:30", "9000.00", "6217555500001111", memo="还款"))
    print(f"safe-2: {retry.action.value} ({', '.join(retry.rule_ids)})")
    guard.close()

    report = payguard.verify_file(audit)
    print(f"audit: {report.records} records, {'intact' if report.ok else 'BROKEN'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
