# Benchmarks print ratios and figures measured side by side in one run; they are not timed tests.
.PHONY: bench-operator
bench-operator: $(VENV)/.installed binaries ## 500 OptimizedModels on a dedicated local cluster: time to Deployed, RSS, API requests (BENCH_OPERATOR_ARGS='--namespace-budget 1000 --steady-seconds 120')
	$(PY) -m thrifty_testbed.bench_operator --count $${BENCH_COUNT:-500} $(BENCH_OPERATOR_ARGS)
