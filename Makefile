# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo test lint docs install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The trainer's install: PyTorch and everything training needs (the `train` extra).
# A serving host installs `.[runtime]` instead (no PyTorch; docs/guide/deploying.md).
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[train]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/transduce demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check transduce tests benchmarks deploy
	$(BIN)/ruff format --check transduce tests benchmarks deploy

# The documentation site; --strict fails on any warning (a broken link, a missing page, a
# docstring that does not render). Output in site/ (ignored by git).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Every test, the `slow` ones included (tests/test_runtime_install.py builds a torch-free
# venv, ~1-2 min); locally: .venv/bin/python -m pytest -m 'not slow' to leave them out.
test: lint docs
	$(BIN)/python -m pytest -q -n 2 --durations=10

clean:
	rm -rf $(VENV) build site *.egg-info
