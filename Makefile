# semgkit: `make book` runs the executable book, `make html` renders the last book run
# (whatever its profile) as a static site without executing anything, `make lab` opens
# editable copies of the chapters in JupyterLab, `make test` runs the test suite.
# All create ./.venv first (see `setup`; a second `make setup` is a no-op), or with
# ENV=current install into the interpreter already in use (see ENV below).

PYTHON ?= python3
VENV   := .venv
# ENV=current: use the interpreter `$(PYTHON)` names instead of creating ./.venv (Colab, a
# conda env with its own CUDA torch). `setup` then runs `pip install -e '.[test]'` in it,
# which keeps the torch already installed (pyproject asks for torch>=2.3 and no build),
# e.g. `make book ENV=current PROFILE=single-user DATA=data/single_user`.
ENV    ?= venv
ifeq ($(ENV),current)
PY     := $(PYTHON)
STAMP  := setup-current
else ifeq ($(ENV),venv)
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
else
$(error ENV=$(ENV): must be venv (default, ./.venv) or current (the interpreter PYTHON names))
endif
# This machine keeps a CPU build of torch 2.13.0 on disk; elsewhere the same pin gives the
# normal wheel. Override with e.g. `make setup TORCH="torch==2.5.1"`.
TORCH  ?= torch==2.13.0
PROFILE ?= laptop
DATA   ?=
# The corpus split of a real-data profile, e.g. `make book PROFILE=single-user SPLIT=user3`
SPLIT  ?=
BUILD  ?= build
# CPU kernels for `make test-outcome` (torch's ATEN_CPU_CAPABILITY: default, avx2, avx512)
CAPABILITY ?= default
LAB_ARGS ?=

.PHONY: setup setup-current book html lab test test-outcome lint clean

setup: $(STAMP)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Into the current environment: no venv, no torch pin (its own torch stays), every time
# (pip finds the installed requirements satisfied and only links the project).
setup-current:
	$(PY) -m pip install --quiet -e '.[test]'

book: setup
	$(PY) tools/book.py run --profile $(PROFILE) --build $(BUILD) $(if $(DATA),--data $(DATA)) $(if $(SPLIT),--split $(SPLIT))

html: setup
	$(PY) tools/book.py html --build $(BUILD)

# Extra JupyterLab options, e.g. LAB_ARGS="--no-browser --port 8890" (or --allow-root)
lab: setup
	$(PY) tools/book.py lab --build $(BUILD) $(LAB_ARGS)

# --durations: the slowest tests named at the end of every run (docs/PERFORMANCE.md)
test: setup
	$(PY) -m pytest -q --durations=15

# The tests that assert what training produces, rerun on other CPU kernels: they must hold
# whatever kernels the CPU selects (see docs/REPRODUCIBILITY.md).
test-outcome: setup
	ATEN_CPU_CAPABILITY=$(CAPABILITY) $(PY) -m pytest -q -m outcome

lint: setup
	$(PY) -m ruff check semgkit data_download tests tools
	$(PY) -m ruff format --check semgkit data_download tests tools

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
