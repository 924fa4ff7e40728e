# The README's commands. Each creates or refreshes the virtual environment first.
#   make demo    whole DAG at demo scale, locally on CPU, on data it generates; then the report
#   make test    the test suite (what .ci/run calls)
#   make bench   every benchmark, side-by-side ratios in one table
#   make report  report.html from the last run
#   make lint    snakemake --lint

SHELL := /bin/bash
VENV ?= .venv
# Python 3.13: pyenv's 3.13.0 where pyenv exists (our machines), else python3.13 on PATH.
PYTHON ?= $(shell if command -v pyenv >/dev/null 2>&1 && [ -x "$$(pyenv root)/versions/3.13.0/bin/python3" ]; \
	then echo "$$(pyenv root)/versions/3.13.0/bin/python3"; else command -v python3.13 || echo python3; fi)
STAMP := $(VENV)/.swag-installed
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
PYTEST_ARGS ?=

.PHONY: env demo test test-fast bench report lint clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(RUN) snakemake --profile profiles/local all
	$(RUN) snakemake --profile profiles/local all --report report.html

test: $(STAMP)
	$(RUN) python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(RUN) python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

bench: $(STAMP)
	$(RUN) python benchmarks/run.py

report: $(STAMP)
	$(RUN) snakemake --profile profiles/local all --report report.html

lint: $(STAMP)
	$(RUN) snakemake --lint

clean:
	rm -rf results logs .snakemake report.html
