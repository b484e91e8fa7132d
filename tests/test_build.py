"""The build: which modules mypyc compiles, named once in pyproject.toml and once in payguard._build."""

from __future__ import annotations

import tomllib

from payguard._build import COMPILED, compiled_modules

from .conftest import ROOT


def test_the_modules_mypyc_compiles_are_those_payguard_checks() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]
    assert sorted(include) == sorted(f"src/payguard/{name.replace('.', '/')}.py" for name in COMPILED)


def test_a_module_is_reported_compiled_exactly_when_it_is_an_extension_module() -> None:
    # a compiled module's functions are builtins, not Python functions with bytecode
    from payguard._common import money

    assert compiled_modules()["_common.money"] == (not hasattr(money.to_minor_units, "__code__"))
    assert set(compiled_modules()) == set(COMPILED)
