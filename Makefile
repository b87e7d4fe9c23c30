# Everything a newcomer or CI needs, from a machine with only Python: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
N ?= 50
FLEET_DIR ?= /tmp/sartoris-fleet
FLEET_NET ?= 127.10

.PHONY: help deps system-deps test unit integration demo fleet fleet-stop lint clean

help:
	@echo "make demo        deploy a sample app to a local fleet of $(N) real sshd hosts, then show status"
	@echo "make test        unit + integration tests (starts and stops its own fleet)"
	@echo "make fleet N=..  start a local fleet in $(FLEET_DIR); make fleet-stop stops it"
	@echo "make lint        ruff + mypy --strict"

system-deps:
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

clean:
	rm -rf $(VENV) build dist *.egg-info
