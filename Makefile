# diffres-bench — every target creates .venv on first use; no separate set-up step.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUITE  ?= quick
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: test bench reproduce replicate recheck report ablate-rate ablate-hop lint clean-results

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .

bench: $(VENV)/.installed
	$(PY) -m benchmark.benches.bench_frontends
	$(PY) -m benchmark.benches.bench_features
	$(PY) -m benchmark.benches.bench_loader
	$(PY) -m benchmark.benches.bench_filterbanks --threads 1
	$(PY) -m benchmark.benches.bench_training
	$(PY) -m benchmark.benches.bench_cli

reproduce: $(VENV)/.installed
	$(VENV)/bin/diffres-bench reproduce --suite $(SUITE)
	$(PY) -m benchmark.benches.bench_suite_time --suite $(SUITE)

# quick on a second draw of clips and seeds, its decisions beside quick's (docs/reproducibility.md)
replicate: $(VENV)/.installed
	$(VENV)/bin/diffres-bench reproduce --suite quick-replication
	$(PY) -m benchmark.benches.bench_suite_time --suite quick-replication
	$(VENV)/bin/diffres-bench compare-claims results/quick/claims.csv results/quick-replication/claims.csv \
		--out results/quick-replication/vs_quick.csv
	$(VENV)/bin/diffres-bench compare-claims results/quick/controls.csv results/quick-replication/controls.csv \
		--out results/quick-replication/vs_quick_controls.csv
	$(VENV)/bin/diffres-bench compare-draws quick quick-replication --out results/quick-replication/aa_across_draws.csv

recheck: $(VENV)/.installed  # retrain one committed run per setting of $(SUITE): identical here?
	$(PY) -m benchmark.benches.recheck --suite $(SUITE)

report: $(VENV)/.installed
	$(VENV)/bin/diffres-bench report --suite $(SUITE)

ablate-rate: $(VENV)/.installed
	$(VENV)/bin/diffres-bench reproduce --suite ablate-rate

ablate-hop: $(VENV)/.installed
	$(VENV)/bin/diffres-bench reproduce --suite ablate-hop
