# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/transduce demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check transduce tests benchmarks
	$(BIN)/ruff format --check transduce tests benchmarks

test: lint
	$(BIN)/python -m pytest -q -n 2 --durations=10

clean:
	rm -rf $(VENV) build *.egg-info
