# Two commands for a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch is pinned to the local CPU build first: any looser requirement pulls GBs of CUDA wheels.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test,optax]'
	touch $(STAMP)

install: $(STAMP)

# The seeds' MNIST experiment: 9 optimizers x 3 seeds x 5 epochs on the embedded sample.
demo: $(STAMP)
	$(BIN)/optimlab compare
	@echo "open runs/mnist-mlp/report.html (summary: runs/mnist-mlp/summary.csv)"

test: $(STAMP)
	KERAS_BACKEND=torch JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
