# Ferry: the two commands a fresh machine needs are `make run` (the appliance) and `make test` (every test).
SHELL := /bin/bash
.DEFAULT_GOAL := build
DATA ?= $(CURDIR)/.data/appliance
LISTEN ?= 0.0.0.0:8443

UNIT_TESTS := $(shell find protocol/src appliance/src agent/src restore-pe/src -name '*.test.ts' 2>/dev/null | sort)
INTEGRATION_TESTS := $(shell find test/integration -name '*.test.ts' 2>/dev/null | sort)
NODE_TEST := node --conditions=development --import tsx --test --test-reporter=spec

.PHONY: install build run test test-unit test-integration lint bench clean

# System packages (apt) and npm packages; re-run only when the lock file changes.
node_modules/.ferry-installed: package-lock.json scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.ferry-installed

build: install
	npx tsc -b
	node web/build.mjs

run: build
	node appliance/bin/ferry-appliance.js serve --data $(DATA) --listen $(LISTEN)

lint: install
	npx tsc -b
	npx eslint --max-warnings 0 .
	for f in scripts/*.sh .ci/run; do bash -n "$$f" || exit 1; done

# One node --test run over every tier, so CI reads one summary.
test: build lint
	$(NODE_TEST) --test-concurrency=1 $(UNIT_TESTS) $(INTEGRATION_TESTS)

test-unit: build
	$(NODE_TEST) $(UNIT_TESTS)

test-integration: build
	$(NODE_TEST) --test-concurrency=1 $(INTEGRATION_TESTS)

# Throughput on a generated 1 GiB image; not a test (no timing assertions), results in docs/benchmarks.md.
bench: build
	node --conditions=development --import tsx test/bench/throughput.ts

clean:
	rm -rf */dist test/out .cache
