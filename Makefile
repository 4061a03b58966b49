# Two entry points: `make demo` runs the whole product on a simulated company,
# `make test` runs the test suite. Both bootstrap their own virtual environment.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= demo
DEMO_ACCOUNTS ?= 1500
DEMO_SEED ?= 7
DEMO_EXPERIMENT ?= experiments/quarterly.yaml
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
SERVE ?= 1
# One workspace for every demo stage (training writes it; forecast, score, drift, the API
# keys and serve read it), exactly as a user's own folder would be.
DEMO_ENV = NRR_WORKDIR=$(abspath $(DEMO))/mlops
PYTEST_ARGS ?=

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# The whole product on a simulated company: data -> validation -> snapshots -> models in
# MLflow -> forecast report -> API. Every stage reads the same MLflow store, so the API
# serves exactly the champion the training step promoted. SERVE=0 stops before the server.
demo: $(STAMP)
	$(BIN)/nrr simulate --out $(DEMO)/data --accounts $(DEMO_ACCOUNTS) --seed $(DEMO_SEED)
	$(BIN)/nrr validate --data $(DEMO)/data
	$(BIN)/nrr snapshots --data $(DEMO)/data --out $(DEMO)/snapshots.parquet
	$(DEMO_ENV) $(BIN)/nrr train --data $(DEMO)/data --snapshots $(DEMO)/snapshots.parquet --experiment $(DEMO_EXPERIMENT) --oracle $(DEMO)/data/oracle.parquet
	$(DEMO_ENV) $(BIN)/nrr backtest-forecast --data $(DEMO)/data --snapshots $(DEMO)/snapshots.parquet --out $(DEMO)/forecast_backtest.csv
	$(DEMO_ENV) $(BIN)/nrr forecast --data $(DEMO)/data --snapshots $(DEMO)/snapshots.parquet --backtest $(DEMO)/forecast_backtest.csv --out $(DEMO)/report
	$(DEMO_ENV) $(BIN)/nrr score --data $(DEMO)/data --out $(DEMO)/scores.csv
	$(DEMO_ENV) $(BIN)/nrr drift --snapshots $(DEMO)/snapshots.parquet --out $(DEMO)/drift.json
	@rm -f $(DEMO)/mlops/api_keys.json
	@$(DEMO_ENV) $(BIN)/nrr apikey create --role admin --note "make demo" | tail -n 1 > $(DEMO)/demo_api_key.txt
	@echo ""
	@echo "Demo outputs are in $(abspath $(DEMO)):"
	@echo "  data, snapshots   $(abspath $(DEMO))/data, $(abspath $(DEMO))/snapshots.parquet"
	@echo "  workspace         $(abspath $(DEMO))/mlops (MLflow store, Optuna study, API keys)"
	@echo "  MLflow runs       $(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO))/mlops/mlflow.db"
	@echo "  account scores    $(abspath $(DEMO))/scores.csv"
	@echo "  forecast report   $(abspath $(DEMO))/report/report.html"
	@echo "  demo API key      $(abspath $(DEMO))/demo_api_key.txt"
	@if [ "$(SERVE)" = "1" ]; then \
	  echo ""; \
	  echo "API: http://$(DEMO_HOST):$(DEMO_PORT)  (docs http://$(DEMO_HOST):$(DEMO_PORT)/docs, report http://$(DEMO_HOST):$(DEMO_PORT)/dashboard)"; \
	  echo "Try: curl -H 'X-API-Key: '$$(cat $(DEMO)/demo_api_key.txt) 'http://$(DEMO_HOST):$(DEMO_PORT)/v1/accounts?sort=churn_probability&page_size=5'"; \
	  echo "Stop with Ctrl-C."; \
	  $(DEMO_ENV) NRR_SNAPSHOTS_PATH=$(abspath $(DEMO))/snapshots.parquet \
	    NRR_REPORT_DIR=$(abspath $(DEMO))/report NRR_DASHBOARD_PUBLIC=true $(BIN)/nrr serve --host $(DEMO_HOST) --port $(DEMO_PORT); \
	fi

test: $(STAMP)
	rm -rf notebooks/.work && $(BIN)/python -m pytest -n 2 --nbmake $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check features models training serving nrr tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
