# semgkit: `make book` runs the executable book, `make html` renders the last book run
# (whatever its profile) as a static site without executing anything, `make lab` opens
# editable copies of the chapters in JupyterLab, `make test` runs the test suite.
# All create ./.venv first (see `setup`); a second `make setup` is a no-op.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# This machine keeps a CPU build of torch 2.13.0 on disk; elsewhere the same pin gives the
# normal wheel. Override with e.g. `make setup TORCH="torch==2.5.1"`.
TORCH  ?= torch==2.13.0
PROFILE ?= laptop
DATA   ?=
BUILD  ?= build
# CPU kernels for `make test-outcome` (torch's ATEN_CPU_CAPABILITY: default, avx2, avx512)
CAPABILITY ?= default
LAB_ARGS ?=

.PHONY: setup book html lab test test-outcome lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

book: setup
	$(BIN)/python tools/book.py run --profile $(PROFILE) --build $(BUILD) $(if $(DATA),--data $(DATA))

html: setup
	$(BIN)/python tools/book.py html --build $(BUILD)

# Extra JupyterLab options, e.g. LAB_ARGS="--no-browser --port 8890" (or --allow-root)
lab: setup
	$(BIN)/python tools/book.py lab --build $(BUILD) $(LAB_ARGS)

test: setup
	$(BIN)/python -m pytest -q

# The tests that assert what training produces, rerun on other CPU kernels: they must hold
# whatever kernels the CPU selects (see docs/REPRODUCIBILITY.md).
test-outcome: setup
	ATEN_CPU_CAPABILITY=$(CAPABILITY) $(BIN)/python -m pytest -q -m outcome

lint: setup
	$(BIN)/ruff check semgkit data_download tests tools
	$(BIN)/ruff format --check semgkit data_download tests tools

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
