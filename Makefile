# mlbot — `make run` serves the bot, `make test` runs lint, types and the whole suite,
# `make unit` the unit tests alone (seconds: no lint, no types, no npm, no browser).
# Both bootstrap a virtual environment from the pinned lock file on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit lint typecheck pytest bench lock audit clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlbot needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-virtualenv -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Dev-only npm tools: the official Teams manifest JSON schemas, the Adaptive Cards
# renderer, Playwright and the Microsoft 365 Agents Playground.
NODE_STAMP := node_modules/.installed
# Card pictures and the end-to-end test drive Debian's Chromium headless; the fonts make
# the pictures look like Teams (a Segoe UI stand-in and colour emoji).
CHROMIUM ?= /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-open-sans fonts-noto-color-emoji

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium (Debian package chromium) or set CHROMIUM=/path/to/chromium"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) || { \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update && $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); }

run: $(STAMP)
	$(BIN)/mlbot serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	MLBOT_CHROMIUM=$(CHROMIUM) $(BIN)/pytest

test: lint typecheck pytest

# The inner loop: pure logic only, none of the tests marked `slow` (other processes, a browser).
unit: $(STAMP)
	$(BIN)/pytest -m "not slow" tests/unit

bench: $(STAMP)
	$(BIN)/python bench/status_roundtrip.py

# Re-pin every dependency after editing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

# Known advisories in the pinned Python and npm dependencies. Needs the network (the
# advisory databases are online), so it is not part of `make test`.
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --strict --no-deps --disable-pip --requirement requirements.lock
	npm audit --audit-level=low

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
