# Quality gates and the test suite. `make test` is what CI runs (.ci/run).
PY_SOURCES := api/thrifty_api operator/thrifty_operator sim/thrifty_sim converters/thrifty_converters testbed/thrifty_testbed

.PHONY: lint
lint: $(VENV)/.installed ## ruff (lint and format), import-linter layers
	$(VENV)/bin/ruff check $(PY_SOURCES) converters/benchmarks tests
	$(VENV)/bin/ruff format --check $(PY_SOURCES) converters/benchmarks tests
	$(VENV)/bin/lint-imports

.PHONY: typecheck
typecheck: $(VENV)/.installed ## mypy --strict on every package
	$(VENV)/bin/mypy $(PY_SOURCES)

.PHONY: format
format: $(VENV)/.installed ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix $(PY_SOURCES) tests
	$(VENV)/bin/ruff format $(PY_SOURCES) tests

.PHONY: test
test: $(VENV)/.installed binaries images lint typecheck ## Everything: lint, types, unit, converters, cluster and end-to-end tests
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.installed ## Only the tests that need no cluster and no Triton
	$(PY) -m pytest -m "not cluster and not triton and not slow" $(PYTEST_ARGS)
