# Thrifty's developer entry points. On a fresh machine two commands do all set-up:
#   make demo   the main job on a local cluster
#   make test   every test: lint, types, unit, converters, cluster and end-to-end
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Every package and extra the tests and the demo use; one environment for the whole repository.
PACKAGES := -e api -e operator -e sim -e converters[cpu,serve,s3] -e testbed --group dev
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml api/pyproject.toml operator/pyproject.toml sim/pyproject.toml converters/pyproject.toml testbed/pyproject.toml
	@echo "==> Python environment in $(VENV)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --python $(PY) --quiet $(PACKAGES)
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create or update the Python environment

.PHONY: binaries
binaries: node-binaries ## Build etcd, kube-*, kubectl, kwok, helm and Prometheus (and the node's) from pinned Go modules (cached)
	tools/build.sh

include mk/*.mk
