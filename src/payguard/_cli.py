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

from ._audit.processors import Masker
from ._audit.rejects import mask_rejected
from ._audit.verify import verify_file
from ._errors import InvalidEventError, PayguardError, RuleFileError
from ._guard import ENGINES, Guard
from ._io import read_records
from ._io.base import FORMATS, Limits, Record
from ._replay import FRAUD_LIST, ReplaySummary, parse_duration, replay, write_json
from ._rules.loader import load_rule_set

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_INTERNAL = 4


def _err(message: str) -> None:
    click.echo(message, err=True)


def _load_guard(path: str, **options: Any) -> Guard:
    """A guard, or exit 2: a rule set that does not load or an audit file that cannot be opened is a
    problem with the command's arguments, reported before any record is read."""
    try:
        return Guard.from_path(path, **options)
    except PayguardError as exc:
        _err(str(exc))
        raise SystemExit(EXIT_USAGE) from None


@click.group()
@click.version_option(package_name="payguard")
def main() -> None:
    """payguard: stop scam payments before the money leaves the victim's bank."""


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
@click.option("--audit-key", envvar="PAYGUARD_AUDIT_KEY", help="Key for the hashes that mask identifiers.")
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
def replay_command(
    files: tuple[str, ...],
    rules: str,
    out: str | None,
    audit: str | None,
    audit_key: str | None,
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
) -> None:
    """Evaluate every event of FILES in event-time order and summarise what the rules would have done.

    Exit 0 on success, 2 on a usage error (a rule file that does not load included), 3 when some
    records were rejected (the rest were still processed), 4 on an internal error.
    """
    delay = None
    if feedback_delay is not None:
        try:
            delay = parse_duration(feedback_delay)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--feedback-delay") from None
    guard = _load_guard(rules, engine=engine, audit=audit, audit_key=audit_key)
    old = _load_guard(compare, engine=engine) if compare else None
    if delay is not None and FRAUD_LIST not in guard.rules.lists:
        _err(f"warning: --feedback-delay has no effect: the rule set declares no '{FRAUD_LIST}' list")
    try:
        with _output(out) as out_handle, _output(rejects) as rejects_handle, _progress() as bar:
            task = bar.add_task("replay") if bar is not None else None

            def write(line: dict[str, Any]) -> None:
                assert out_handle is not None
                out_handle.write(json.dumps(line, ensure_ascii=False) + "\n")

            masker = guard.audit.masker if guard.audit is not None else Masker(audit_key)

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

            summary = replay(
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
                limits=Limits(max_line, max_field),
            )
    except PayguardError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE if isinstance(exc, ValueError) else EXIT_INTERNAL)
    except Exception as exc:  # noqa: BLE001 (the documented "internal error" exit code)
        _err(f"internal error: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_INTERNAL)
    finally:
        guard.close()
    _err(render_summary(summary))
    if summary_json:
        write_json(Path(summary_json), summary.to_dict())
    sys.exit(EXIT_INVALID if summary.rejected else EXIT_OK)


def render_summary(summary: ReplaySummary) -> str:
    """The replay summary as text for a terminal."""
    data = summary.to_dict()
    lines = [
        (
            f"history {data['history_records']:,}  records {data['records']:,}  "
            f"evaluated {data['evaluated']:,}  rejected {data['rejected']:,}  "
            f"duplicates {data['duplicates']:,}  out of order {data['out_of_order']:,}"
        ),
        f"{data['evaluated'] / max(data['seconds'], 1e-9):,.0f} events/s over {data['seconds']:.2f} s",
        "events by type: " + ", ".join(f"{k} {v:,}" for k, v in data["events_by_type"].items()),
        "decisions:",
    ]
    for action, row in data["decisions"].items():
        money = ", ".join(f"{amount} {ccy}" for ccy, amount in row["amount"].items()) or "-"
        lines.append(f"  {action:<10} {row['count']:>9,}   {money}")
    if data["top_rules_by_count"]:
        lines.append("rules that fired most:")
        lines += [f"  {r['rule_id']:<40} {r['count']:>9,}" for r in data["top_rules_by_count"]]
        lines.append("rules by amount:")
        for row in data["top_rules_by_amount"]:
            money = ", ".join(f"{amount} {ccy}" for ccy, amount in row["amount"].items())
            lines.append(f"  {row['rule_id']:<40} {money}")
    if data["shadow_rules"]:
        lines.append("shadow rules: " + ", ".join(f"{k} {v:,}" for k, v in data["shadow_rules"].items()))
    backtest = data.get("backtest")
    if backtest:
        lines += _render_backtest("backtest", backtest)
    compare = data.get("compare")
    if compare is not None:
        lines.append(f"compare: {compare['changed_total']:,} decisions changed")
        for row in compare["changed"]:
            rules = ", ".join(f"{k} {v}" for k, v in row["rules"].items())
            examples = ", ".join(row["examples"])
            lines.append(f"  {row['old']:>9} -> {row['new']:<9} {row['count']:>7,}  {rules}  e.g. {examples}")
        if "old_backtest" in compare and backtest:
            old = compare["old_backtest"]
            lines.append(
                f"  precision {old['precision']} -> {backtest['precision']}, recall {old['recall']} -> "
                f"{backtest['recall']}, fraud money stopped {old['fraud_money_stopped_share']} -> "
                f"{backtest['fraud_money_stopped_share']}"
            )
    if data.get("accounts_listed_by_feedback"):
        lines.append(
            f"feedback: {data['accounts_listed_by_feedback']:,} payee accounts added to {FRAUD_LIST}"
        )
    return "\n".join(lines)


def _render_backtest(title: str, backtest: dict[str, Any]) -> list[str]:
    matrix = backtest["confusion"]
    lines = [
        f"{title} over {backtest['labelled_payments']:,} labelled payments:",
        (
            f"  stopped fraud {matrix['stopped_fraud']:,}   missed fraud {matrix['missed_fraud']:,}   "
            f"stopped legit {matrix['stopped_legit']:,}   allowed legit {matrix['allowed_legit']:,}"
        ),
        (
            f"  precision {backtest['precision']}   recall {backtest['recall']}   "
            f"legit stopped share {backtest['legit_stopped_share']}   "
            f"fraud money stopped {backtest['fraud_money_stopped_share']}"
        ),
    ]
    for rule, row in backtest["rules"].items():
        lines.append(
            f"  {rule:<40} fraud {row['fraud_hits']:>7,}  legit {row['legit_hits']:>7,}  "
            f"precision {row['precision']}"
        )
    return lines


@main.command()
@click.option("--rules", "rules", required=True, type=click.Path(), help="Rule file or directory.")
@click.option("--event-id", help="The event to explain (default: the last one in the file).")
@click.option("--format", "fmt", type=click.Choice(FORMATS))
@click.option("--mapping")
@click.argument("event_file")
def explain(rules: str, event_id: str | None, fmt: str | None, mapping: str | None, event_file: str) -> None:
    """Show the features and hits of one event, after the history before it in EVENT_FILE.

    Events before the one explained are recorded as executed history (not decided, not audited).
    """
    guard = _load_guard(rules, engine="python")
    records = [r for r in read_records(event_file, fmt, mapping) if r.event is not None]
    ids = [r.event.get("id") for r in records if r.event is not None]
    if not records:
        _err(f"{event_file}: no events")
        sys.exit(EXIT_INVALID)
    position = len(records) - 1 if event_id is None else (ids.index(event_id) if event_id in ids else -1)
    if position < 0:
        _err(f"{event_file}: no event with id {event_id!r}")
        sys.exit(EXIT_INVALID)
    try:
        guard.record(r.event for r in records[:position] if r.event is not None)
        target = records[position]
        decision = guard.evaluate(target.event or {})
    except InvalidEventError as exc:
        _err(f"{event_file}: {exc}")
        sys.exit(EXIT_INVALID)
    scored = f" (score {decision.score})" if guard.rules.scoring else ""
    click.echo(f"event {decision.event_id} ({target.where}) -> {decision.action.value}{scored}")
    click.echo("features:")
    for name, value in sorted(decision.features.items()):
        click.echo(f"  {name:<36} {value}")
    click.echo("hits:" if decision.hits else "hits: none")
    for hit in decision.hits:
        click.echo(f"  {hit.rule_id:<36} {hit.effect:<18} {hit.reason}")
    for hit in decision.shadow_hits:
        click.echo(f"  {hit.rule_id:<36} {hit.effect:<18} (shadow) {hit.reason}")
    for rule_id in decision.snoozed:
        click.echo(f"  {rule_id:<36} {'snoozed':<18} (matched, kept from firing by a snooze)")


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
def audit() -> None:
    """Audit trail tools."""


@audit.command()
@click.argument("file", type=click.Path())
def verify(file: str) -> None:
    """Check the hash chain of an audit FILE: exit 0 intact, 1 tampered or cut, 3 unreadable."""
    try:
        report = verify_file(file)
    except OSError as exc:
        _err(f"{file}: cannot read: {exc}")
        sys.exit(EXIT_INVALID)
    for note in report.notes:
        _err(f"{file}: note: {note}")
    if report.ok:
        click.echo(f"{file}: intact, {report.records:,} records")
        sys.exit(EXIT_OK)
    _err(f"{file}:{report.first_bad_line}: {report.reason} ({report.records:,} records verified before it)")
    sys.exit(EXIT_FINDINGS)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    main()
