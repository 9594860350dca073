# The two commands of the README: `make demo` and `make test`. Both create the virtual
# environment and install everything on first use, so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnkit-installed
# Tests and demos read datasets from here unless RNNKIT_DATA is already set.
RNNKIT_DATA ?= $(abspath ../shared/data)
export RNNKIT_DATA
# Quieter TensorFlow start-up; deterministic ops where TensorFlow offers them.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_DETERMINISTIC_OPS ?= 1
PYTEST_WORKERS ?= 2

.PHONY: demo test lint format models bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnkit demo --out demo_output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 tests

# Retrains the shipped models in models/ with fixed seeds (long: see docs/MODELS.md).
models: $(STAMP)
	$(BIN)/python benchmarks/make_models.py

# Runs every benchmark and rewrites benchmarks/RESULTS.md (long).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf demo_output .pytest_cache
