# Converter pipeline benchmark: all-MiniLM-L6-v2 and a digits CNN through `thrifty-convert optimize`.
# Outputs (models, variants, report.json) land in .bench/converters/; BENCH_ARGS=--fresh starts over.
BENCH_ARGS ?=

.PHONY: bench-converters
bench-converters: $(VENV)/.installed ## Benchmark the converter pipeline (MiniLM, digits CNN; about 5 min)
	HF_HUB_OFFLINE=1 $(PY) converters/benchmarks/bench_converters.py $(BENCH_ARGS)
