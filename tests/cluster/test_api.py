"""The OptimizedModel API against the real kube-apiserver: CRD, examples, validation, admission policy."""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from thrifty_testbed.cluster import LocalCluster

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture
def api(crds: LocalCluster) -> LocalCluster:
    """The cluster with the CRD and the budget admission policy."""
    return crds


def _apply(api: LocalCluster, namespace: str, manifest: dict[str, Any]) -> tuple[int, str]:
    result = api.kubectl(
        "apply", "-n", namespace, "-f", "-", check=False, input_text=yaml.safe_dump(manifest)
    )
    return result.returncode, result.stdout + result.stderr


def _valid() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "minilm.yaml").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_api_accepts_example_when_applied(api: LocalCluster, namespace: str, example: pathlib.Path) -> None:
    manifest = yaml.safe_load(example.read_text())
    code, output = _apply(api, namespace, manifest)
    assert code == 0, output
    stored = json.loads(
        api.kubectl("get", "om", manifest["metadata"]["name"], "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"]["source"] == manifest["spec"]["source"]


def test_api_fills_defaults_when_fields_are_omitted(api: LocalCluster, namespace: str) -> None:
    manifest = _valid()
    del manifest["spec"]["optimization"]
    del manifest["spec"]["scaling"]
    code, output = _apply(api, namespace, manifest)
    assert code == 0, output
    spec = json.loads(api.kubectl("get", "om", "minilm", "-n", namespace, "-o", "json").stdout)["spec"]
    assert spec["optimization"]["variants"][0] == "onnx-fp32"
    assert spec["optimization"]["latencyTargetMs"] == 100
    assert spec["scaling"] == {"metric": "QueueTime", "target": 2000, "scaleDownStabilizationSeconds": 300}
    assert spec["suspend"] is False


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        node = manifest
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()

INVALID: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bad-format-enum": (_set("spec.source.format", "Pickle"), "spec.source.format"),
    "bad-variant-enum": (
        _set("spec.optimization.variants", ["onnx-fp32", "tflite"]),
        "spec.optimization.variants[1]",
    ),
    "negative-min-replicas": (_set("spec.serving.minReplicas", -1), "spec.serving.minReplicas"),
    "min-above-max-replicas": (
        lambda m: m["spec"]["serving"].update(minReplicas=5, maxReplicas=2),
        "`minReplicas` must be less than or equal to `maxReplicas`",
    ),
    "missing-source": (_set("spec.source", _DELETE), "spec.source"),
    "bad-uri-scheme": (_set("spec.source.uri", "http://example.invalid/model.pt"), "spec.source.uri"),
    "unknown-field": (_set("spec.serving.replicas", 3), 'unknown field "spec.serving.replicas"'),
    "oversize-image": (
        _set("spec.serving.tritonImage", "registry.invalid/" + "x" * 600),
        "spec.serving.tritonImage",
    ),
    "malformed-hourly-budget": (
        _set("metadata.annotations", {"thrifty.dev/budget-per-hour": "a lot"}),
        "metadata.annotations[thrifty.dev/budget-per-hour] must be a non-negative decimal",
    ),
    "negative-monthly-budget": (
        _set("metadata.annotations", {"thrifty.dev/budget-per-month": "-5"}),
        "metadata.annotations[thrifty.dev/budget-per-month] must be a non-negative decimal",
    ),
    "static-int8-without-calibration": (
        _set("spec.optimization.variants", ["onnx-fp32", "onnx-int8-static"]),
        "`calibration` must be set when `variants` includes onnx-int8-static",
    ),
    "shape-below-minus-one": (
        _set("spec.signature.inputs.0.shape", [-2]),
        "spec.signature.inputs[0].shape[0]",
    ),
    "duplicate-input-names": (
        _set("spec.signature.inputs", [{"name": "x", "dtype": "int64", "shape": [-1]}] * 2),
        "spec.signature.inputs[1]",
    ),
    "no-pools": (_set("spec.serving.pools", []), "spec.serving.pools"),
    "zero-latency-target": (
        _set("spec.optimization.latencyTargetMs", 0),
        "spec.optimization.latencyTargetMs",
    ),
    "bad-pool-name": (_set("spec.serving.pools", ["GPU_Pool"]), "spec.serving.pools[0]"),
    "bad-quantity": (
        _set("spec.serving.resources.requests.cpu", "two cores"),
        "spec.serving.resources.requests.cpu",
    ),
    "zero-cpu": (
        _set("spec.serving.resources.requests.cpu", "0"),
        "`cpu` must be at least 1m (one millicore)",
    ),
    "sub-millicore-cpu": (
        _set("spec.serving.resources.requests.cpu", "250u"),
        "`cpu` must be at least 1m (one millicore)",
    ),
    "zero-memory-limit": (
        _set("spec.serving.resources.limits", {"memory": "0Gi"}),
        "`memory` must be more than 0",
    ),
    "name-too-long": (_set("metadata.name", "m" * 41), "`metadata.name` must be at most 40 characters"),
    "too-many-variants": (
        _set("spec.optimization.variants", ["onnx-fp32"] * 9),
        "spec.optimization.variants",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_api_rejects_invalid_spec_naming_the_field(api: LocalCluster, namespace: str, case: str) -> None:
    mutate, expected = INVALID[case]
    manifest = copy.deepcopy(_valid())
    mutate(manifest)
    code, output = _apply(api, namespace, manifest)
    assert code != 0, f"{case} was accepted"
    assert expected in output, output
    assert api.kubectl("get", "om", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_api_rejects_malformed_namespace_budget(api: LocalCluster) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "t-bad-budget", "annotations": {"thrifty.dev/budget-per-month": "1,000"}},
    }
    result = api.kubectl("apply", "-f", "-", check=False, input_text=yaml.safe_dump(manifest))
    assert result.returncode != 0
    assert (
        "metadata.annotations[thrifty.dev/budget-per-month] must be a non-negative decimal" in result.stderr
    )


def test_api_keeps_status_apart_from_spec(api: LocalCluster, namespace: str) -> None:
    code, output = _apply(api, namespace, _valid())
    assert code == 0, output
    status = {"status": {"observedGeneration": 1, "replicas": {"desired": 2, "ready": 1}}}
    api.kubectl(
        "patch",
        "om",
        "minilm",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    # A spec write ignores status and bumps the generation; the status stays as the operator wrote it.
    api.kubectl("patch", "om", "minilm", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    stored = json.loads(api.kubectl("get", "om", "minilm", "-n", namespace, "-o", "json").stdout)
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["replicas"] == {"desired": 2, "ready": 1}


def test_api_prints_columns_and_explains_fields(api: LocalCluster, namespace: str) -> None:
    _apply(api, namespace, _valid())
    header = api.kubectl("get", "om", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "VARIANT", "POOL", "REPLICAS", "COST/H", "BUDGET", "AGE"]
    explained = " ".join(api.kubectl("explain", "optimizedmodel.spec.serving.pools").stdout.split())
    assert "cheapest pool that meets the latency target" in explained
    assert "thrifty.dev/budget-per-hour" in " ".join(api.kubectl("explain", "optimizedmodel").stdout.split())
