# Two commands on a fresh Debian 12 machine with Python 3.11 and npm: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
VENDOR := static/vendor
# Every target runs on this machine: embedded, so that DEBUG off without SECRET_KEY uses var/secret-key.
export HPADMIN_EMBEDDED ?= 1

.PHONY: setup run test test-libvirt test-browser test-api-fuzz test-deploy bench lint migrate demo clean

setup: $(VENV)/.installed $(VENDOR)/.installed

$(VENV)/.installed: requirements.txt scripts/system-packages
	scripts/system-packages base
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

# Source maps too: collectstatic's manifest storage follows every sourceMappingURL.
$(VENDOR)/.installed: node_modules/.installed Makefile
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/bootstrap/dist/css/bootstrap.min.css node_modules/bootstrap/dist/css/bootstrap.min.css.map $(VENDOR)/
	cp node_modules/bootstrap/dist/js/bootstrap.bundle.min.js node_modules/bootstrap/dist/js/bootstrap.bundle.min.js.map $(VENDOR)/
	cp node_modules/sortablejs/Sortable.min.js $(VENDOR)/
	touch $@

migrate: setup
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo

## Serve the app on http://127.0.0.1:8000 with a Celery worker and beat, on the embedded defaults.
run: demo
	scripts/run-local

## The import contracts, then the test suite (SQLite by default; set DATABASE_URL / CELERY_BROKER_URL for
## PostgreSQL and Redis).
test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST) -q -p no:cacheprovider

## Real libvirt hosts: two daemons on this machine, then three first-level VMs with NUMA nodes (needs root;
## docs/libvirt-testbed.md).
test-libvirt: setup
	scripts/system-packages libvirt
	HPADMIN_LIBVIRT_TESTBED=1 $(PYTEST) -p no:cacheprovider -v -m libvirt tests/hypervisor/test_libvirt_testbed.py \
		tests/operations/test_libvirt_engine.py tests/operations/test_libvirt_numa.py

## The admin's flow in Debian's Chromium, driven by Playwright; screenshots in artifacts/screenshots/.
test-browser: setup
	scripts/system-packages browser
	HPADMIN_BROWSER_TESTS=1 $(PYTEST) -p no:cacheprovider -v -m browser tests/browser

## schemathesis against the OpenAPI schema of a throw-away server; fails on any 5xx or schema violation.
test-api-fuzz: setup
	scripts/api-fuzz

## The production recipe on this machine: gunicorn on PostgreSQL, a worker and beat on Redis, a login and a
## migration over HTTP (scripts/deploy-smoke; needs PostgreSQL and Redis on 127.0.0.1).
test-deploy: setup
	scripts/deploy-smoke

## Every benchmark; each prints its figures. Jobs run on the embedded defaults and, when PostgreSQL answers,
## on PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_BROKER_URL).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/0
bench: setup
	$(PY) benchmarks/bench_scheduler.py
	$(PY) benchmarks/bench_evacuation.py
	$(PY) benchmarks/bench_ui.py
	$(PY) benchmarks/bench_api.py
	$(PY) benchmarks/bench_jobs.py
	if pg_isready -q -d "$(BENCH_DATABASE_URL)"; then \
	  DATABASE_URL=$(BENCH_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) $(PY) benchmarks/bench_jobs.py; fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) node_modules $(VENDOR) var
