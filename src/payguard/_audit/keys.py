"""The audit trail's keys: what ``audit_key`` derives, and the Ed25519 pair that signs checkpoints.

One ``audit_key`` yields, by HKDF-SHA256 (RFC 5869) with a label each, three unrelated values: the masking
key (the keyed hashes that stand for account numbers), the chain key (each record's HMAC) and the key id
that records carry. Knowing one never gives another: a masked identifier shown to an analyst does not help
forge a record, and the key id names the key without revealing it.

Checkpoints are signed with an Ed25519 private key (``payguard audit keygen``); whoever holds the public
key can check them, and nobody without the private key, not even a holder of ``audit_key``, can forge one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._errors import AuditError

__all__ = [
    "AuditKeys",
    "PrivateKeySource",
    "PublicKeySource",
    "load_public_key",
    "load_signing_key",
    "signer_id",
    "write_signing_pair",
]

MASKING: Final = b"payguard audit masking key v1"
CHAIN: Final = b"payguard audit chain key v1"
KEY_ID: Final = b"payguard audit key id v1"
PRIVATE_FILE: Final = "audit.key"
PUBLIC_FILE: Final = "audit.pub"

# explicit aliases: the mypyc build has no cryptography installed, and an implicit alias of Any is refused
PrivateKeySource: TypeAlias = str | Path | Ed25519PrivateKey
PublicKeySource: TypeAlias = str | Path | Ed25519PublicKey


# the shortest audit key accepted: the masking HMAC must not be guessable from the records it keys
MIN_AUDIT_KEY: Final = 16


def audit_key_bytes(key: str | bytes | None) -> bytes | None:
    """``key`` as bytes; ``AuditError`` if it is shorter than ``MIN_AUDIT_KEY`` (None: a random key)."""
    secret = key.encode() if isinstance(key, str) else key
    if secret is not None and len(secret) < MIN_AUDIT_KEY:
        raise AuditError(
            f"audit_key must be at least {MIN_AUDIT_KEY} bytes: with a short key, anyone who sees a masked "
            "record can guess the account numbers behind it (leave it out for a random key)"
        )
    return secret


def _derive(secret: bytes, label: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(secret)


@dataclass(frozen=True)
class AuditKeys:
    """The keys one ``audit_key`` derives. ``chain`` and ``key_id`` are ``None`` for an unkeyed trail."""

    mask: bytes
    chain: bytes | None
    key_id: str | None

    @classmethod
    def derive(cls, audit_key: bytes | str | None) -> AuditKeys:
        """The keys of ``audit_key``; without one, a random masking key and an unkeyed (SHA-256) chain."""
        if audit_key is None:
            return cls(os.urandom(32), None, None)  # records still mask; they cannot be joined across runs
        secret = audit_key.encode() if isinstance(audit_key, str) else bytes(audit_key)
        return cls(_derive(secret, MASKING), _derive(secret, CHAIN), _derive(secret, KEY_ID, 8).hex())


def signer_id(public: Ed25519PublicKey) -> str:
    """A short name for a signing key: 16 hex digits of the SHA-256 of its raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(source: PrivateKeySource) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``source`` (as ``payguard audit keygen`` writes it)."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    try:
        key = serialization.load_pem_private_key(Path(source).read_bytes(), password=None)
    except OSError as exc:
        raise AuditError(f"cannot read audit signing key {str(source)!r}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise AuditError(
            f"audit signing key {str(source)!r} is not an unencrypted PEM private key: {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"audit signing key {str(source)!r} is not an Ed25519 key")
    return key


def load_public_key(source: PublicKeySource) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``source``."""
    if isinstance(source, Ed25519PublicKey):
        return source
    try:
        key = serialization.load_pem_public_key(Path(source).read_bytes())
    except OSError as exc:
        raise AuditError(f"cannot read public key {str(source)!r}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise AuditError(f"public key {str(source)!r} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"public key {str(source)!r} is not an Ed25519 key")
    return key


def write_signing_pair(directory: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 pair as ``DIRECTORY/audit.key`` (readable by its owner only) and
    ``DIRECTORY/audit.pub``; returns both paths and the signer id. Never overwrites a key."""
    folder = Path(directory)
    private_path, public_path = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise AuditError(f"{str(path)!r} exists: payguard never overwrites a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_new(private_path, private, 0o600)
        _write_new(public_path, public, 0o644)
    except OSError as exc:
        raise AuditError(f"cannot write the signing key pair into {str(folder)!r}: {exc}") from exc
    return private_path, public_path, signer_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: a key that appeared since the check above is not overwritten; the mode is set at creation
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
