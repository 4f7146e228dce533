# Two entry points: `make run` (the bot; the local sandbox when no Slack credentials) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format readme clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nexy run $(ARGS)

# The product packages that ruff and mypy check (mypy reads them from pyproject.toml).
PACKAGES := bot clients jobs runbook commands handlers nexy
SCRIPTS = .ci/run $(wildcard runbook/*.sh clients/scripts/*.sh tests/fixtures_scripts/*.sh sandbox/vm/bin/* sandbox/vm/image/scripts/*.sh)

# lint-imports (the layers contracts in pyproject.toml's [tool.importlinter]; README, "Architecture")
# runs last, so that the linters before it still run when a layer is crossed.
lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES)
	$(BIN)/ruff format --check $(PACKAGES)
	$(BIN)/mypy
	$(BIN)/shellcheck $(SCRIPTS)
	$(BIN)/lint-imports

# Three pytest workers on the machine's two cores: the tests mostly wait on processes, sockets
# and Redis (two workers keep the cores about 60 % busy); each starts its own Redis and
# emulators. They share the tests by work stealing: a worker that runs out of tests takes queued
# ones from another, so all finish together.
test: lint
	$(BIN)/pytest -q -n 3 --dist worksteal

# Every benchmark in turn; one JSON document on stdout (benchmarks/all.py).
bench: $(STAMP)
	@$(BIN)/python benchmarks/all.py

# README's command and roles tables, generated from the runbook's declarations
# (tests/test_readme_commands.py and tests/test_readme_roles.py fail while they are stale).
readme: $(STAMP)
	$(BIN)/nexy commands --readme README.md

format: $(STAMP)
	$(BIN)/ruff check --fix $(PACKAGES)
	$(BIN)/ruff format $(PACKAGES)

clean:
	rm -rf $(VENV) .nexy
