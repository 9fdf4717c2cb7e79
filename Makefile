# Two commands on a fresh machine: `make run` (the app) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test soak bench lint clean system-deps

EXTRAS := desktop,exchange,firestore,backend
# The API image's pins (backend_stub/Dockerfile installs that file): the app and the suite get the same versions.
PINS := backend_stub/requirements.txt

$(VENV)/.runtime: pyproject.toml $(PINS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(PINS) -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.dev: pyproject.toml $(PINS) $(VENV)/.runtime
	$(PIP) install -c $(PINS) -e ".[$(EXTRAS),dev,bench]"
	touch $@

# ARGS passes options to the app, e.g. `make run ARGS="--web --port 8550"` or `make run ARGS=--desktop`.
run: $(VENV)/.runtime
	$(PY) -m client $(ARGS)

# System packages (Chromium, Java, Node, firebase-tools): installed where it can, named where it cannot.
system-deps:
	bash .ci/install-system.sh

# PYTEST_ARGS narrows the run, e.g. `make test PYTEST_ARGS="-m 'not browser and not emulator'"`. The soak
# test (tests/e2e/test_soak.py, ~4 min estimated quiet, 6-12 min at load 15-30) is part of `make test`; `make soak` runs it alone.
PYTEST_ARGS ?=

test: $(VENV)/.dev system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

soak: $(VENV)/.dev system-deps
	$(PY) -m pytest tests/e2e/test_soak.py

bench: $(VENV)/.dev
	$(PY) bench/signals.py
	$(PY) bench/backend.py

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m mypy client views services backend_stub mobile

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
