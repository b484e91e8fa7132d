"""The backtest report: one self-contained HTML file (no script, no external style or font), printable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from .._common.version import PAYGUARD_VERSION
from .._replay import ReplaySummary
from .._rules.model import RuleSet
from .collect import Collector
from .svg import COLOURS, stacked_bars

__all__ = ["ReportContext", "render_report", "write_report"]

_STYLE = """

body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1d232a;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h3{font-size:14px;margin:14px 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccd;padding-bottom:3px}
.meta{color:#556;font-size:12px}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;margin:10px 0}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{border:1px solid #ccd;border-radius:6px;padding:8px 12px;min-width:130px}
.tile b{display:block;font-size:19px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f5f8;position:sticky;top:0}td.l,th.l{text-align:left}code{font-size:12px}
.chart{max-width:100%;height:auto}.chart .grid{stroke:#e3e6ea}.chart .axis{font-size:11px;fill:#556}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.note{color:#556;font-size:12px}@media print{body{margin:0;max-width:none}h2{break-after:avoid}
table,svg{break-inside:avoid}th{position:static}
"""


@dataclass(frozen=True)
class ReportContext:
    """What the report says about how the replay was run."""

    files: Sequence[str]
    rules_path: str
    ruleset: RuleSet
    compare_path: str | None = None
    compare_ruleset: RuleSet | None = None


def _money(table: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{amount:,.2f} {ccy}" for ccy, amount in sorted(table.items())) or "-"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1, *, text_last: bool = False
) -> str:
    """A table whose first ``left`` columns (and the last, with ``text_last``) are text, the rest figures."""

    def text(i: int) -> bool:
        return i < left or (text_last and i == len(head) - 1)

    cells = "".join(
        f'<th class="l">{escape(h)}</th>' if text(i) else f"<th>{escape(h)}</th>" for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="l">{value}</td>' if text(i) else f"<td>{value}</td>" for i, value in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    if not body:
        body.append(f'<tr><td class="l" colspan="{len(head)}">none</td></tr>')
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _main_currency(collector: Collector) -> str | None:
    totals: dict[str, Decimal] = {}
    for table in collector.day_money.values():
        for (_action, ccy), amount in table.items():
            totals[ccy] = totals.get(ccy, Decimal(0)) + amount
    return max(totals, key=lambda c: totals[c]) if totals else None


def _charts(collector: Collector) -> str:
    days = sorted(collector.days)
    if not days:
        return '<p class="note">no decisions</p>'
    labels = [day.isoformat() for day in days]
    counts = {
        action: [float(collector.days[day][action]) for day in days]
        for action in ("review", "hold", "interrupt")
    }
    parts = [
        "<h3>Decisions per day that were not allow, by action</h3>",
        stacked_bars("Decisions per day that were not allow, by action", labels, counts),
        '<p class="note">Allowed per day: '
        + ", ".join(f"{day.isoformat()[5:]} {collector.days[day]['allow']:,}" for day in days[:62])
        + ("..." if len(days) > 62 else "")
        + "</p>",
    ]
    currency = _main_currency(collector)
    if currency is not None:
        money = {
            action: [float(collector.day_money[day][(action, currency)]) for day in days]
            for action in ("hold", "interrupt")
        }
        parts.append(
            stacked_bars(f"Money stopped per day by action ({currency})", labels, money, unit=f" {currency}")
        )
    return "".join(parts)


def _overlap(collector: Collector, rule_id: str) -> str:
    top = collector.overlap[rule_id].most_common(3) if rule_id in collector.overlap else []
    return ", ".join(f"<code>{escape(other)}</code> {count:,}" for other, count in top) or "-"


def _rules_table(context: ReportContext, collector: Collector) -> str:
    order = sorted(collector.rules.items(), key=lambda item: (-item[1].hits, item[0]))
    rules = {rule.id: rule for rule in context.ruleset.rules}
    rows = []
    for rule_id, stats in order:
        rule = rules.get(rule_id)
        effect = "-" if rule is None else (rule.action.value if rule.action else f"score {rule.score:+d}")
        rows.append(
            (
                f"<code>{escape(rule_id)}</code>",
                escape(effect),
                f"{stats.hits:,}",
                f"{stats.fraud:,}",
                f"{stats.legit:,}",
                _money(stats.fraud_money),
                _money(stats.legit_money),
                f"{stats.only:,}",
                _money(stats.only_money),
                _ratio(stats.precision),
                _overlap(collector, rule_id),
            )
        )
    never = [rule.id for rule in context.ruleset.rules if not rule.shadow and rule.id not in collector.rules]
    head = (
        "rule",
        "effect",
        "hits",
        "fraud",
        "legit",
        "fraud money",
        "legit money",
        "only this rule stopped",
        "money only it stopped",
        "precision",
        "fires most with",
    )
    note = (
        f'<p class="note">Never fired: {", ".join(f"<code>{escape(r)}</code>" for r in never)}</p>'
        if never
        else ""
    )
    return _table(head, rows, left=2, text_last=True) + note


def _shadow_table(collector: Collector) -> str:
    rows = [
        (
            f"<code>{escape(rule_id)}</code>",
            f"{stats.hits:,}",
            f"{stats.fraud:,}",
            f"{stats.legit:,}",
            _ratio(stats.precision),
            f"{stats.newly_stopped:,}",
            f"{stats.newly_fraud:,}",
            f"{stats.newly_legit:,}",
            _money(stats.newly_fraud_money),
        )
        for rule_id, stats in sorted(collector.shadow.items(), key=lambda item: (-item[1].hits, item[0]))
    ]
    head = (
        "shadow rule",
        "hits",
        "fraud",
        "legit",
        "precision",
        "would newly stop",
        "of them fraud",
        "of them legit",
        "fraud money it would add",
    )
    return (
        _table(head, rows)
        + '<p class="note">As if enforced: a payment counts as newly stopped when the shadow rule holds or '
        "interrupts and no enforced rule stopped it. Knock-on effects on later events are not simulated: "
        "replay with the rule enforced (and <code>--compare</code>) for those.</p>"
    )


def _compare_section(context: ReportContext, summary: ReplaySummary, collector: Collector) -> str:
    rows = []
    for (old, new), change in sorted(collector.changes.items(), key=lambda item: (-item[1].total, item[0])):
        examples = ", ".join(escape(e) for e in change.examples) or "-"
        knock = ", ".join(escape(e) for e in change.knock_on_examples) or "-"
        rows.append(
            (
                (
                    f'<span class="swatch" style="background:{COLOURS[old]}"></span>{old} &rarr; '
                    f'<span class="swatch" style="background:{COLOURS[new]}"></span>{new}'
                ),
                f"{change.total:,}",
                f"{change.fraud:,}",
                f"{change.legit:,}",
                f"{change.unlabelled:,}",
                f"{change.knock_on:,}",
                examples,
                knock,
            )
        )
    head = (
        "change",
        "decisions",
        "fraud",
        "legit",
        "unlabelled",
        "knock-on",
        "examples (direct)",
        "examples (knock-on)",
    )
    deltas = [
        (
            f"<code>{escape(r['rule_id'])}</code>",
            f"{r['old']:,}",
            f"{r['new']:,}",
            f"{r['new'] - r['old']:+,}",
        )
        for r in collector.rule_deltas()
        if r["new"] != r["old"]
    ]
    old_name = context.compare_ruleset.id if context.compare_ruleset else "?"
    compare = summary.compare
    backtest = ""
    if compare is not None and compare.old_backtest.labelled and summary.backtest.labelled:
        was, now = compare.old_backtest.to_dict(), summary.backtest.to_dict()
        backtest = _table(
            ("", "old", "new"),
            [
                ("precision", _ratio(was["precision"]), _ratio(now["precision"])),
                ("recall", _ratio(was["recall"]), _ratio(now["recall"])),
                ("legit payments stopped", f"{compare.old_backtest.fp:,}", f"{summary.backtest.fp:,}"),
                ("fraud payments stopped", f"{compare.old_backtest.tp:,}", f"{summary.backtest.tp:,}"),
            ],
        )
    return (
        f"<h2>Compared with {escape(old_name)} ({escape(context.compare_path or '')})</h2>"
        + _table(head, rows, text_last=True)
        + '<p class="note">Knock-on: the event saw other features under the two rule sets (its history '
        "differed because an earlier payment was stopped under one and executed under the other), so the "
        "change is an effect of earlier decisions rather than of the rules on this payment.</p>"
        + backtest
        + "<h3>Rules whose hits changed</h3>"
        + _table(("rule", "old hits", "new hits", "change"), deltas)
    )


def render_report(context: ReportContext, summary: ReplaySummary, collector: Collector) -> str:
    """The report as one HTML document."""
    data = summary.to_dict()
    ruleset = context.ruleset
    warnings = []
    if summary.currencies is not None and summary.currencies.mismatched:
        warnings.append(summary.currencies.warning().removeprefix("warning: "))
    warnings += [str(problem) for problem in ruleset.lint]
    if summary.rejected:
        warnings.append(f"{summary.rejected:,} records were rejected and not evaluated")
    decisions = data["decisions"]
    tiles = [("events evaluated", f"{summary.evaluated:,}")]
    tiles += [(action, f"{row['count']:,}") for action, row in decisions.items()]
    stopped = {
        ccy: Decimal(decisions["hold"]["amount"].get(ccy, 0))
        + Decimal(decisions["interrupt"]["amount"].get(ccy, 0))
        for ccy in set(decisions["hold"]["amount"]) | set(decisions["interrupt"]["amount"])
    }
    tiles.append(("money stopped", _money(stopped)))
    backtest = summary.backtest
    labelled = ""
    if backtest.labelled:
        bt = backtest.to_dict()
        fraud_money = dict(backtest.fraud_money_stopped)
        tiles += [
            ("precision", _ratio(bt["precision"])),
            ("recall", _ratio(bt["recall"])),
            ("fraud money stopped", _money(fraud_money)),
            (
                "share of fraud money stopped",
                ", ".join(f"{_ratio(v)} {c}" for c, v in bt["fraud_money_stopped_share"].items()) or "-",
            ),
            ("legit payments stopped", f"{backtest.fp:,} ({_ratio(bt['legit_stopped_share'])})"),
        ]
        labelled = (
            f'<p class="note">Over {backtest.labelled:,} labelled outgoing payments: stopped fraud '
            f"{backtest.tp:,}, missed fraud {backtest.fn:,}, stopped legit {backtest.fp:,}, allowed legit "
            f"{backtest.tn:,}. Stopped means hold or interrupt.</p>"
        )
    settings = ""
    if summary.settings:
        settings = (
            "<p>Parameters set for this replay: "
            + ", ".join(
                f"<code>{escape(k)}={escape(str(v))}</code>" for k, v in sorted(summary.settings.items())
            )
            + "</p>"
        )
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>payguard backtest: {escape(ruleset.id)} {escape(ruleset.version)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Backtest of {escape(ruleset.id)} {escape(ruleset.version)}</h1>",
        (
            f'<p class="meta">rules {escape(context.rules_path)} ({escape(ruleset.digest)}) &middot; files '
            f"{escape(', '.join(context.files))} &middot; payguard {escape(PAYGUARD_VERSION)} &middot; "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>"
        ),
        settings,
        "".join(f'<div class="warn">{escape(w)}</div>' for w in warnings),
        (
            '<div class="tiles">'
            + "".join(
                f'<div class="tile">{escape(name)}<b>{escape(value)}</b></div>' for name, value in tiles
            )
            + "</div>"
        ),
        labelled,
        "<h2>Day by day</h2>",
        _charts(collector),
        "<h2>Rules</h2>",
        _rules_table(context, collector),
        (
            '<p class="note">fraud / legit: labelled outgoing payments the rule hit; only this rule stopped: '
            "stopped payments where it was the one hit that holds or interrupts; precision: fraud over "
            "labelled hits.</p>"
        ),
    ]
    if collector.shadow:
        sections += ["<h2>Shadow rules, as if enforced</h2>", _shadow_table(collector)]
    if collector.compared:
        sections.append(_compare_section(context, summary, collector))
    sections.append("</body></html>")
    return "\n".join(s for s in sections if s)


def write_report(path: Path, context: ReportContext, summary: ReplaySummary, collector: Collector) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(context, summary, collector), encoding="utf-8")
