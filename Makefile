# All set-up happens here: a fresh machine needs only python3 (3.11+) and Go (1.26+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint lint-code lint-manifests quick unit integration e2e faults realnode gitops generate down clean bench bench-5000 demo

$(BIN)/.installed: pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./sandbox
	touch $@

## make run: the operator on the local sandbox with examples/ha.yaml applied
run: $(BIN)/.installed
	VENV=$(VENV) scripts/run.sh

## make test: lint, type checks, layer contracts, then every test (builds the sandbox on first use);
## the manifest linters run there as tests/unit/test_manifest_linters.py, built in the background
test: lint-code
	AIDBOX_PREBUILD=1 $(BIN)/pytest -ra $(PYTEST_ARGS) tests

## make lint: the code checks, then the manifest linters (kube-score, Checkov; built/installed on first use)
lint: lint-code lint-manifests

lint-code: $(BIN)/.installed
	$(BIN)/ruff check src sandbox/src tests bench scripts
	$(BIN)/ruff format --check src sandbox/src tests bench scripts
	$(BIN)/mypy
	$(BIN)/mypy bench scripts
	$(BIN)/lint-imports
	$(BIN)/aidbox-operator crd --check crds/aidboxcluster.yaml
	$(BIN)/aidbox-operator crd --channel --check crds/aidboxreleasechannel.yaml

lint-manifests: $(BIN)/.installed
	$(BIN)/python scripts/lint_manifests.py

## make quick: every suite but the slow ones that start parts of their own (faults, realnode, gitops)
quick: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) -m "not faults and not realnode and not gitops" tests

## make unit: the unit tests alone (no sandbox)
unit: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/unit

## make integration: the operator against the sandbox's API server
integration: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/integration

## make e2e: the demo tour end to end on the sandbox
e2e: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/e2e

## make faults: the fault-injection suite alone (private sandbox; figures in build/faults-figures.jsonl)
faults: $(BIN)/.installed
	$(BIN)/pytest -ra -s $(PYTEST_ARGS) tests/faults

## make realnode: real kubelet nodes on this machine, real traffic (zero downtime, confinement)
realnode: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/realnode

## make gitops: Flux (source-controller, kustomize-controller, built on first use) and a git server drive the operator
gitops: $(BIN)/.installed
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/gitops

## regenerate the files generated from the model (CRD, README field reference, golden files)
generate: $(BIN)/.installed
	$(BIN)/aidbox-operator crd -o crds/aidboxcluster.yaml
	$(BIN)/aidbox-operator crd --channel -o crds/aidboxreleasechannel.yaml
	$(BIN)/aidbox-operator reference --readme README.md
	UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/unit/test_render_golden.py

## make down: stop the operator `make run` left running, then the sandbox
down: $(BIN)/.installed
	VENV=$(VENV) scripts/run.sh stop
	$(BIN)/aidbox-operator sandbox down

clean: down
	rm -rf $(VENV) build *.egg-info src/*.egg-info

## make demo: a scripted tour on the sandbox (apply, kill a pod, config change, scale, clean up)
demo: $(BIN)/.installed
	$(BIN)/python scripts/demo.py

BENCH_5000_OUT ?= /tmp/bench-5000
BENCH_ARGS ?= --sizes 100,1000 --idle-seconds 300 --surroundings 5000 --operator-upgrade 1000 --channel 500
## make bench: fleet, surroundings, operator-upgrade and release-channel benchmarks on private sandboxes (~85 min); writes bench/results/
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## make bench-5000: the fleet benchmark at N=5000 alone (~47 min on 2 cores); writes bench/results/fleet-5000.*
bench-5000: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py --sizes 5000 --idle-seconds 120 --no-profile --timeout 5400 --out $(BENCH_5000_OUT)
	cp $(BENCH_5000_OUT)/latest.json bench/results/fleet-5000.json
	cp $(BENCH_5000_OUT)/latest.md bench/results/fleet-5000.md
	$(BIN)/python bench/report.py --plots
