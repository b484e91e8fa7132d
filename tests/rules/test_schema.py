"""The JSON Schema of rule files: generated from the vocabulary, shipped, and true to the shipped rules."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from payguard._rules.model import rule_files
from payguard._rules.schema import render, rules_schema, shipped_schema

from ..conftest import ROOT

VALIDATOR = jsonschema.Draft202012Validator(rules_schema())


def problems(doc: Any) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in VALIDATOR.iter_errors(doc)]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert shipped_schema() == render(rules_schema()), (
        "regenerate it: payguard schema rules > src/payguard/rules.schema.json"
    )


def test_payguard_schema_rules_prints_it() -> None:
    command = [sys.executable, "-m", "payguard._cli", "schema", "rules"]
    printed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(printed) == rules_schema()


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(rules_schema())


@pytest.mark.parametrize("path", rule_files(ROOT / "rules"), ids=lambda p: p.name)
def test_every_shipped_rule_file_validates(path: Any) -> None:
    assert problems(YAML(typ="safe").load(path.read_text(encoding="utf-8"))) == []


RULE = {"id": "X1", "description": "d", "reason": "r", "action": "hold", "when": {"amount": {"gte": 100}}}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"when": {"amout": {"gte": 100}}}, "amout"),  # a misspelt field
        ({"when": {"is_new_payee": {"gt": 1}}}, "gt"),  # an operator the kind does not have
        ({"when": {"payer.age": {"gte": "old"}}}, "old"),  # an operand of the wrong type
        ({"when": {"payee.type": "persona"}}, "persona"),  # not one of the enum's values
        ({"action": "block"}, "block"),
        ({"reason": None}, "None"),
    ],
)
def test_a_rule_the_loader_refuses_is_refused_by_the_schema_too(change: dict[str, Any], where: str) -> None:
    found = problems({"rules": [{**RULE, **change}]})
    assert found
    assert any(where in problem for problem in found), found


def test_a_rule_with_neither_action_nor_score_and_an_unknown_section_are_refused() -> None:
    rule = {key: value for key, value in RULE.items() if key != "action"}
    assert problems({"rules": [rule]})
    assert problems({"rule": [RULE]})
    assert problems({"rules": [{**rule, "score": 20}]}) == []


def test_params_and_named_sets_are_accepted_where_the_language_takes_them() -> None:
    when = {
        "amount": {"gte": "$large_amount"},
        "memo": {"contains_any": ["authority_safe_account"]},
        "payee.account": {"in_list": "fraud_accounts"},
        "attributes.segment": "retail",
        "any": [{"payer.age": {"gte": 65}}, {"not": {"channel": ["branch_counter", "atm"]}}],
    }
    assert problems({"rules": [{**RULE, "when": when}]}) == []
