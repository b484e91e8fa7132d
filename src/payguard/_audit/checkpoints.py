"""Signed checkpoints: the record count and head hash of an audit chain at a point, signed with Ed25519.

A checkpoint is one line of the audit file (``"record": "checkpoint"``, outside the hash chain: its
signature seals it) and the same line at an external witness, a file on WORM storage or a callable that
hands it to another system. Whoever rewrites the audit file, even holding ``audit_key``, cannot make its
chain agree with checkpoints already at the witness without the signing key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._common.time import isoformat
from .._errors import AuditError
from .keys import signer_id
from .processors import canonical

__all__ = ["CHECKPOINT", "Witness", "checkpoint_problem", "make_checkpoint", "read_witness"]

CHECKPOINT: Final = "checkpoint"
HEX: Final = frozenset("0123456789abcdef")
FIELDS: Final = frozenset({"record", "records", "head", "at", "key_id", "signer", "signature"})


def make_checkpoint(key: Ed25519PrivateKey, records: int, head: str, key_id: str | None) -> dict[str, Any]:
    """The signed checkpoint of a chain of ``records`` records whose last hash is ``head``."""
    body: dict[str, Any] = {
        "record": CHECKPOINT,
        "records": records,
        "head": head,
        "at": isoformat(datetime.now(UTC)),
        "key_id": key_id,
        "signer": signer_id(key.public_key()),
    }
    body["signature"] = key.sign(canonical(body)).hex()
    return body


def checkpoint_problem(checkpoint: Mapping[str, Any], publics: Mapping[str, Ed25519PublicKey]) -> str | None:
    """What is wrong with ``checkpoint``, or ``None``; its signature is checked when ``publics`` (public
    keys by signer id) is not empty, its form always."""
    if set(checkpoint) != FIELDS:
        return f"malformed checkpoint: its fields are not {', '.join(sorted(FIELDS))}"
    records, signature = checkpoint["records"], checkpoint["signature"]
    if not (isinstance(records, int) and not isinstance(records, bool) and records > 0):
        return "malformed checkpoint: 'records' is not a positive integer"
    if not all(isinstance(checkpoint[name], str) for name in ("head", "at", "signer", "signature")):
        return "malformed checkpoint: 'head', 'at', 'signer' and 'signature' must be strings"
    if not (checkpoint["key_id"] is None or isinstance(checkpoint["key_id"], str)):
        return "malformed checkpoint: 'key_id' is neither a string nor null"
    if not (len(signature) == 128 and set(signature) <= HEX):  # one spelling: 'A' for 'a' is an edit too
        return "malformed checkpoint: 'signature' is not 128 lowercase hex digits"
    if not publics:
        return None
    public = publics.get(checkpoint["signer"])
    if public is None:
        return (
            f"checkpoint signed by key {checkpoint['signer']}, not by the public key given "
            f"({', '.join(sorted(publics))})"
        )
    try:
        public.verify(bytes.fromhex(signature), canonical({k: checkpoint[k] for k in FIELDS - {"signature"}}))
    except (InvalidSignature, ValueError):
        return "checkpoint signature does not match: the checkpoint was altered or forged"
    return None


class Witness:
    """Where checkpoints go besides the audit file: a JSON Lines file (each line synced to disk before the
    trail goes on) or a callable taking the checkpoint dict."""

    def __init__(self, target: str | Path | Callable[[dict[str, Any]], Any]) -> None:
        self.path: Path | None = None
        self._function: Callable[[dict[str, Any]], Any] | None = None
        if isinstance(target, str | Path):
            self.path = Path(target)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()
            except OSError as exc:
                raise AuditError(f"cannot open checkpoint witness {str(self.path)!r}: {exc}") from exc
        elif callable(target):
            self._function = target
        else:
            raise AuditError(f"audit_checkpoints must be a path or a callable, not {type(target).__name__}")

    def write(self, checkpoint: dict[str, Any]) -> None:
        if self._function is not None:
            self._function(dict(checkpoint))
            return
        assert self.path is not None
        # rare (one line per checkpoint), so opened each time and synced: the witness must survive a crash
        with self.path.open("ab") as handle:
            handle.write(canonical(checkpoint) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def last(self) -> dict[str, Any] | None:
        """The witness file's last checkpoint (``None`` for a callable witness or an empty file)."""
        if self.path is None:
            return None
        found = None
        for _line, checkpoint in read_witness(self.path):
            found = checkpoint
        return found


def read_witness(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """The lines of a witness file with their numbers: a checkpoint dict, or ``None`` for a line that is
    not one (``checkpoint_problem`` tells what is wrong with a dict)."""
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                found = json.loads(raw)
            except ValueError:
                found = None
            ok = isinstance(found, dict) and found.get("record") == CHECKPOINT and raw.endswith(b"\n")
            yield number, found if ok else None
