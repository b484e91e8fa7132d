# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The uncompiled build (both are shipped): installed, not editable, so no compiled module beside the source
# is ever imported; reinstalled whenever the source changes.
PURE ?= $(VENV)-pure
PURE_STAMP := $(PURE)/.installed
SOURCES := $(shell find src -name '*.py' -o -name py.typed)

.PHONY: demo test test-compiled test-uncompiled lint typecheck bench fuzz soak clean compiled

# Installing builds the package, which compiles the per-event modules with mypyc (about 30 s).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The compiled modules sit beside their source (editable install): rebuild them when the source changed,
# or when another Python's build removed this one's.
compiled: $(STAMP)
	@$(BIN)/python -m payguard._build || $(BIN)/python -m pip install --quiet -e '.[dev]'

demo: compiled
	$(BIN)/payguard replay examples/transactions.jsonl --history examples/history.jsonl.gz --rules rules/ \
		--out out/demo-decisions.jsonl --summary-json out/demo-summary.json --audit out/demo-audit.jsonl

lint: $(STAMP)
	$(BIN)/ruff check src tests examples rules benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

$(PURE_STAMP): pyproject.toml $(SOURCES)
	test -x $(PURE)/bin/python || $(PYTHON) -m venv $(PURE)
	$(PURE)/bin/python -m pip install --quiet --upgrade pip
	HATCH_BUILD_NO_HOOKS=true $(PURE)/bin/python -m pip install --quiet '.[dev]'
	touch $(PURE_STAMP)

# The whole suite on the compiled build (editable), then on the uncompiled build with branch coverage all but
# the tests marked slow (servers, clusters, crashes, large properties): the two builds run the same source, and
# those tests' time goes to subprocesses and generated inputs, not to what the builds do differently.
test: test-compiled test-uncompiled

# PYTEST_ARGS narrows a run, e.g. PYTEST_ARGS='-m "not slow"' (CI's second Python) or a path.
PYTEST_ARGS ?=
test-compiled: lint typecheck compiled
	PAYGUARD_BUILD=compiled $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Run from the checkout, where `python -m` finds no payguard (it is under src/): the installed one is tested.
# coverage starts before pytest, which imports payguard early through the rule-test plugin; its data files
# (one per process) stay in the venv.
test-uncompiled: export COVERAGE_FILE = $(abspath $(PURE))/.coverage
test-uncompiled: $(PURE_STAMP)
	rm -f $(PURE)/.coverage $(PURE)/.coverage.*
	PAYGUARD_BUILD=uncompiled $(PURE)/bin/python -m coverage run -m pytest -q -p no:cacheprovider -m 'not slow'
	$(PURE)/bin/python -m coverage combine -q
	$(PURE)/bin/python -m coverage report

bench: compiled
	$(BIN)/python benchmarks/bench.py

fuzz: compiled
	PAYGUARD_FUZZ=1 HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_hardening.py tests/engine/test_engines.py tests/test_guard.py tests/audit/test_audit.py tests/audit/test_seal.py

soak: compiled
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) $(PURE) .pytest_cache .mypy_cache .ruff_cache .hypothesis out
	rm -f src/*.so src/payguard/*.so src/payguard/*/*.so
