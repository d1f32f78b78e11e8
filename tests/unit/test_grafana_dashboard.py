"""The Grafana dashboard: its ConfigMap in the chart, and its JSON (every panel has PromQL that uses only the
dashboard's variables and the metrics the operator and Triton export). tests/e2e/test_dashboard.py runs every
expression against the testbed Prometheus."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import numpy as np
import pytest
import yaml

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import config, manifests, telemetry
from thrifty_testbed import chart, grafana

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = grafana.load()
LABEL = ("grafana_dashboard", "1")
VALUES = {"namespace": "shop", "model": "search"}


def _dashboards(**set_values: str) -> list[dict[str, Any]]:
    rendered = chart.render(release="test", namespace="thrifty-system", set_values=set_values)
    return [m for m in chart.select(rendered, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")]


def test_dashboard_configmap_is_off_by_default_and_labelled_for_the_sidecar_when_on() -> None:
    assert _dashboards() == []
    (configmap,) = _dashboards(**{"grafana.dashboard.enabled": "true"})
    assert configmap["metadata"]["namespace"] == "thrifty-system"
    assert configmap["metadata"]["labels"][LABEL[0]] == LABEL[1]
    assert json.loads(configmap["data"]["thrifty.json"]) == DASHBOARD


def test_dashboard_configmap_takes_its_label_namespace_and_annotations_from_values() -> None:
    (configmap,) = _dashboards(
        **{
            "grafana.dashboard.enabled": "true",
            "grafana.dashboard.label": "example.com/dashboard",
            "grafana.dashboard.labelValue": "thrifty",
            "grafana.dashboard.namespace": "monitoring",
            "grafana.dashboard.annotations.grafana_folder": "Thrifty",
        }
    )
    assert configmap["metadata"]["labels"]["example.com/dashboard"] == "thrifty"
    assert LABEL[0] not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Thrifty"}


def test_chart_lints_strictly_with_the_dashboard_on() -> None:
    args = chart.value_args(set_values={"grafana.dashboard.enabled": "true"})
    result = chart.helm("lint", "--strict", str(chart.CHART_DIR), *args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_a_label_key_kubernetes_would() -> None:
    result = chart.helm(
        "template", "test", str(chart.CHART_DIR), "--set", "grafana.dashboard.label=not a label", check=False
    )
    assert result.returncode != 0 and "label" in result.stderr


def test_every_panel_queries_the_datasource_variable_with_non_empty_promql() -> None:
    panels = [p for p in grafana.panels(DASHBOARD) if p["type"] != "row"]
    assert len({p["id"] for p in grafana.panels(DASHBOARD)}) == len(list(grafana.panels(DASHBOARD)))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']} {target['refId']}"
            assert target["datasource"] == panel["datasource"]
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_dashboard_has_datasource_namespace_and_model_variables() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("namespace", "model"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("query", grafana.queries(DASHBOARD), ids=lambda q: q.where)
def test_every_expression_expands_to_promql_without_grafana_variables(query: grafana.Query) -> None:
    expr = grafana.expand(query.expr, VALUES)
    assert not re.search(r"\$[A-Za-z_{]|\[\[", expr), expr
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # brackets inside strings do not count
    for opening, closing in ("()", "{}", "[]"):
        assert text.count(opening) == text.count(closing), expr


def test_every_operator_metric_on_the_dashboard_is_exported() -> None:
    exported = {g._name for g in telemetry.per_model_gauges()} | set(telemetry.per_namespace_metrics())
    exported |= {"thrifty_reconcile_duration_seconds_bucket"}
    used = {m for q in grafana.queries(DASHBOARD) for m in re.findall(r"\bthrifty_[a-z_]+", q.expr)}
    # Every name exists, and every per-model and per-namespace figure has a panel.
    assert used == exported, (used - exported, exported - used)


def _triton_metrics_args() -> list[str]:
    """The `--metrics-config` flags of the Triton Deployment the operator builds."""
    doc = yaml.safe_load((ROOT / "examples" / "minilm.yaml").read_text())
    spec = models.OptimizedModelSpec.model_validate(doc["spec"])
    catalogue = pools.PoolCatalogue.model_validate(
        yaml.safe_load((ROOT / "config" / "pools.local.yaml").read_text())
    )
    pool = next(p for p in catalogue.pools if not p.is_gpu)
    serving = manifests.Serving(
        variant=spec.optimization.variants[0], model_name="m", repository="/r", pool=pool, replicas=1
    )
    deployment = manifests.triton_deployment(
        owner=manifests.Owner(name="m", namespace="ns", uid="u"),
        spec=spec,
        serving=serving,
        digest="d",
        settings=config.Settings(),
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [a for a in container["args"] if a.startswith("--metrics-config")]


@pytest.mark.triton
def test_every_triton_metric_on_the_dashboard_is_one_the_operators_triton_exports(
    tmp_path: pathlib.Path,
) -> None:
    """The real tritonserver, run with the flags the operator gives Triton, after a few requests."""
    pytest.importorskip("onnxruntime")
    http = pytest.importorskip("tritonclient.http")
    from thrifty_converters.triton import repository
    from thrifty_converters.triton.distribution import find_tritonserver
    from thrifty_converters.triton.errors import ServerError
    from thrifty_testbed import triton, triton_models

    try:
        find_tritonserver()
    except ServerError as err:
        pytest.skip(str(err))
    onnx = triton_models.build_onnx(tmp_path / "model.onnx")
    variant = triton_models.variant("onnx-fp32", "onnx", onnx)
    repository.write_python_backend_variant(tmp_path / "repo", "m-py", variant)
    flags = _triton_metrics_args()
    assert "--metrics-config=summary_latencies=true" in flags, "the p99 panels need Triton's summaries"
    with triton.run_server(tmp_path / "repo", tmp_path / "work", extra_args=flags) as server:
        client = http.InferenceServerClient(url=server.endpoints.http_url)
        x = np.ones((1, triton_models.FEATURES), dtype=np.float32)
        request = http.InferInput("x", list(x.shape), "FP32")
        request.set_data_from_numpy(x)
        for _ in range(5):
            client.infer("m-py", [request])
        client.close()
        exported = set(re.findall(r"^(nv_[a-z_]+)\{", triton.fetch_metrics(server.endpoints), re.M))
    used = {m for q in grafana.queries(DASHBOARD) for m in re.findall(r"\bnv_[a-z_]+", q.expr)}
    assert used and used <= exported, used - exported
