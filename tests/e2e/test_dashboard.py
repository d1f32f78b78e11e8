"""Every PromQL expression of the Grafana dashboard returns data from the testbed Prometheus.

As in tests/e2e/test_real_node.py, the chart's operator runs in a pod on the real node, and a model is
converted, profiled and served by Triton in containers; its namespace carries a budget. The testbed Prometheus
discovers the operator pod and every Triton pod through the API server and scrapes them while requests reach
Triton. Then each panel's and variable's expression, expanded as Grafana expands it for that namespace and
model, must parse and return at least one series: a query that returns nothing fails, naming its panel.
"""

from __future__ import annotations

import pathlib
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operator_runner import TritonLoad, condition, get_json, wait_for

from thrifty_api import optimized_model as models
from thrifty_operator import names
from thrifty_testbed import demo, deploy, grafana
from thrifty_testbed.cluster import LocalCluster
from thrifty_testbed.prometheus import LocalPrometheus

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
NAMESPACE = demo.E2E_NAMESPACE
RELEASE_NAMESPACE = demo.RELEASE_NAMESPACE
MODEL = "dashboard"
FEATURES, CLASSES = 16, 4
BUDGET = {models.BUDGET_PER_HOUR_ANNOTATION: "5", models.BUDGET_PER_MONTH_ANNOTATION: "2000"}
RATE_INTERVAL = "30s"  # what Grafana's $__rate_interval is for a 2 s scrape interval and a short range


@pytest.fixture(scope="module")
def operator_pod(local_cluster: LocalCluster) -> str:
    """The chart's operator on the real node, with the values of tests/e2e/test_real_node.py (so that the two
    modules share one operator pod)."""
    deploy.ensure_namespace(local_cluster, NAMESPACE)
    return deploy.install_operator(
        local_cluster,
        release=demo.RELEASE,
        namespace=RELEASE_NAMESPACE,
        set_values={"watchNamespaces": "{" + ",".join(demo.WATCHED) + "}", "statusIntervalSeconds": "1"},
    )


@pytest.fixture
def budgeted_namespace(local_cluster: LocalCluster) -> Iterator[str]:
    """The module's namespace with a budget per hour and per month, removed afterwards."""
    annotations = [f"{key}={value}" for key, value in BUDGET.items()]
    local_cluster.kubectl("annotate", "namespace", NAMESPACE, "--overwrite", *annotations)
    yield NAMESPACE
    local_cluster.kubectl("annotate", "namespace", NAMESPACE, *(f"{key}-" for key in BUDGET), check=False)


@pytest.fixture
def served(
    local_cluster: LocalCluster, operator_pod: str, budgeted_namespace: str, tmp_path: pathlib.Path
) -> Iterator[dict[str, Any]]:
    """A small MLP converted and served on the real node; the model is deleted afterwards."""
    folder = deploy.claim_folder(local_cluster, NAMESPACE, "models")
    deploy.upload(_torchscript(tmp_path / "mlp.pt"), folder, f"{MODEL}/model.pt")
    local_cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(_manifest()))
    try:
        yield wait_for(f"{MODEL} Ready", lambda: _ready(local_cluster), timeout=600)
    finally:
        local_cluster.kubectl(
            "delete", "om", MODEL, "-n", NAMESPACE, "--ignore-not-found", "--timeout=60s", check=False
        )


def _torchscript(path: pathlib.Path) -> pathlib.Path:
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, still supported as input
        torch.jit.save(torch.jit.trace(mlp.eval(), torch.zeros(2, FEATURES)), str(path))
    return path


def _manifest() -> dict[str, Any]:
    return {
        "apiVersion": "thrifty.dev/v1alpha1",
        "kind": "OptimizedModel",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "source": {"uri": f"pvc://models/{MODEL}/model.pt", "format": "TorchScript"},
            "signature": {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [FEATURES]}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": [CLASSES]}],
            },
            "optimization": {"variants": ["onnx-fp32"], "latencyTargetMs": 50, "maxBatchSize": 4},
            "serving": {
                "pools": ["cpu-c7i"],
                "tritonImage": deploy.image_refs()["triton-cpu"],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                "minReplicas": 1,
                "maxReplicas": 1,
            },
        },
    }


def _ready(cluster: LocalCluster) -> dict[str, Any] | None:
    om = get_json(cluster, "om", MODEL, "-n", NAMESPACE)
    ready = condition(om, "Ready")
    if ready and ready["reason"] in ("ConversionFailed", "NoFeasibleVariant", "InvalidSpec"):
        raise AssertionError(f"{MODEL} will not become Ready: {ready}")
    return om if ready and ready["status"] == "True" else None


def _empty(prometheus: str, queries: list[grafana.Query]) -> dict[str, str]:
    """Each query that returns no series yet: where it is → the expression as run (or Prometheus's error)."""
    empty = {}
    for query in queries:
        expr = grafana.expand(query.expr, {"namespace": NAMESPACE, "model": MODEL}, RATE_INTERVAL)
        try:
            if not grafana.instant(prometheus, expr):
                empty[query.where] = expr
        except ValueError as err:
            empty[query.where] = f"{expr}\n    refused: {err}"
    return empty


def test_every_dashboard_query_returns_series_for_a_served_model(
    local_cluster: LocalCluster, served: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    pods = get_json(local_cluster, "pods", "-n", NAMESPACE, "-l", f"{names.LABEL_COMPONENT}=triton")
    (ip,) = [p["status"]["podIP"] for p in pods["items"] if p["status"].get("podIP")]
    queries = grafana.queries(grafana.load())
    assert len(queries) >= 20
    # Triton pods in every namespace, and the operator's pod in the release's namespace.
    with (
        LocalPrometheus(
            local_cluster.kubeconfig, None, tmp_path / "prometheus", operator_namespace=RELEASE_NAMESPACE
        ) as prom,
        TritonLoad(f"{ip}:8000", served["status"]["endpoints"]["modelName"], 10, FEATURES) as requests,
    ):
        started = time.monotonic()
        left: dict[str, str] = {}

        def all_answered() -> bool:
            left.clear()
            left.update(_empty(prom.url, queries))
            return not left

        try:
            wait_for("every dashboard query to return series", all_answered, timeout=150, log=prom.log)
        except AssertionError:
            listing = "\n".join(f"  {where}: {expr}" for where, expr in left.items())
            pytest.fail(f"{len(left)} of {len(queries)} dashboard queries return no series:\n{listing}")
        took = time.monotonic() - started
    assert requests.sent > 0
    print(f"{len(queries)} dashboard queries answered {took:.0f} s after Prometheus started")
