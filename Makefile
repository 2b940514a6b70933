# Two commands matter: `make run` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test demo bench bench-peers bench-extraction bench-scheduler bench-load bench-interference lint lock clean
.PHONY: venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/ingest run

demo: $(STAMP)
	$(BIN)/ingest demo

test: $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(TSTAMP)
	$(BIN)/ruff check .

bench: $(TSTAMP)
	$(BIN)/python bench/throughput.py --quick

# The same, with newspaper4k and news-please run on the same site as peers (each installed from PyPI into its own
# venv, .venv-peers and .venv-peer-newsplease, on first use).
bench-peers: $(TSTAMP)
	$(BIN)/python bench/throughput.py --quick --peers

bench-scheduler: $(TSTAMP)
	$(BIN)/python bench/scheduler.py

# Issue 8's load proof: 200 feeds x 50 articles through the real stack; lost, duplicates, memory (~3-5 min).
bench-load: $(TSTAMP)
	$(BIN)/python bench/load.py

bench-extraction: $(TSTAMP)
	$(BIN)/python bench/extraction.py

# Extraction's CPU per page alone and beside a load like the worker's threads (issue 9's remaining gap).
bench-interference: $(TSTAMP)
	$(BIN)/python bench/interference.py

# The image's locked dependency set: the runtime dependencies of pyproject.toml, resolved in a clean venv.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet .
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^news-ingest' > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) var .pytest_cache
