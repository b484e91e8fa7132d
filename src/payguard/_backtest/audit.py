"""The audit trail of a partitioned replay: one audit file per partition, written where the partition is
finished, the records refused before partitioning in a file of their own, and a manifest of them all.

For ``--audit out/audit.jsonl``: ``out/audit.part-000.jsonl`` ... (each partition's decisions, in replay
order), ``out/audit.refused.jsonl`` (rejected records and event ids reused for another event, as the
serial trail records them) and ``out/audit.manifest.json``. Every file is keyed, chained and signed as
the serial ``--audit`` file would be with the same keys; ``payguard audit verify`` takes the manifest.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._audit.keys import AuditKeys, audit_key_bytes, load_signing_key
from .._audit.manifest import Part, write_manifest
from .._audit.processors import GENESIS
from .._audit.trail import AuditTrail
from .._errors import AuditError

__all__ = [
    "AuditPlan",
    "check_new",
    "finish_manifest",
    "manifest_path",
    "part_path",
    "refusal_ids",
    "refused_path",
    "write_part",
]


@dataclass(frozen=True)
class AuditPlan:
    """Where and how each partition writes its audit file; the versions the serial replay's decisions
    would record for the lists feedback sets."""

    path: str  # the --audit PATH, absolute: every worker writes beside it
    key: str | bytes | None = None
    signing_key: str | None = None  # a path, read where each file is written
    checkpoint_every: int = 1000
    # the list versions in force at the start (``Guard.list_versions``)
    versions: Mapping[str, int] = field(default_factory=dict)
    # for each count of feedback entries listed (a row's ``epoch``), how many times feedback set the list
    batches: Mapping[int, int] = field(default_factory=dict)

    def versions_at(self, list_name: str | None, epoch: int) -> dict[str, int]:
        """The list versions a serial decision records at feedback ``epoch`` (``Decision.lists``)."""
        found = dict(self.versions)
        times = self.batches.get(epoch, 0)
        if list_name is not None and times:
            found[list_name] = found.get(list_name, 0) + times
        return found


def _beside(path: str, infix: str, suffix: str | None = None) -> Path:
    base = Path(path)
    return base.with_name(f"{base.stem}.{infix}{base.suffix if suffix is None else suffix}")


def part_path(path: str, partition: int) -> Path:
    """The audit file of ``partition``."""
    return _beside(path, f"part-{partition:03d}")


def refused_path(path: str) -> Path:
    """The audit file of the records refused before partitioning."""
    return _beside(path, "refused")


def manifest_path(path: str) -> Path:
    """The manifest of the audit files."""
    return _beside(path, "manifest", ".json")


def check_new(path: str, partitions: int, key: str | bytes | None = None) -> None:
    """``AuditError`` if a file of this audit exists (a partitioned replay writes a new trail, it neither
    appends to nor replaces an old one), or if ``key`` is shorter than a guard accepts."""
    audit_key_bytes(key)
    for name in (manifest_path(path), refused_path(path), *(part_path(path, i) for i in range(partitions))):
        if name.exists():
            raise AuditError(
                f"audit file {str(name)!r} exists: a partitioned replay writes a new audit trail; give "
                "--audit another path or move the old files away"
            )


def write_part(
    plan: AuditPlan, target: Path, records: Iterable[dict[str, Any]], *, kind: str, partition: int | None
) -> Part:
    """Write ``records`` as the audit file ``target``: to a temporary file, renamed when complete, so that a
    task an engine runs twice leaves one whole file."""
    temporary = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
    trail = AuditTrail(
        temporary, key=plan.key, signing_key=plan.signing_key, checkpoint_every=plan.checkpoint_every
    )
    head, count = GENESIS, 0
    try:
        for record in records:
            head = trail.write(record)
            count += 1
        trail.close()
        os.replace(temporary, target)
    except BaseException:
        trail.close()
        temporary.unlink(missing_ok=True)
        raise
    return Part(target, kind, partition, count, head)


def refusal_ids() -> Iterator[str]:
    """Decision ids for the refused records, as a guard numbers them (a random prefix, then a count)."""
    prefix = os.urandom(6).hex() + "-"
    return (prefix + str(n).zfill(12) for n in itertools.count(1))


def finish_manifest(plan: AuditPlan, parts: list[Part], decisions: int) -> Path:
    """Write the manifest of ``parts`` (signed when the parts' checkpoints are); its path."""
    path = manifest_path(plan.path)
    signer = None if plan.signing_key is None else load_signing_key(plan.signing_key)
    write_manifest(
        path,
        parts,
        key_id=AuditKeys.derive(plan.key).key_id,
        signing_key=signer,
        totals={"partitions": sum(part.kind == "decisions" for part in parts), "decisions": decisions},
    )
    return path
