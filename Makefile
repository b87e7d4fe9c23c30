# Everything a newcomer or CI needs, from a machine with only Python: `make demo`, `make test`.
SHELL := /bin/bash
# The first Python 3.11+ on PATH: where python3 is older (Ubuntu 22.04's is 3.10), a python3.1x beside it.
ifndef PYTHON
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV ?= .venv
BIN := $(VENV)/bin
N ?= 50
FLEET_DIR ?= /tmp/sartoris-fleet
FLEET_NET ?= 127.10

.PHONY: help deps system-deps test unit integration demo fleet fleet-stop lint bench load zipapp clean

help:
	@echo "make demo        deploy a sample app to a local fleet of $(N) real sshd hosts, then show status"
	@echo "make test        unit + integration tests (starts and stops its own fleet)"
	@echo "make fleet N=..  start a local fleet in $(FLEET_DIR); make fleet-stop stops it"
	@echo "make lint        ruff + mypy --strict"
	@echo "make bench       Sartoris against its peers on the local fleet; writes BENCHMARKS.md"
	@echo "make load        one sync against 500 hosts, 5% faulty: exactly those depooled, peak memory"
	@echo "make zipapp      dist/sartoris.pyz: one file holding Sartoris and its dependencies"

system-deps:
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || { echo "make: Sartoris" \
		"needs Python 3.11 or newer: found none among python3, python3.11 to 3.13 on PATH (or name one:" \
		"make PYTHON=/path/to/python3.x)" >&2; exit 2; }
	@PYTHON=$(PYTHON) scripts/install-system-deps.sh

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

deps: system-deps $(BIN)/.installed

test: deps
	$(BIN)/python -m pytest

unit: deps
	$(BIN)/python -m pytest tests/unit

integration: deps
	$(BIN)/python -m pytest tests/integration

demo: deps
	$(BIN)/python scripts/demo.py --hosts $(N)

fleet: deps
	$(BIN)/python scripts/fleet.py start --dir $(FLEET_DIR) --count $(N) --net $(FLEET_NET)

fleet-stop:
	$(PYTHON) scripts/fleet.py stop --dir $(FLEET_DIR)

lint: deps
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[lint]'
	$(BIN)/ruff check sartoris tests scripts
	$(BIN)/mypy sartoris

# The benchmark's peers (parallel-ssh, Ansible) live in their own venv: never dependencies of Sartoris.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml scripts/bench-requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -e . -r scripts/bench-requirements.txt
	@touch $@

bench: system-deps $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python scripts/bench.py $(BENCH_ARGS)

load: deps
	$(BIN)/python scripts/load_run.py $(LOAD_ARGS)

zipapp: deps
	PYTHON=$(PYTHON) scripts/build-zipapp.sh

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist *.egg-info
