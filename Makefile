# ChainWatch: `make run` runs the whole system with simulated clinics, `make test` runs the tests.
# Both set up what is missing first: a virtual environment in .venv and Debian's mosquitto and influxdb.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: setup run test unit bench lint clean

setup: $(STAMP) $(NODE_STAMP)
	@$(BIN)/chainwatch services install

# MicroPython (WebAssembly, pinned in package-lock.json) that runs the gateway firmware's tests
$(NODE_STAMP): package-lock.json
	@if command -v npm >/dev/null; then \
		echo "[setup] installing MicroPython for the firmware tests (npm ci)"; \
		npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "[setup] npm not found: the firmware tests fail until node and npm are installed"; fi

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
