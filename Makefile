# The two commands a new user needs: `make demo` and `make test`.
# Each creates its own virtual environment (.venv) and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fiumatch-installed

.PHONY: demo test lint bench bench-long vectors clean

$(STAMP): pyproject.toml
	bash scripts/sysdeps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fiumatch demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks protocol
	$(BIN)/mypy

test: lint
	bash scripts/sysdeps.sh --browser
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-long: $(STAMP)
	$(BIN)/python -m benchmarks.run --long

vectors: $(STAMP)
	$(BIN)/python protocol/vectors/generate.py
	$(BIN)/python protocol/vectors/generate_http.py
	$(BIN)/python protocol/vectors/generate_normalise.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
