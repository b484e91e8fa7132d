"""Hypothesis strategies for the tests: generated rule sets and events drawn from the same value pools,
so that generated conditions are true often enough to matter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from payguard import RuleFileError, RuleSet, load_rule_set

TEXTS = [
    "",
    "rent",
    "安全账户",
    "safe 'account'",
    'quote " inside',
    "back\\slash",
    "Ünïcödé 🎉",
    "USDT",
    "x" * 40,
]
ACCOUNTS = ["A-1", "A-2", "6222 0000 1111", "b-3"]
MCCS = ["6051", "5411", "7995", "4829"]
ENUMS = {
    "channel": ["mobile_app", "atm", "branch_counter", "wallet"],
    "payee.type": ["personal", "business", "vasp"],
    "cop_result": ["match", "no_match", "close_match"],
}
KEYWORD_SETS = {"safe": ["安全账户", "safe account"], "crypto": ["usdt", "bitcoin"]}
LISTS = {"fraud_accounts": ["6222-0000-1111", "A-2"]}

amount_values = st.sampled_from(["1", "99.99", "100", "100.01", "5000", "20000", "20000.50", "49999.99"])
int_values = st.integers(0, 100)
score_values = st.sampled_from([0.0, 0.25, 0.5, 0.8, 0.80001, 1.0])


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    comparisons = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"])
    return st.one_of(
        st.tuples(comparisons, amount_values).map(lambda t: {"amount": {t[0]: t[1]}}),
        st.tuples(comparisons, int_values).map(lambda t: {"payer.age": {t[0]: t[1]}}),
        st.tuples(comparisons, int_values).map(lambda t: {"outbound_count_1h": {t[0]: t[1] % 5}}),
        st.tuples(comparisons, score_values).map(lambda t: {"intel.payee_mule_score": {t[0]: t[1]}}),
        st.tuples(st.sampled_from(["eq", "ne"]), st.booleans()).map(
            lambda t: {"session.on_call": {t[0]: t[1]}}
        ),
        st.tuples(st.sampled_from(["eq", "ne"]), st.booleans()).map(lambda t: {"is_new_payee": {t[0]: t[1]}}),
        st.sampled_from(list(ENUMS))
        .flatmap(
            lambda f: st.tuples(
                st.just(f),
                st.sampled_from(["eq", "ne", "in", "not_in"]),
                st.lists(st.sampled_from(ENUMS[f]), min_size=1),
            )
        )
        .map(lambda t: {t[0]: {t[1]: t[2] if t[1] in ("in", "not_in") else t[2][0]}}),
        st.tuples(st.sampled_from(["eq", "ne"]), st.sampled_from(TEXTS)).map(
            lambda t: {"memo": {t[0]: t[1]}}
        ),
        st.lists(st.sampled_from(TEXTS), min_size=1, max_size=12).flatmap(
            lambda values: st.sampled_from(["in", "not_in"]).map(lambda op: {"memo": {op: values}})
        ),
        st.sampled_from(list(KEYWORD_SETS)).map(lambda k: {"memo": {"contains_any": k}}),
        st.sampled_from(["(?i)usdt", "账户$", "^x+$"]).map(lambda r: {"memo": {"matches": r}}),
        st.just({"payee.account": {"in_list": "fraud_accounts"}}),
        st.sampled_from(["elderly", "minor"]).map(lambda v: {"payer.vulnerability": {"eq": v}}),
        st.sampled_from(["eq", "in", "not_in"]).map(
            lambda op: {"payer.vulnerability": {op: "elderly" if op == "eq" else ["elderly", "minor"]}}
        ),
        st.tuples(
            st.sampled_from(
                ["memo", "payer.age", "intel.payee_mule_score", "attributes.mcc", "session.on_call"]
            ),
            st.booleans(),
        ).map(lambda t: {t[0]: {"exists": t[1]}}),
        st.tuples(
            st.sampled_from(["eq", "ne", "in", "not_in"]), st.lists(st.sampled_from(MCCS), min_size=1)
        ).map(lambda t: {"attributes.mcc": {t[0]: t[1] if t[0] in ("in", "not_in") else t[1][0]}}),
    )


def conditions(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return _leaf()
    child = conditions(depth - 1)
    return st.one_of(
        _leaf(),
        st.lists(child, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(child, min_size=1, max_size=3).map(lambda items: {"any": items}),
        child.map(lambda item: {"not": item}),
    )


ACTIONS = ["allow", "review", "hold", "interrupt"]


@st.composite
def _effect(draw: st.DrawFn, scoring: bool) -> dict[str, Any]:
    """A rule's action, or (in a rule set that scores) its score, or both."""
    if not scoring:
        return {"action": draw(st.sampled_from(ACTIONS))}
    kind = draw(st.sampled_from(["action", "score", "score", "both"]))
    effect: dict[str, Any] = {}
    if kind in ("action", "both"):
        effect["action"] = draw(st.sampled_from(ACTIONS))
    if kind in ("score", "both"):
        effect["score"] = draw(st.integers(-60, 90))
    return effect


@st.composite
def scoring_thresholds(draw: st.DrawFn) -> dict[str, int]:
    """``scoring:`` thresholds: some of review < hold < interrupt."""
    chosen = draw(st.lists(st.sampled_from(["review", "hold", "interrupt"]), min_size=1, unique=True))
    values = sorted(
        draw(st.lists(st.integers(1, 150), min_size=len(chosen), max_size=len(chosen), unique=True))
    )
    order = [name for name in ("review", "hold", "interrupt") if name in chosen]
    return dict(zip(order, values, strict=True))


@st.composite
def rule_set_texts(draw: st.DrawFn, min_rules: int = 1, max_rules: int = 8, scoring: bool = False) -> str:
    """A rule set as JSON text (JSON is YAML), over the pools above; with ``scoring``, one whose header
    has thresholds and whose rules have actions, scores or both."""
    count = draw(st.integers(min_rules, max_rules))
    rules = [
        {
            "id": f"r{i}",
            "description": "generated",
            "when": draw(conditions()),
            **draw(_effect(scoring)),
            "reason": f"reason {i}",
            "mode": draw(st.sampled_from(["enforce", "enforce", "shadow"])),
        }
        for i in range(count)
    ]
    header: dict[str, Any] = {"id": "generated", "version": "1", "currency": "CNY"}
    if scoring:
        header["scoring"] = draw(scoring_thresholds())
    document = {
        "ruleset": header,
        "attributes": {"mcc": "string"},
        "keyword_sets": KEYWORD_SETS,
        "lists": LISTS,
        "rules": rules,
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


@st.composite
def pool_events(draw: st.DrawFn, index: int = 0) -> dict[str, Any]:
    """A valid event whose values come from the pools the generated rules test."""
    event: dict[str, Any] = {
        "id": f"e{index}-{draw(st.integers(0, 10**9))}",
        "timestamp": f"2026-03-02T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00+08:00",
        "amount": draw(amount_values),
        "currency": draw(st.sampled_from(["CNY", "CNY", "CNY", "USD"])),
        "payer": {"account": draw(st.sampled_from(["P-1", "P-2"]))},
        "payee": {"account": draw(st.sampled_from(ACCOUNTS))},
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "memo": st.sampled_from([t for t in TEXTS if t]),
        "channel": st.sampled_from(ENUMS["channel"]),
        "cop_result": st.sampled_from(ENUMS["cop_result"]),
        "intel": score_values.map(lambda s: {"payee_mule_score": s}),
        "session": st.booleans().map(lambda b: {"on_call": b}),
        "attributes": st.sampled_from(MCCS).map(lambda m: {"mcc": m}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            event[key] = draw(strategy)
    if draw(st.booleans()):
        event["payer"]["age"] = draw(int_values)
    if draw(st.booleans()):
        event["payer"]["vulnerability"] = draw(
            st.lists(st.sampled_from(["elderly", "minor", "bereaved"]), max_size=2)
        )
    if draw(st.booleans()):
        event["payee"]["type"] = draw(st.sampled_from(ENUMS["payee.type"]))
    return event


event_streams = st.integers(1, 12).flatmap(lambda n: st.tuples(*(pool_events(i) for i in range(n))))


def load_generated(path: Path, text: str) -> RuleSet:
    """Load a generated rule set; one too complex for the engine is skipped, any other problem fails."""
    path.write_text(text, encoding="utf-8")
    problems: tuple[str, ...] = ()
    ruleset = None
    try:
        ruleset = load_rule_set(path)
    except RuleFileError as exc:
        problems = tuple(p.code for p in exc.problems)
    assert set(problems) <= {"too_complex"}, problems
    assume(ruleset is not None)
    assert ruleset is not None
    return ruleset
