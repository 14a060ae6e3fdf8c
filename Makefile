# Two commands for a fresh Debian/Ubuntu machine: `make up` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

# Every run fails if it leaves processes, containers, images, volumes or networks behind
# (HYGIENE=strict: the engine is the run's alone, as in CI). On an engine something else uses
# at the same time, HYGIENE=shared checks only processes and the run's own containers.
HYGIENE ?= strict

.PHONY: up test venv engine images chromium tools lint fast test-sqlite test-postgres bench clean

up: venv engine
	$(BIN)/ipaas up

test: venv engine images chromium tools lint test-sqlite test-swarm test-postgres

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v git >/dev/null || (apt-get update -qq && apt-get install -y -qq git >/dev/null)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || \
	  (apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PY) -m venv $(VENV))
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

engine:
	@scripts/ensure-docker.sh

# Debian packages only the tests use: Pebble, Let's Encrypt's test CA, and its DNS server.
# Debian packages the tests run for real: Pebble (ACME) and docker-registry (the Swarm tests).
tools:
	@command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null)
	@command -v docker-registry >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends docker-registry >/dev/null)

images: venv engine
	$(BIN)/ipaas images bootstrap

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it never downloads one).
chromium:
	@test -x /usr/bin/chromium || apt-get install -y -qq --no-install-recommends chromium >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src/ipaas
	$(BIN)/lint-imports

# The fast tier: no Docker, no broker; the store is SQLite. Under a minute.
fast: venv
	IPAAS_TEST_DB=sqlite $(BIN)/pytest -q -p no:cacheprovider -m "not docker and not rabbitmq and not slow" \
	  tests/domain tests/apps tests/warden tests/contracts tests/test_*.py tests/cli tests/web $(PYTEST_ARGS)

test-sqlite: venv
	IPAAS_TEST_HYGIENE=$(HYGIENE) IPAAS_TEST_DB=sqlite $(BIN)/pytest -q -p no:cacheprovider --durations=15 -m "not swarm" $(PYTEST_ARGS)

# The multi-node tests (one 3-node Swarm of dockerds in network namespaces) in a session of their
# own: the engine-restart tests above kill and restart the machine's dockerd, and the Swarm's
# nodes share the host's kernel state with it.
test-swarm: venv
	IPAAS_TEST_HYGIENE=$(HYGIENE) IPAAS_TEST_DB=sqlite $(BIN)/pytest -q -p no:cacheprovider --durations=5 -m swarm tests/contracts tests/swarm $(PYTEST_ARGS)

# The suite again on PostgreSQL, but for the tests the store plays no part in (see
# STORE_INDEPENDENT in tests/conftest.py): one code path for both stores.
test-postgres: venv
	IPAAS_TEST_STORE_ONLY=1 IPAAS_TEST_HYGIENE=$(HYGIENE) IPAAS_TEST_DB=postgres $(BIN)/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
