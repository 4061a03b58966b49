# Two entry points: `make demo` runs the whole product on a simulated company,
# `make test` runs the test suite. Both bootstrap their own virtual environment.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= demo
DEMO_ACCOUNTS ?= 1500
PYTEST_ARGS ?=

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nrr simulate --out $(DEMO)/data --accounts $(DEMO_ACCOUNTS)
	$(BIN)/nrr validate --data $(DEMO)/data
	@echo "Demo outputs are in $(abspath $(DEMO))"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check features models training serving nrr tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
