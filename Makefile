# Two entry points: `make demo` runs the main job, `make test` runs the whole suite.
# Each creates the virtual environment it needs; torch is pinned first so no CUDA wheels are pulled.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check

.PHONY: demo test venv check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/seqgen demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

check: $(VENV)/.installed
	$(BIN)/seqgen check recipes/

clean:
	rm -rf $(VENV) runs .pytest_cache
