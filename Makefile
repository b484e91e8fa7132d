# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench fuzz soak clean compiled

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

test: lint typecheck compiled
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: compiled
	$(BIN)/python benchmarks/bench.py

fuzz: compiled
	PAYGUARD_FUZZ=1 HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_hardening.py tests/engine/test_engines.py tests/test_guard.py tests/audit/test_audit.py

soak: compiled
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
	rm -f src/*.so src/payguard/*.so src/payguard/*/*.so
