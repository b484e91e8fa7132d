"""Shared fixtures: event and rule-file builders, and the hypothesis profiles."""

from __future__ import annotations

import copy
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import payguard
from payguard._build import compiled_modules, stale_modules

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent


# `make test` runs the suite on each shipped build and names the one each run must import (unset: either).
BUILDS = ("compiled", "uncompiled")


def pytest_report_header() -> str:
    compiled = compiled_modules()
    done = sum(compiled.values())
    build = "compiled" if done == len(compiled) else "uncompiled" if done == 0 else "partly compiled"
    return (
        f"payguard: {build} build, {done} of {len(compiled)} per-event modules compiled by mypyc "
        f"(imported from {Path(payguard.__file__).parent})"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not reporter.showheader:  # -q shows no header: say which build runs
        reporter.write_line(pytest_report_header())
    expected = os.environ.get("PAYGUARD_BUILD")
    if expected is not None and expected not in BUILDS:
        pytest.exit(f"PAYGUARD_BUILD={expected!r}: expected one of {', '.join(BUILDS)}", returncode=3)
    if expected is not None:  # a run meant for one build must not pass on the other
        wrong = [name for name, ok in compiled_modules().items() if ok != (expected == "compiled")]
        if wrong:
            pytest.exit(
                f"PAYGUARD_BUILD={expected} but these modules import "
                f"{'uncompiled' if expected == 'compiled' else 'compiled'} from "
                f"{Path(payguard.__file__).parent}: {', '.join(wrong)}",
                returncode=3,
            )
    stale = stale_modules()
    if stale:  # the tests would exercise the compiled code of an older source
        pytest.exit(
            f"compiled modules older than their source: {', '.join(stale)}; "
            "run `make test` (or `pip install -e .`) to rebuild them",
            returncode=3,
        )


SHARED_DATA = ROOT.parent / "shared" / "data"

BASE_EVENT: dict[str, Any] = {
    "id": "evt-1",
    "type": "transfer_out",
    "timestamp": "2026-03-02T10:00:00+08:00",
    "amount": "100.00",
    "currency": "CNY",
    "channel": "mobile_app",
    "payer": {"account": "6222000011112222", "name": "Wang Fang", "age": 40},
    "payee": {"account": "6222000033334444", "name": "Li Lei", "type": "personal"},
}


def make_event(**overrides: Any) -> dict[str, Any]:
    """``BASE_EVENT`` with ``overrides``; a dict value is merged into the nested object."""
    event = copy.deepcopy(BASE_EVENT)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(event.get(key), dict):
            event[key] = {**event[key], **value}
        elif value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    return make_event


HEADER = """\
ruleset:
  id: test
  version: "1"
  timezone: Asia/Shanghai
  currency: CNY
"""


def rules_text(body: str, header: str = HEADER) -> str:
    return header + textwrap.dedent(body)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """Write a rule file (the standard header is prepended unless ``header`` is given)."""

    def write(body: str, name: str = "rules.yaml", header: str = HEADER) -> Path:
        path = tmp_path / name
        path.write_text(rules_text(body, header), encoding="utf-8")
        return path

    return write
