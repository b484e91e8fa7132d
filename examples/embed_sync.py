"""Embedding payguard in a synchronous payment service.

Run: .venv/bin/python examples/embed_sync.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import payguard

ROOT = Path(__file__).resolve().parent.parent


class PaymentService:
    """A toy payment service: every payment is checked before the money moves."""

    def __init__(self, audit_path: Path) -> None:
        # Load and compile the rules once; the guard is shared by all request threads.
        self.guard = payguard.Guard.from_path(
            ROOT / "rules", audit=audit_path, audit_key="replace-with-a-secret"
        )

    def pay(self, request: dict[str, Any]) -> str:
        try:
            decision = self.guard.evaluate(request)
        except payguard.InvalidEventError as exc:
            return f"rejected: {exc}"
        except payguard.AuditError:
            return "not executed: the decision could not be recorded, retry later"
        if decision.action is payguard.Action.INTERRUPT:
            return f"stopped: {decision.reason}"
        if decision.action is payguard.Action.HOLD:
            return f"held ({decision.decision_id}): {decision.reason}"
        if decision.action is payguard.Action.REVIEW:
            return f"executed with a warning: {decision.reason}"
        return "executed"


def main() -> int:
    audit = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out" / "embed-sync-audit.jsonl"
    service = PaymentService(audit)
    base = {
        "timestamp": "2026-03-16T09:30:00+08:00",
        "currency": "CNY",
        "channel": "mobile_app",
        "payer": {"account": "6222000011112222", "age": 71, "balance_before": "230000.00"},
    }
    payments = [
        {
            **base,
            "id": "pay-1",
            "amount": "120.00",
            "payee": {"account": "6217000000000001", "type": "merchant"},
        },
        {
            **base,
            "id": "pay-2",
            "amount": "150000.00",
            "memo": "转入安全账户配合调查",
            "payee": {"account": "6217555500001111", "type": "personal"},
            "session": {"on_call": True},
        },
        {**base, "id": "pay-3", "amount": "-5"},
    ]
    for payment in payments:
        print(f"{payment['id']}: {service.pay(payment)}")
    service.guard.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
