"""``payguard audit``: make a signing key pair, and verify an audit file (hashes, chain, checkpoints)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .._common.exits import EXIT_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from .._errors import AuditError
from .keys import write_signing_pair
from .manifest import is_manifest, verify_manifest
from .verify import VerifyReport, verify_file

__all__ = ["audit", "audit_key_options"]


def audit_key_options(command: Any) -> Any:
    """``--audit-key`` and ``--audit-signing-key``, as every command that writes an audit trail takes them."""
    command = click.option(
        "--audit-signing-key",
        type=click.Path(),
        help="Ed25519 private key (payguard audit keygen) that signs the audit's checkpoints.",
    )(command)
    return click.option(
        "--audit-key", envvar="PAYGUARD_AUDIT_KEY", help="Key the audit's masking and chain keys derive from."
    )(command)


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def audit() -> None:
    """Audit trail tools."""


@audit.command()
@click.option("--out", "out", required=True, type=click.Path(), help="Directory for audit.key and audit.pub.")
def keygen(out: str) -> None:
    """Write a new Ed25519 key pair for signing audit checkpoints: OUT/audit.key (private, readable by its
    owner only: give it to the guard) and OUT/audit.pub (give it to whoever verifies). Exit 0 written, 2
    when a key file exists already or cannot be written."""
    try:
        private, public, signer = write_signing_pair(out)
    except AuditError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE)
    click.echo(f"signer {signer}")
    _err(f"wrote {private} (private: for --audit-signing-key) and {public} (public: for --public-key)")


@audit.command()
@click.argument("file", type=click.Path())
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="The audit_key (repeat for a file written across a key rotation; default $PAYGUARD_AUDIT_KEY).",
)
@click.option("--public-key", type=click.Path(), help="The signing key's public half (audit.pub).")
@click.option("--checkpoints", type=click.Path(), help="The witness's checkpoints file.")
def verify(file: str, keys: tuple[str, ...], public_key: str | None, checkpoints: str | None) -> None:
    """Check an audit FILE: record hashes (with --key), the chain, checkpoints and their signatures (with
    --public-key), and the witness's checkpoints (--checkpoints). FILE may be the manifest of a
    partitioned replay's audit: then every file it names is checked, and that each ends where it says.
    Exit 0 intact, 1 tampered or cut, 3 unreadable."""
    given = list(keys) or ([os.environ["PAYGUARD_AUDIT_KEY"]] if os.environ.get("PAYGUARD_AUDIT_KEY") else [])
    if is_manifest(file):
        if checkpoints is not None:
            raise click.BadParameter("a manifest's parts have no witness file", param_hint="--checkpoints")
        _verify_manifest(file, given, public_key)
    try:
        report = verify_file(file, key=given, public_key=public_key, checkpoints=checkpoints)
    except AuditError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-key") from None
    except OSError as exc:
        _err(f"{exc.filename or file}: cannot read: {exc.strerror or exc}")
        sys.exit(EXIT_INVALID)
    sys.exit(_show(file, report))


def _show(file: str, report: VerifyReport) -> int:
    """Print what verifying ``file`` found; its exit code."""
    for note in report.notes:
        _err(f"{file}: note: {note}")
    if report.ok:
        sealed = f", {report.checkpoints:,} checkpoints agree" if report.checkpoints else ""
        if report.hashes_checked:
            click.echo(f"{file}: intact, {report.records:,} records{sealed}")
        else:
            click.echo(
                f"{file}: form and chain intact, {report.records:,} records{sealed}; hashes not checked"
            )
        return EXIT_OK
    where = file if report.first_bad_line is None else f"{file}:{report.first_bad_line}"
    _err(f"{where}: {report.reason} ({report.records:,} records verified before it)")
    return EXIT_FINDINGS


def _verify_manifest(file: str, keys: list[str], public_key: str | None) -> None:
    """Verify every part a manifest names (a partitioned replay's audit) and exit."""
    try:
        found = verify_manifest(file, key=keys, public_key=public_key)
    except AuditError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    except OSError as exc:
        _err(f"{exc.filename or file}: cannot read: {exc.strerror or exc}")
        sys.exit(EXIT_INVALID)
    worst = max((_show(name, report) for name, report in found.parts), default=EXIT_OK)
    for problem in found.problems:
        _err(problem)
    if found.ok:
        click.echo(f"{file}: every part intact, {len(found.parts)} files, {found.records:,} records")
        sys.exit(EXIT_OK)
    sys.exit(max(worst, EXIT_FINDINGS))
