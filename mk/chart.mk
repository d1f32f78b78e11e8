# The Helm chart (charts/thrifty) and the container images (Dockerfile). `make test` runs the same checks
# through tests/unit/test_chart.py and tests/cluster/test_helm_install.py; these targets are shortcuts.
CHART := charts/thrifty
CHART_CI_VALUES := $(CHART)/ci/local-values.yaml
# Image names and tag the chart's defaults point at; override on the command line.
IMAGE_PREFIX ?= ghcr.io/thrifty-dev
IMAGE_TAG ?= 0.1.0

.PHONY: helm-lint
helm-lint: $(VENV)/.installed binaries ## helm lint --strict the chart (default and ci values) and render it
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART_CI_VALUES)
	$(HELM) template thrifty $(CHART) --namespace thrifty-system -f $(CHART_CI_VALUES) >/dev/null

.PHONY: docker-lint
docker-lint: $(VENV)/.installed ## hadolint the Dockerfile (fails on warnings)
	$(VENV)/bin/hadolint --failure-threshold warning Dockerfile

.PHONY: chart-install
chart-install: cluster-up ## helm install (or upgrade) the chart into the local cluster with the ci values
	$(HELM) upgrade --install thrifty $(CHART) --namespace thrifty-system --create-namespace \
		-f $(CHART_CI_VALUES) --take-ownership --wait=false

.PHONY: docker-images
docker-images: ## docker build the four images on a machine with Docker (`make images` needs none; docs/images.md)
	docker build --target operator -t $(IMAGE_PREFIX)/thrifty-operator:$(IMAGE_TAG) .
	docker build --target converter -t $(IMAGE_PREFIX)/thrifty-converter:$(IMAGE_TAG) .
	docker build --target triton-cpu -t $(IMAGE_PREFIX)/thrifty-triton-cpu:$(IMAGE_TAG) .
	docker build --target converter-gpu -t $(IMAGE_PREFIX)/thrifty-converter-gpu:$(IMAGE_TAG) .
