"""The terminal renderings of what the commands print: the replay summary and the scenario report."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ._replay import FRAUD_LIST, ReplaySummary

__all__ = ["render_scenarios", "render_summary"]


def render_summary(summary: ReplaySummary) -> str:
    """The replay summary as text for a terminal."""
    data = summary.to_dict()
    lines = [
        (
            f"history {data['history_records']:,}  records {data['records']:,}  "
            f"evaluated {data['evaluated']:,}  rejected {data['rejected']:,}  "
            f"duplicates {data['duplicates']:,}  conflicts {data['conflicts']:,}  "
            f"out of order {data['out_of_order']:,}"
        ),
        f"{data['evaluated'] / max(data['seconds'], 1e-9):,.0f} events/s over {data['seconds']:.2f} s",
        "events by type: " + ", ".join(f"{k} {v:,}" for k, v in data["events_by_type"].items()),
        "decisions:",
    ]
    if data["possible_duplicates"]:  # beside the counts of duplicates
        lines.insert(
            1,
            f"possible duplicates {data['possible_duplicates']:,} (marked PssblDplct by their sender; "
            "the ones decided before were not decided again)",
        )
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
    if data.get("settings"):
        lines.append("parameters set: " + ", ".join(f"{k}={v}" for k, v in data["settings"].items()))
    mismatch = data.get("currency_mismatch")
    if mismatch:
        lines.append(
            "currency: "
            + ", ".join(f"{n:,} money events in {c}" for c, n in mismatch["events_by_currency"].items())
            + f"; the rule set's {mismatch['money_tests_not_applied']} money tests are in "
            + ", ".join(mismatch["rule_currencies"])
            + " and could not apply to them"
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


def render_scenarios(report: Any, *, stories: bool = True) -> str:
    """A scenario report as text: the summary, then (with ``stories``) each story's failing steps with the
    rules that fired."""
    data = report.summary.to_dict()
    stop, interrupt, passing = data["must_stop"], data["must_interrupt"], data["must_pass"]
    ref = report.ruleset
    lines = [
        f"{ref.id} {ref.version} ({report.engine} engine)",
        f"  stories {data['stories']}, steps {data['steps']}, judged {data['judged']}, unmet {data['unmet']}",
        f"  must stop       {stop['steps']:>5}   stopped {stop['stopped']}, missed {stop['missed']}",
        f"  must interrupt  {interrupt['steps']:>5}   interrupted {interrupt['interrupted']}",
        (
            f"  must pass       {passing['steps']:>5}   stopped {passing['stopped']} "
            f"({passing['stopped_percent']} %), interrupted {passing['interrupted']}"
        ),
        "  scam money let through (of the must-stop steps' amounts, per currency):",
    ]
    for currency, row in data["money_let_through"].items():
        lines.append(
            f"    {currency} {row['let_through']:>14} of {row['must_stop']:>14}   {row['percent']:>6} %"
        )
    combined = data["money_let_through_combined"]
    if combined is not None and len(data["money_let_through"]) > 1:
        left_out = f" (no rate: {', '.join(combined['not_converted'])})" if combined["not_converted"] else ""
        lines.append(
            f"    all, in {combined['currency']} at the rule set's reference rates{left_out}: "
            f"{Decimal(combined['let_through']):.2f} of {Decimal(combined['must_stop']):.2f}   "
            f"{combined['percent']} %"
        )
    failing = [story for story in report.stories if story.failing or story.notes] if stories else []
    if failing:
        lines.append("stories with failing steps:")
    for story in failing:
        lines.append(f"  {story.id} ({story.path})")
        for step in story.failing:
            fired = ", ".join(step.rules) or "no rule"
            lines.append(
                f"    step {step.number} ({step.event_id}, line {step.line}): expected {step.expect}, "
                f"got {step.action.value}; fired: {fired}"
            )
        lines += [f"    note: {note}" for note in story.notes]
    return "\n".join(lines)
