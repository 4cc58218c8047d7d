# ChainWatch: `make run` runs the whole system with simulated clinics, `make test` runs the tests.
# Both set up what is missing first: a virtual environment in .venv and Debian's mosquitto and influxdb.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test unit bench lint clean

setup: $(STAMP)
	@$(BIN)/chainwatch services install

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ChainWatch needs Python 3.11 or newer: set PYTHON=python3.11")'
	@echo "[setup] creating $(VENV) and installing ChainWatch with its pinned dependencies"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/chainwatch run

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: setup
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.alerting
	$(BIN)/python -m bench.notify
	$(BIN)/python -m bench.waste

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	-$(BIN)/chainwatch services down
	rm -rf $(VENV) .chainwatch *.egg-info
