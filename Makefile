# Ferry: the two commands a fresh machine needs are `make run` (the appliance) and `make test` (every test).
SHELL := /bin/bash
.DEFAULT_GOAL := build
DATA ?= $(CURDIR)/.data/appliance
LISTEN ?= 0.0.0.0:8443

UNIT_TESTS := $(shell find protocol/src appliance/src agent/src restore-pe/src -name '*.test.ts' 2>/dev/null | sort)
# The web UI's own unit tests (its i18n dictionaries) run with the others.
UNIT_TESTS += $(shell find web/src -name '*.test.ts' 2>/dev/null | sort)
INTEGRATION_TESTS := $(shell find test/integration -name '*.test.ts' 2>/dev/null | sort)
# The fault suite (docs/reliability.md): appliance crashes at named points and at random moments, bit rot, a full
# data disk. Seeded: FERRY_FAULT_SEED=N repeats a run; FERRY_FAULT_FULL=1 makes the random kills 50 cycles.
FAULT_TESTS := $(shell find test/faults -name '*.test.ts' 2>/dev/null | sort)
# End to end: real QEMU virtual machines (the source fixture, the restore ISO, the migration proof).
E2E_TESTS := $(shell find test/e2e -name '*.test.ts' 2>/dev/null | sort)
NODE_TEST := node --conditions=development --import tsx --test --test-reporter=spec
# The restore ISO's build stages and the scripts it puts on the ISO (init, launcher).
FIXTURE_SCRIPTS := $(wildcard test/fixtures/*.sh)
ISO_SCRIPTS := iso/build.sh $(wildcard iso/lib/*.sh iso/stages/*.sh) iso/initrd/init \
  $(wildcard iso/layer/usr/local/sbin/ferry-* iso/layer/usr/local/bin/* iso/layer/etc/profile.d/*.sh)

.PHONY: install build run test test-unit test-integration test-e2e lint bench clean iso agent-binary test-faults

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
	cd web && npx svelte-check --tsconfig ./tsconfig.json --fail-on-warnings
	for f in scripts/*.sh .ci/run $(ISO_SCRIPTS) $(FIXTURE_SCRIPTS); do bash -n "$$f" || exit 1; done
	shellcheck -x $(ISO_SCRIPTS) $(FIXTURE_SCRIPTS)

# One node --test run over every tier, so CI reads one summary.
test: build lint
	$(NODE_TEST) --test-concurrency=1 $(UNIT_TESTS) $(INTEGRATION_TESTS) $(FAULT_TESTS) $(E2E_TESTS)

test-unit: build
	$(NODE_TEST) $(UNIT_TESTS)

test-integration: build
	$(NODE_TEST) --test-concurrency=1 $(INTEGRATION_TESTS)

test-e2e: build
	$(NODE_TEST) --test-concurrency=1 $(E2E_TESTS)

# Needs root (loop devices, mount). The seed each scenario uses is printed (`# crash: FERRY_FAULT_SEED=…`).
test-faults: build
	$(NODE_TEST) --test-concurrency=1 $(FAULT_TESTS)

# Ferry against borg, restic, partclone and lz4 on a cached Debian source image, agent footprint, scaling, block sizes
# (test/bench/run.ts); not a test (no timing assertions). Writes docs/benchmarks.md and docs/benchmarks.svg. Needs root.
# BENCH_QUICK=1: one run on a small image (developing the bench); BENCH_RUNS=N: runs of the comparison (default 3).
bench: build agent-binary
	node --conditions=development --import tsx test/bench/run.ts

# The restore ISO, iso/out/ferry-restore.iso (docs/restore-iso.md). The Debian root is cached in iso/work
# (FRESH=1 rebuilds it); the restore-pe bundle, the initrd and the ISO are made anew each time.
iso: build
	FERRY_PROGRAMS_BUILT=1 FRESH=$(FRESH) bash iso/build.sh

clean:
	rm -rf */dist test/out .cache

# The agent as one Linux x86-64 executable that needs no Node on the source (agent/sea/build.sh); the appliance
# serves it at /downloads/ferry-agent. Rebuilt only when a source file, the lock file or the node binary changed.
AGENT_BINARY_INPUTS := $(shell find agent/src protocol/src -name '*.ts' ! -name '*.test.ts' 2>/dev/null) \
  $(wildcard agent/sea/*) agent/package.json protocol/package.json package-lock.json $(realpath $(shell command -v node))
agent/out/ferry-agent: $(AGENT_BINARY_INPUTS) | node_modules/.ferry-installed
	bash agent/sea/build.sh

agent-binary: agent/out/ferry-agent
