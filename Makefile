# The two commands of the README:  make demo  (the workflow on the synthetic default)
#                                  make test  (the test suite)
# Both create the virtual environment .venv on first use: PyTorch 2.13.0 (CPU wheel) first
# and pinned, then this package with its pinned dependencies. The demo installs what the
# workflow needs; the tests add the `dev` (test references) and `slurm` (cluster) extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
CORES ?= all
# GPU rules declare gpu=1: with N GPUs at most N of them run at once (--resources gpu=N). A machine
# without a GPU runs them on the CPU, side by side like any other job (no limit to give).
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
GPU_LIMIT := $(if $(filter-out 0,$(strip $(GPUS))),--resources gpu=$(strip $(GPUS)),)
# Snakemake 9 re-plans once per rate-limit timespan for every job finished so far (the re-plans
# pile up: about half a core by the end of the demo with the default 100/1s); a minute keeps that small.
# (The workflow also keeps only one such timer pending, as a daemon: mskseg.workflow.snakemake_compat.)
RATE := --max-jobs-per-timespan 1000/1m

.PHONY: setup demo test lint docs-images clean

setup: $(DEVSTAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[torch]' torch==2.13.0
	touch $(STAMP)

$(DEVSTAMP): $(STAMP)
	$(PIP) -e '.[dev,torch,slurm]' torch==2.13.0
	touch $(DEVSTAMP)

# Through mskseg.workflow.resume: after a crash the same command removes a stale lock and goes on
# (--rerun-incomplete; trainings resume after their last finished epoch).
demo: $(STAMP)
	$(BIN)/python -m mskseg.workflow.resume --cores $(CORES) $(RATE) $(GPU_LIMIT)
	$(BIN)/snakemake --report results/report.html
	@echo "Demo done: open results/report.html; every file is under results/ (docs/outputs.md)."

test: $(DEVSTAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

lint: $(DEVSTAMP)
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src tests workflow_scripts benchmarks tools
	$(BIN)/snakefmt --check Snakefile rules

# the README's pictures from a finished demo run (needs Graphviz: apt-get install graphviz)
docs-images: $(STAMP)
	$(BIN)/python tools/docs_images.py --run . --out docs/images

clean:
	rm -rf results logs .snakemake
