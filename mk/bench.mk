# Benchmarks print ratios and figures measured side by side in one run; they are not timed tests.
.PHONY: bench-operator
bench-operator: $(VENV)/.installed binaries ## 500 OptimizedModels on a dedicated local cluster: time to Deployed, RSS, API requests
	$(PY) -m thrifty_testbed.bench_operator --count $${BENCH_COUNT:-500}
