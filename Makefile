# The two commands a fresh machine needs: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-unit bench bench-import bench-intake clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ingest demo

test: $(STAMP)
	sh scripts/ensure-dovecot.sh
	sh scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py --rows 100000 --per-task-rows 10000

bench-import: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/import_list.py --rows 1000000 --existing 200000

bench-intake: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/intake.py --seconds 60

clean:
	rm -rf $(VENV) ingest.db ingest.db-wal ingest.db-shm
