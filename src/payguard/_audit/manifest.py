"""The manifest of an audit trail written in parts (a partitioned replay: one audit file per partition).

A manifest is one JSON file beside the parts. It names each part (a path relative to the manifest), the
records it holds and its chain's last hash (``head``), and the totals; with a signing key it is signed
(Ed25519, the key that signs the parts' checkpoints). ``verify_manifest`` verifies every part as
``verify_file`` verifies one file, then checks that each part ends where the manifest says: a part
removed, emptied, cut or swapped for another's is found, and so (when signed) is an edited manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._errors import AuditError
from .keys import PublicKeySource, load_public_key, signer_id
from .processors import GENESIS, canonical
from .sinks import lines_backwards
from .verify import VerifyReport, verify_file

__all__ = ["MANIFEST", "Part", "is_manifest", "verify_manifest", "write_manifest"]

MANIFEST: Final = "payguard audit manifest"
VERSION: Final = 1


@dataclass(frozen=True)
class Part:
    """One audit file of a trail in parts: its path, what it holds, its record count and last hash."""

    file: Path
    kind: str  # "decisions" (a partition's) or "refused" (the records rejected before partitioning)
    partition: int | None
    records: int
    head: str

    def to_dict(self, folder: Path) -> dict[str, Any]:
        return {
            "file": str(self.file.relative_to(folder))
            if self.file.is_relative_to(folder)
            else str(self.file),
            "kind": self.kind,
            "partition": self.partition,
            "records": self.records,
            "head": self.head,
        }


def write_manifest(
    path: Path,
    parts: Sequence[Part],
    *,
    key_id: str | None,
    signing_key: Ed25519PrivateKey | None = None,
    totals: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write the manifest of ``parts`` at ``path`` (signed with ``signing_key``, if given); returns it."""
    folder = path.parent
    body: dict[str, Any] = {
        "manifest": MANIFEST,
        "version": VERSION,
        "key_id": key_id,
        "files": [part.to_dict(folder) for part in parts],
        "records": sum(part.records for part in parts),
        **(totals or {}),
    }
    if signing_key is not None:
        body["signer"] = signer_id(signing_key.public_key())
        body["signature"] = signing_key.sign(canonical(body)).hex()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot write the audit manifest {str(path)!r}: {exc}") from exc
    return body


def is_manifest(path: str | Path) -> bool:
    """Whether ``path`` is an audit manifest (a JSON object naming itself one), not an audit file."""
    try:
        with Path(path).open("rb") as handle:
            if handle.read(1) != b"{":
                return False
            handle.seek(0)
            data = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("manifest") == MANIFEST


@dataclass(frozen=True)
class ManifestReport:
    """What ``verify_manifest`` found: each part's report (by the path the manifest names), and the
    problems of the manifest itself and of parts that disagree with it."""

    parts: tuple[tuple[str, VerifyReport], ...]
    problems: tuple[str, ...]
    records: int

    @property
    def ok(self) -> bool:
        return not self.problems and all(report.ok for _, report in self.parts)


def verify_manifest(
    path: str | Path,
    *,
    key: bytes | str | Sequence[bytes | str] | None = None,
    public_key: PublicKeySource | None = None,
) -> ManifestReport:
    """Verify every part the manifest at ``path`` names, and that each ends where the manifest says.

    Raises ``OSError`` when the manifest cannot be read and ``AuditError`` when it is not a manifest or a
    key cannot be loaded."""
    manifest_path = Path(path)
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AuditError(f"{manifest_path}: not an audit manifest: {exc}") from exc
    if not (
        isinstance(data, dict) and data.get("manifest") == MANIFEST and isinstance(data.get("files"), list)
    ):
        raise AuditError(f"{manifest_path}: not an audit manifest (no 'manifest' and 'files')")
    problems = _signature_problems(data, public_key)
    parts: list[tuple[str, VerifyReport]] = []
    records = 0
    for number, entry in enumerate(data["files"], start=1):
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)):
            problems.append(f"{manifest_path}: file entry {number} is malformed")
            continue
        name = entry["file"]
        part = manifest_path.parent / name
        try:
            report = verify_file(part, key=key, public_key=public_key)
        except OSError as exc:
            problems.append(f"{part}: cannot read: {exc.strerror or exc}")
            continue
        parts.append((str(part), report))
        records += report.records
        if report.ok and (report.records, _head(part)) != (entry.get("records"), entry.get("head")):
            problems.append(
                f"{part}: holds {report.records:,} records, but the manifest says {entry.get('records')!r} "
                "ending in another head: records were removed, added or the file replaced"
            )
    if data.get("records") != sum(
        entry.get("records", 0) for entry in data["files"] if isinstance(entry, dict)
    ):
        problems.append(f"{manifest_path}: its total of records is not the sum of its files'")
    return ManifestReport(tuple(parts), tuple(problems), records)


def _signature_problems(data: dict[str, Any], public_key: PublicKeySource | None) -> list[str]:
    signature = data.get("signature")
    if public_key is None or signature is None:
        if public_key is not None:
            return ["the manifest is not signed, but a --public-key was given: it may have been rewritten"]
        return []
    public = load_public_key(public_key)
    body = {name: value for name, value in data.items() if name != "signature"}
    if data.get("signer") != signer_id(public):
        return [f"the manifest is signed by key {data.get('signer')}, not by the public key given"]
    try:
        public.verify(bytes.fromhex(str(signature)), canonical(body))
    except (InvalidSignature, ValueError):
        return ["the manifest's signature does not match: the manifest was edited"]
    return []


def _head(path: Path) -> str:
    """The last record hash of an audit file that verified (``GENESIS`` for an empty one)."""
    with path.open("rb") as handle:
        for _offset, raw in lines_backwards(handle):
            found = json.loads(raw)
            if isinstance(found, dict) and "hash" in found:
                return str(found["hash"])
    return GENESIS
