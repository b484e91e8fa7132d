"""The ``payguard serve`` command: parse the options, run the server (``payguard[serve]``)."""

from __future__ import annotations

import sys

import click

from .._audit.command import audit_key_options
from .._errors import PayguardError
from .options import LOG_LEVELS, ServeOptions

__all__ = ["serve"]


@click.command()
@click.option("--rules", "rules", required=True, type=click.Path(), help="Rule file or directory.")
@click.option(
    "--store",
    default="memory:",
    show_default=True,
    help="Where histories live: memory:, sqlite:///FILE or a path, redis://HOST:PORT/DB (shared by workers).",
)
@click.option("--audit", help="Write the audit trail (JSON Lines) here; with --workers N, one file each.")
@audit_key_options
@click.option(
    "--audit-checkpoints",
    type=click.Path(),
    help="Also append each signed checkpoint here, the witness (one file per worker, as --audit).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8181, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True, help="Request log level."
)
def serve(  # noqa: PLR0917 (click passes every option as a parameter)
    rules: str,
    store: str,
    audit: str | None,
    audit_key: str | None,
    audit_signing_key: str | None,
    audit_checkpoints: str | None,
    host: str,
    port: int,
    workers: int,
    log_level: str,
) -> None:
    """Serve decisions over HTTP (POST /v1/decisions) until SIGTERM; docs/operations.md.

    Exit 0 after a clean shutdown, 2 when the options, the rule set, the store or the port cannot be used,
    4 when a worker failed or the audit trail could not be closed.
    """
    options = ServeOptions(
        rules,
        store,
        audit,
        audit_key,
        audit_signing_key,
        host,
        port,
        workers,
        log_level,
        0,
        audit_checkpoints,
    )
    try:
        from .runner import run
    except ImportError as exc:  # the extra is not installed
        click.echo(f"error: payguard serve needs: pip install 'payguard[serve]' ({exc})", err=True)
        sys.exit(2)
    try:
        code = run(options)
    except PayguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)
