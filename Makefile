# Every target works from a fresh clone: `install` is a prerequisite where needed and is
# idempotent (it reinstalls only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m loader demo run

test: install
	$(BIN)/python -m pytest -q

# The in-process tests only: no subprocess, no browser, no PgBouncer, nothing marked slow.
test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e and not browser and not slow"

lint: install
	$(BIN)/ruff check loader tests benchmarks
	$(BIN)/ruff format --check loader tests benchmarks

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	-$(BIN)/python -m loader db stop 2>/dev/null
	rm -rf $(VENV) .loader .pytest_cache .ruff_cache *.egg-info
