# Linnet: `make run` serves on SQLite + the in-memory layer; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench migrate screenshots clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --no-input -v0

run: migrate
	@$(PY) manage.py linnet_dev_admin --url http://$(HOST):$(PORT)/
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest
	$(PY) -m tests.scaleout

bench: migrate
	$(PY) -m bench

# The README's pictures of the client and the dashboard, taken by the browser tests.
screenshots: $(VENV)/.installed
	LINNET_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
