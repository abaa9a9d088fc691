# `make repro` sets up .venv and runs the whole pipeline; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

repro: $(STAMP)
	PATH="$(BIN):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(BIN):$$PATH" python -m pytest

bench: $(STAMP)
	PATH="$(BIN):$$PATH" python bench/train_speed.py
