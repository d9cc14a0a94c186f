# The two commands of the README: `make demo` and `make test`.
# Both create .venv when it is missing: torch 2.13.0 (CPU build) first, then ocf with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ocf-installed
TORCH ?= torch==2.13.0

.PHONY: venv test test-all demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m "slow or not slow"

demo: venv
	$(BIN)/python -m ocf.demo

bench: venv
	$(BIN)/python -m benchmarks.fidelity configs/slot_attention/shapes_32.yaml --steps 1000 --seeds 0 1 --name slot_attention-shapes_32
	$(BIN)/python -m benchmarks.report

clean:
	rm -rf runs data .pytest_cache
