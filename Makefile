# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo test lint docs install install-dev clean

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

# The documentation site; --strict fails on any warning (a broken link, a missing page, a
# docstring that does not render). Output in site/ (ignored by git).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint docs
	$(BIN)/python -m pytest -q -n 2 --durations=10

clean:
	rm -rf $(VENV) build site *.egg-info
