# Two entry points: `make run` (the bot; the local sandbox when no Slack credentials) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nexy run $(ARGS)

test: $(STAMP)
	$(BIN)/shellcheck .ci/run $(wildcard runbook/*.sh jobs/scripts/*.sh tests/fixtures_scripts/*.sh sandbox/vm/bin/* sandbox/vm/image/scripts/*.sh)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/ack_latency.py
	$(BIN)/python benchmarks/serialization.py

clean:
	rm -rf $(VENV) .nexy
