# Everything runs inside .venv, created on first use: `make demo` and `make test` work on a fresh machine.
.PHONY: install demo test quality style clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

install: $(INSTALLED)

# torch first, pinned: on CPU machines `torch==2.13.0` is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

test: install
	$(VENV)/bin/pytest tests

quality: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

style: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs/demo data/synthetic
