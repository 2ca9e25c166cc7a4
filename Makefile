# The two commands a newcomer runs: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/outputs/dagster_home

.PHONY: demo test soak dev lint bench bench-large install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)  ## materialise the whole graph on the sample data, offline
	$(BIN)/python -m dsm_assets.demo

test: $(STAMP)  ## the whole test suite; pytest's "no tests collected" (exit 5) is a failure
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

soak: $(STAMP)  ## fault matrix, fuzz and chaos tests with many more trials; seeds in outputs/test-artifacts/
	DSM_FAULT_KILLS=$${DSM_FAULT_KILLS:-200} DSM_FUZZ_EXAMPLES=$${DSM_FUZZ_EXAMPLES:-2000} \
	DSM_CHAOS_TRIALS=$${DSM_CHAOS_TRIALS:-100} \
	$(BIN)/python -m pytest dsm_assets_tests/test_fault_matrix.py \
	  dsm_assets_tests/test_injected_faults.py dsm_assets_tests/test_concurrency.py dsm_assets_tests/test_fuzz.py \
	  dsm_assets_tests/test_chaos.py

# `dagster dev` warns that `dg dev` supersedes it; dg is a separate package this project does not need.
dev: $(STAMP)  ## the Dagster UI on http://127.0.0.1:3000, same instance as the demo; automation on
	$(BIN)/python -m dsm_assets.dagster_home >/dev/null
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)  ## benchmarks: one table of ratios, each measured in one run against a baseline on the same data
	$(BIN)/python -m bench

bench-large: $(STAMP)  ## the hop-by-hop lines on a generated 5 GB CSV (~20 min, ~25 GB of temp disk)
	$(BIN)/python -m bench --large

lint: $(STAMP)
	$(BIN)/ruff check .

clean:  ## remove run-time data and outputs (not the venv)
	rm -rf data outputs
