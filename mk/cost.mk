# Cost simulator benchmark (issue 5 §3): Thrifty's policy against static-peak, HPA-like, KEDA-like and
# offline oracles on the Azure LLM trace and seeded diurnal load. Writes .bench/cost/.

.PHONY: bench-cost
bench-cost: $(VENV)/.installed ## Run the cost benchmark and report which targets are met
	$(PY) -m thrifty_sim.bench --out .bench/cost

.PHONY: bench-cost-sweep
bench-cost-sweep: $(VENV)/.installed ## Binding monthly cap over seeds 3-5 and budgets 0.6/0.8/0.95 of the oracle's cost
	$(PY) -m thrifty_sim.sweep

.PHONY: bench-cost-robust
bench-cost-robust: $(VENV)/.installed ## Every policy on 8 traffic families + the Azure trace x 5 seeds x scales 1/5/20/80 (matrix, heatmap)
	$(PY) -m thrifty_sim.robust --out .bench/cost-robust
