"""Embedding payguard in an asyncio service: evaluation runs off the event loop, in a thread pool.

``Guard.evaluate`` is synchronous and thread-safe; run it with ``asyncio.to_thread`` (or an executor) so
that the loop keeps serving other requests while a decision is made and audited.

Run: .venv/bin/python examples/embed_asyncio.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import payguard

ROOT = Path(__file__).resolve().parent.parent


async def check_payment(guard: payguard.Guard, request: dict[str, Any]) -> payguard.Decision:
    return await asyncio.to_thread(guard.evaluate, request)


async def main(audit: Path) -> int:
    with payguard.Guard.from_path(ROOT / "rules", audit=audit, audit_key="replace-with-a-secret") as guard:
        requests = [
            {
                "id": f"async-{n}",
                "timestamp": f"2026-03-16T10:{n:02d}:00+08:00",
                "amount": "80.00" if n % 5 else "30000.00",
                "currency": "CNY",
                "payer": {"account": f"62220000{n:08d}", "age": 35},
                "payee": {"account": "6217000000000099", "type": "personal" if n % 5 == 0 else "merchant"},
            }
            for n in range(20)
        ]
        decisions = await asyncio.gather(*(check_payment(guard, r) for r in requests))
    for decision in decisions:
        print(f"{decision.event_id}: {decision.action.value} {list(decision.rule_ids)}")
    return 0


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out" / "embed-asyncio-audit.jsonl"
    raise SystemExit(asyncio.run(main(path)))
