"""One payguard replica for the cross-process tests: a Guard over a RedisStore, in its own process.

``python replica.py SETTINGS.json`` decides the events of ``events`` (a JSON-lines file) on ``threads``
threads, each taking every ``threads``-th event, and writes one line a decision to ``out``:
``{"event_id", "fresh", "decision"}``, then a last line ``{"lease_waits": N}``. With ``pause_at``, the audit
write of that event id first creates the file ``paused`` and waits (``pause_for`` seconds at most) for the
file ``resume``: the test stops or kills the process there, in the middle of the event, while it holds the
event's leases.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from payguard import AuditTrail, Guard, RedisStore, load_rule_set


def main(settings_path: str) -> None:
    settings = json.loads(Path(settings_path).read_text(encoding="utf-8"))
    store = RedisStore(settings["url"], prefix=settings["prefix"], **settings.get("store", {}))
    audit: Any = settings["audit"]
    pause_at = settings.get("pause_at")
    if pause_at is not None:
        records = open(audit, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)

        def audit(record: dict[str, Any]) -> None:
            if record.get("event_id") == pause_at and record["record"] == "decision":
                Path(settings["paused"]).touch()
                resume = Path(settings["resume"])
                deadline = time.monotonic() + settings["pause_for"]
                while not resume.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            records.write(json.dumps(record) + "\n")
            records.flush()

    guard = Guard(
        load_rule_set(settings["rules"]),
        engine="python",
        store=store,
        audit=audit if callable(audit) else AuditTrail(audit, key=settings["audit_key"]),
        max_future=None,
    )
    events = [json.loads(line) for line in Path(settings["events"]).read_text(encoding="utf-8").splitlines()]
    threads = settings.get("threads", 1)
    if "barrier" in settings:  # released together with the other replicas, once all of them are ready
        key = settings["prefix"] + "barrier"
        store.client.incr(key)
        while int(store.client.get(key) or 0) < settings["barrier"]:
            time.sleep(0.005)
    lines: list[str] = []
    lock = threading.Lock()

    def work(first: int) -> None:
        for event in events[first::threads]:
            decision, fresh = guard.evaluate_fresh(event)
            line = json.dumps({"event_id": event["id"], "fresh": fresh, "decision": decision.to_dict()})
            with lock:
                lines.append(line)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    guard.close()
    lines.append(json.dumps({"lease_waits": store.lease_waits}))
    Path(settings["out"]).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
