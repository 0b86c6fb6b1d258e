# The two commands of the README:  make demo  (the workflow on the synthetic default)
#                                  make test  (the test suite)
# Both create the virtual environment .venv on first use: PyTorch 2.13.0 (CPU wheel) first
# and pinned, then this package with its pinned dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: setup demo test lint dryrun clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,torch]' torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1
	@echo "Demo done: see results/ (README, 'What the demo produces')."

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake
