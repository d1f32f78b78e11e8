# The local control plane (etcd, kube-apiserver, KCM, scheduler, KWOK with a GPU and a CPU pool).
KUBECONFIG_LOCAL := $(CURDIR)/.testbed/cluster/kubeconfig
KUBECTL := $(CURDIR)/.testbed/bin/kubectl --kubeconfig=$(KUBECONFIG_LOCAL)
HELM := $(CURDIR)/.testbed/bin/helm --kubeconfig=$(KUBECONFIG_LOCAL)

.PHONY: cluster-up
cluster-up: $(VENV)/.installed binaries images ## Start the local cluster and its real node in the background (idempotent); prints the kubeconfig path
	$(VENV)/bin/thrifty-testbed up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster
	@if [ -x $(VENV)/bin/thrifty-testbed ]; then $(VENV)/bin/thrifty-testbed down; fi
