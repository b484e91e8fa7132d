"""The ``payguard`` command: thin wrappers that parse options, call the library and render.

Data goes to stdout, everything else (progress, summaries, warnings, errors) to stderr. Exit codes are
documented in the README and differ between "findings" and "could not run".
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from ._audit.command import audit, audit_key_options
from ._audit.keys import AuditKeys
from ._audit.processors import Masker
from ._audit.rejects import mask_rejected
from ._backtest.cli import partition_options
from ._common.exits import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from ._errors import PayguardError, RuleFileError, StoreError
from ._guard import ENGINES, Guard
from ._io.base import FORMATS, Limits, Record
from ._render import render_scenarios, render_summary
from ._replay import FRAUD_LIST, parse_duration, replay, write_json
from ._rules.loader import load_rule_set
from ._rules.overrides import parse_setting
from ._serve.command import serve
from ._stores.interface import Store
from ._stores.url import open_store


def _err(message: str) -> None:
    click.echo(message, err=True)


def _load_guard(path: str, settings: tuple[str, ...] = (), **options: Any) -> Guard:
    """A guard, or exit 2: a rule set that does not load or an audit file that cannot be opened is a
    problem with the command's arguments, reported before any record is read. ``settings`` are
    ``PARAM=VALUE`` overrides of the rule set's parameters."""
    try:
        params = dict(parse_setting(text) for text in settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    try:
        return Guard(load_rule_set(path, params=params), **options)
    except PayguardError as exc:
        _err(str(exc))
        raise SystemExit(EXIT_USAGE) from None


def _open_store(url: str | None) -> Store | None:
    """The store ``--store`` names (None: the guard's own in-memory one), or exit 2."""
    if url is None:
        return None
    try:
        return open_store(url)
    except StoreError as exc:
        _err(f"error: --store: {exc}")
        raise SystemExit(EXIT_USAGE) from None


@click.group()
@click.version_option(package_name="payguard")
def main() -> None:
    """payguard: stop scam payments before the money leaves the victim's bank."""


main.add_command(serve)
main.add_command(audit)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def check(paths: tuple[str, ...]) -> None:
    """Validate rule files or directories. Exit 0 when all are valid, 3 when not."""
    failed = False
    for path in paths:
        try:
            ruleset = load_rule_set(path)
        except RuleFileError as exc:
            failed = True
            for problem in exc.problems:
                _err(str(problem))
            continue
        if ruleset.lint:  # it loads, but some condition can never be true: a rule that silently never fires
            failed = True
            for problem in ruleset.lint:
                _err(str(problem))
            continue
        click.echo(
            f"ok: {path}: {ruleset.id} {ruleset.version}, {len(ruleset.rules)} rules, {ruleset.digest}"
        )
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("w", encoding="utf-8") as handle:
            yield handle


def _progress() -> Any:
    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=None,
        transient=True,
        redirect_stdout=False,
    )


@main.command(name="replay")
@click.argument("files", nargs=-1, required=True)
@click.option("--rules", "rules", required=True, type=click.Path(), help="Rule file or directory.")
@click.option("--out", "out", help="Write one JSON line per decision here ('-' for stdout).")
@click.option("--audit", "audit", help="Write the audit trail (JSON Lines) here.")
@audit_key_options
@click.option("--audit-checkpoints", type=click.Path(), help="Also append each signed checkpoint here.")
@click.option("--summary-json", "summary_json", help="Write the summary as JSON here.")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Reader; guessed from the file name if omitted."
)
@click.option("--mapping", help="CSV mapping: paysim, handbook, amlsim or a mapping file.")
@click.option(
    "--rejects",
    help="Write rejected records here (JSON Lines with file, line and reason), masked as the audit masks.",
)
@click.option(
    "--rejects-raw",
    is_flag=True,
    help="Write the rejected records unmasked (a debugging run only: they hold account numbers).",
)
@click.option(
    "--max-line",
    type=click.IntRange(min=1),
    default=Limits.max_line,
    show_default=True,
    help="Longest line (bytes) of a JSON Lines or CSV record; a longer one is rejected alone.",
)
@click.option(
    "--max-field",
    type=click.IntRange(min=1, max=131_072),
    default=Limits.max_field,
    show_default=True,
    help="Longest CSV field (characters); a record with a longer one is rejected alone.",
)
@click.option("--compare", "compare", type=click.Path(), help="Old rule set to compare the new one against.")
@click.option(
    "--feedback-delay", help="Add labelled frauds' payees to fraud_accounts after this delay (7d, 12h)."
)
@click.option("--history", "history", multiple=True, help="Record this file's events as past payments first.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True)
@click.option("--report", "report", help="Write the backtest report here (one self-contained HTML file).")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="PARAM=VALUE",
    help="Override a rule-set parameter (repeatable).",
)
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Where histories and decisions live: memory: (default), sqlite:///FILE, redis://HOST:PORT/DB.",
)
@partition_options
def replay_command(
    files: tuple[str, ...],
    rules: str,
    out: str | None,
    audit: str | None,
    audit_key: str | None,
    audit_signing_key: str | None,
    audit_checkpoints: str | None,
    summary_json: str | None,
    fmt: str | None,
    mapping: str | None,
    rejects: str | None,
    rejects_raw: bool,
    max_line: int,
    max_field: int,
    compare: str | None,
    feedback_delay: str | None,
    history: tuple[str, ...],
    engine: str,
    report: str | None,
    settings: tuple[str, ...],
    store_url: str | None,
    partitions: int | None,
    dask_scheduler: str | None,
    spark_master: str | None,
) -> None:
    """Evaluate every event of FILES in event-time order and summarise what the rules would have done.

    Exit 0 on success, 2 on a usage error (a rule file that does not load included), 3 when some
    records were rejected or reused an event id for another event (the rest were still processed), 4
    on an internal error.
    """
    delay = None
    if feedback_delay is not None:
        try:
            delay = parse_duration(feedback_delay)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--feedback-delay") from None
    parted = {"audit": audit, "audit_key": audit_key, "audit_signing_key": audit_signing_key}
    if partitions is not None or dask_scheduler or spark_master:
        from ._backtest.cli import refuse

        refuse(partitions, dask_scheduler, spark_master, audit_checkpoints=audit_checkpoints, store=store_url)
        audit = audit_signing_key = None  # each partition writes its own audit file (the runner's options)
    guard = _load_guard(
        rules,
        settings,
        engine=engine,
        audit=audit,
        audit_key=audit_key,
        audit_signing_key=audit_signing_key,
        audit_checkpoints=audit_checkpoints,
        max_future=None,  # a replay decides in event time: no event is too far ahead of today's clock
        store=_open_store(store_url),
    )
    old = _load_guard(compare, engine=engine, max_future=None) if compare else None
    if delay is not None and FRAUD_LIST not in guard.rules.lists:
        _err(f"warning: --feedback-delay has no effect: the rule set declares no '{FRAUD_LIST}' list")
    for problem in guard.rules.lint:
        _err(f"warning: {problem}")
    collector = None
    if report is not None:
        from ._report import Collector

        collector = Collector()
    # masks as a guard's audit trail does (or the partitions' trails), so rows join with audit records
    masker = guard.audit.masker if guard.audit is not None else Masker(AuditKeys.derive(audit_key).mask)
    try:
        with _output(out) as out_handle, _output(rejects) as rejects_handle, _progress() as bar:
            task = bar.add_task("replay") if bar is not None else None

            def write(line: dict[str, Any]) -> None:
                assert out_handle is not None
                out_handle.write(json.dumps(line, ensure_ascii=False) + "\n")

            def reject(record: Record, reason: str) -> None:
                _err(f"{record.where}: rejected: {reason}")
                if rejects_handle is not None:
                    line: dict[str, Any] = {"file": record.source, "line": record.line, "reason": reason}
                    if rejects_raw:
                        line["record"] = record.event
                    else:
                        public = guard.rules.public_attributes
                        line["record"], line["masked"], line["erased"] = mask_rejected(
                            masker, record.event, public
                        )
                    rejects_handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")

            run = replay
            if partitions is not None:
                from ._backtest.cli import runner

                run = runner(partitions, dask_scheduler, spark_master, collector, **parted)
            summary = run(
                list(files),
                guard,
                fmt=fmt,
                mapping=mapping,
                write=write if out_handle is not None else None,
                reject=reject,
                compare=old,
                feedback_delay=delay,
                progress=(lambda n: bar.advance(task, n)) if bar is not None else None,
                history=list(history),
                observe=collector.observe if collector is not None else None,
                mask=masker.mask,
                limits=Limits(max_line, max_field),
            )
    except PayguardError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE if isinstance(exc, ValueError) else EXIT_INTERNAL)
    except Exception as exc:  # noqa: BLE001 (the documented "internal error" exit code)
        _err(f"internal error: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_INTERNAL)
    finally:
        _close(guard)
    _err(render_summary(summary))
    if partitions is not None:
        from ._backtest.cli import describe

        _err(describe(summary))
    if summary.currencies is not None and summary.currencies.mismatched:
        _err(summary.currencies.warning())
    if summary_json:
        write_json(Path(summary_json), summary.to_dict())
    if report is not None and collector is not None:
        from ._report import ReportContext, write_report

        context = ReportContext(list(files), rules, guard.rules, compare, old.rules if old else None)
        write_report(Path(report), context, summary, collector)
        _err(f"report: {report}")
    sys.exit(EXIT_INVALID if summary.rejected or summary.conflicts else EXIT_OK)


def _close(guard: Guard) -> None:
    """Close the guard; its last audit checkpoint failing to be written is an internal error (exit 4)."""
    try:
        guard.close()
    except PayguardError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_INTERNAL)


@main.command()
@click.option("--rules", "rules", required=True, type=click.Path(), help="Rule file or directory.")
@click.option("--event-id", help="The event to explain (default: the last one in the file).")
@click.option("--format", "fmt", type=click.Choice(FORMATS))
@click.option("--mapping")
@click.option("--history", "history", multiple=True, help="Record this file's events as past payments first.")
@click.option(
    "--why-not", "why_not", help="Show each condition of this rule on the event, and whether it held."
)
@click.argument("event_file")
def explain(
    rules: str,
    event_id: str | None,
    fmt: str | None,
    mapping: str | None,
    history: tuple[str, ...],
    why_not: str | None,
    event_file: str,
) -> None:
    """Explain the decision replay makes for one event of EVENT_FILE: the events before it are decided in
    order as replay decides them (after --history), then its fields, features, hits with their evidence
    and, with --why-not, each condition of that rule.

    Exit 0 shown, 2 the rule set does not load or --why-not names no rule, 3 no such event.
    """
    from ._explain import NoSuchEventError, render
    from ._explain import explain as explain_event

    guard = _load_guard(rules, engine="python", max_future=None)
    try:
        explanation = explain_event(
            [event_file], guard, event_id, fmt=fmt, mapping=mapping, history=list(history), why_not=why_not
        )
    except NoSuchEventError as exc:
        _err(str(exc))
        sys.exit(EXIT_INVALID)
    except PayguardError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE)
    if explanation.summary.currencies is not None and explanation.summary.currencies.mismatched:
        _err(explanation.summary.currencies.warning())
    click.echo("\n".join(render(explanation, scored=bool(guard.rules.scoring))))


@main.command(name="test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-k", "select", help="Run only the cases whose name contains (or glob-matches) PATTERN.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--coverage", is_flag=True, help="List the rules that no case fired.")
@click.option(
    "--fail-under", type=click.FloatRange(0, 100), help="Fail below this percentage of rules fired."
)
@click.option(
    "--fuzz", type=click.IntRange(min=0), default=0, help="Check each invariant with N generated events."
)
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True)
def test_command(
    paths: tuple[str, ...],
    select: str | None,
    fmt: str,
    coverage: bool,
    fail_under: float | None,
    fuzz: int,
    engine: str,
) -> None:
    """Run the rule tests (*_test.yaml) under PATHS.

    Exit 0 when every case passed, 1 when a case or invariant failed (or coverage is under --fail-under),
    3 when a rule or test file could not be loaded.
    """
    from .testing import run_rule_tests

    try:
        report = run_rule_tests(paths, select=select, fuzz=fuzz, engine=engine)
    except RuleFileError as exc:
        for problem in exc.problems:
            _err(str(problem))
        sys.exit(EXIT_INVALID)
    percent = report.coverage()
    under = fail_under is not None and percent < fail_under
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        labels = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
        for result in report.results:
            kind = " (invariant)" if result.kind == "invariant" else ""
            click.echo(f"{labels[result.status]} {result.name}{kind}")
            if result.status == "failed":
                click.echo("\n".join(f"    {line}" for line in result.message.splitlines()))
        counts = report.counts()
        click.echo(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
        if coverage or fail_under is not None:
            click.echo(f"rule coverage: {percent:.1f}%")
            for rule in report.unfired():
                click.echo(f"  not fired by any case: {rule}")
        if under:
            _err(f"rule coverage {percent:.1f}% is under --fail-under {fail_under:g}%")
    sys.exit(EXIT_FINDINGS if report.failed or under else EXIT_OK)


@main.command(name="scenarios")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--rules", "rules", required=True, multiple=True, type=click.Path(), help="Rule set (repeat to compare)."
)
@click.option(
    "--json", "json_path", help="Write every rule set's summary and steps as JSON here ('-': stdout)."
)
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True)
def scenarios_command(
    paths: tuple[str, ...], rules: tuple[str, ...], json_path: str | None, engine: str
) -> None:
    """Run the scenario stories under PATHS on each rule set and summarise what was stopped and missed.

    Exit 0 when every judged step met its expectation on every rule set, 1 when one did not, 2 when a
    story file or a rule set does not load.
    """
    from .testing import load_stories, run_scenarios

    try:
        stories = load_stories(paths)
        reports = [run_scenarios(stories, rules=path, engine=engine) for path in rules]
    except RuleFileError as exc:
        for problem in exc.problems:
            _err(str(problem))
        sys.exit(EXIT_USAGE)
    except PayguardError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE)
    text = "\n\n".join(f"{path}: {render_scenarios(r)}" for path, r in zip(rules, reports, strict=True))
    click.echo(text, err=json_path == "-")
    if json_path is not None:
        with _output(json_path) as handle:
            assert handle is not None
            data = {
                "rule_sets": [{"path": path, **r.to_dict()} for path, r in zip(rules, reports, strict=True)]
            }
            handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FINDINGS)


@main.group()
def generate() -> None:
    """Synthetic traffic for measuring rules: ordinary customers, and the demo day with scams."""


@generate.command()
@click.option("--customers", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--history-days", type=click.IntRange(min=0), default=60, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="The month to measure (JSON Lines).")
@click.option("--history-out", type=click.Path(), help="The months before it, to warm the store.")
def benign(
    customers: int, seed: int, days: int, history_days: int, out: str, history_out: str | None
) -> None:
    """Ordinary traffic of CUSTOMERS customers: regular payees, bills, salaries, new friends, purchases."""
    from ._synthetic import benign_traffic, write_jsonl

    start = datetime(2026, 3, 1, tzinfo=UTC)
    past, month = benign_traffic(customers, seed, start, history_days=history_days, days=days)
    write_jsonl(Path(out), month)
    if history_out:
        write_jsonl(Path(history_out), past)
    _err(f"{len(month):,} events in {out}" + (f", {len(past):,} in {history_out}" if history_out else ""))


@generate.command()
@click.option("--out", required=True, type=click.Path())
@click.option("--history-out", required=True, type=click.Path())
@click.option("--seed", type=int, default=20260316, show_default=True)
def demo(out: str, history_out: str, seed: int) -> None:
    """The demo files: 60 days of history and one day at a small bank with three scam stories."""
    from ._synthetic import demo_day, write_jsonl

    past, day = demo_day(seed)
    write_jsonl(Path(out), day)
    write_jsonl(Path(history_out), past)
    _err(f"{len(day):,} events in {out}, {len(past):,} in {history_out}")


@main.command()
@click.argument("path", type=click.Path())
def table(path: str) -> None:
    """Print the rules of PATH as a Markdown table (id, mode, action, what it catches)."""
    try:
        ruleset = load_rule_set(path)
    except RuleFileError as exc:
        _err(str(exc))
        sys.exit(EXIT_INVALID)
    click.echo(rules_table(ruleset))


def rules_table(ruleset: Any) -> str:
    """The Markdown table of a rule set's rules; rules/README.md holds it and a test keeps it in step."""
    lines = ["| id | action | what it catches |", "| --- | --- | --- |"]
    for rule in sorted(ruleset.rules, key=lambda r: r.id):
        first = rule.description.split(". ")[0].rstrip(".").replace("|", "\\|")
        effect = [] if rule.action is None else [rule.action.value]
        if rule.score is not None:
            effect.append(f"score {rule.score:+d}")
        action = ", ".join(effect) + (" (shadow)" if rule.shadow else "")
        lines.append(f"| `{rule.id}` | {action} | {first}. |")
    return "\n".join(lines)


def features_table() -> str:
    """The Markdown table of the features a rule may read, in declaration order; the README holds it and
    tests/test_docs.py keeps it in step with the declarations."""
    from ._rules.fields import FEATURES  # read when called, so the table follows the declarations

    lines = ["| feature | kind | meaning |", "| --- | --- | --- |"]
    for spec in FEATURES.values():
        meaning = spec.description.replace("|", "\\|")
        lines.append(f"| `{spec.name}` | {spec.kind.value} | {meaning} |")
    return "\n".join(lines)


@main.group()
def schema() -> None:
    """JSON Schemas for editors."""


@schema.command(name="rules")
def schema_rules() -> None:
    """Print the JSON Schema of rule files (also shipped as payguard/rules.schema.json)."""
    from ._rules.schema import render, rules_schema

    click.echo(render(rules_schema()), nl=False)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    main()
