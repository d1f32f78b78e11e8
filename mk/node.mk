# The real node (testbed/thrifty_testbed/node.py) and the images it runs (testbed/thrifty_testbed/images.py):
# Debian packages, node binaries from pinned Go modules, and the Dockerfile's targets built with BuildKit.
# lua5.4 runs the chart's Argo CD health check in tests/unit/test_argocd_health.py.
NODE_PACKAGES := containerd runc containernetworking-plugins iptables umoci mmdebstrap gcc libc6-dev zstd lua5.4

.PHONY: node-packages
node-packages: ## apt-get install what the real node and the image builds need (only what is missing)
	@missing=""; \
	for c in containerd runc umoci mmdebstrap iptables gcc ss zstd lua5.4; do command -v $$c >/dev/null || missing=1; done; \
	[ -x /usr/lib/cni/bridge ] || missing=1; \
	if [ -n "$$missing" ]; then \
		echo "==> apt-get install $(NODE_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_PACKAGES) >/dev/null; \
	fi

.PHONY: node-binaries
node-binaries: ## Build kubelet, kube-proxy, CoreDNS and BuildKit from pinned Go modules (cached)
	tools/build-node.sh

.PHONY: images
images: $(VENV)/.installed node-packages node-binaries ## Build the operator, converter and triton-cpu images with BuildKit (no Docker; cached)
	$(PY) -m thrifty_testbed.images
