# The demo: all-MiniLM-L6-v2 converted, selected and served by Thrifty on the local cluster, then queried.
# DEMO_ARGS=--all-variants keeps every variant of examples/minilm.yaml; --serve keeps Triton up until Ctrl-C.
DEMO_ARGS ?=

.PHONY: demo
demo: $(VENV)/.installed binaries images ## MiniLM from TorchScript to a Triton answering on the local cluster (a few minutes)
	HF_HUB_OFFLINE=1 $(PY) -m thrifty_testbed.demo $(DEMO_ARGS)
