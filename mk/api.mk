# The OptimizedModel API: CRD and admission policy generated from api/thrifty_api/optimized_model.py.
.PHONY: crds
crds: $(VENV)/.installed ## Regenerate crds/ (and the chart's copies in charts/thrifty/files/) from the typed API models
	$(VENV)/bin/thrifty-crdgen --out-dir crds --chart-dir charts/thrifty
