"""The operator runs with exactly the chart's RBAC: its ServiceAccount token, no admin certificate."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import pytest
import yaml
from operator_runner import (
    CPU_PROFILE,
    GPU_SKIPPED,
    apply_manifest,
    get_json,
    model_manifest,
    profile_all,
    ready_model,
    running_operator,
    wait_for,
)

from thrifty_testbed import chart
from thrifty_testbed.cluster import LocalCluster

pytestmark = pytest.mark.cluster
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def chart_token_kubeconfig(
    crds: LocalCluster, namespace: str, tmp_path: pathlib.Path
) -> Iterator[pathlib.Path]:
    """A kubeconfig authenticating as the chart's ServiceAccount, bound to the chart's ClusterRole."""
    local_cluster = crds
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    rbac = chart.operator_rbac_manifests(namespace, release)
    local_cluster.kubectl("apply", "-f", "-", input_text=chart.dump(rbac))
    account = next(m for m in rbac if m["kind"] == "ServiceAccount")["metadata"]["name"]
    token = local_cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(local_cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": admin["clusters"][0]["name"], "user": "operator"}}
        ],
        "current-context": "operator",
    }
    path = tmp_path / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path
    for m in rbac:
        if m["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            local_cluster.kubectl("delete", m["kind"], m["metadata"]["name"], "--wait=false", check=False)


def test_operator_reaches_ready_with_the_charts_service_account(
    local_cluster: LocalCluster, namespace: str, chart_token_kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "operator.log"
    # The token really is the ServiceAccount's: it may not read Secrets.
    denied = local_cluster.kubectl(
        f"--kubeconfig={chart_token_kubeconfig}", "get", "secrets", "-n", namespace, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    with running_operator(local_cluster, namespace, log, kubeconfig=chart_token_kubeconfig):
        apply_manifest(local_cluster, namespace, model_manifest())
        profile_all(local_cluster, namespace, CPU_PROFILE, GPU_SKIPPED, log)
        om = wait_for("Ready=True", lambda: ready_model(local_cluster, namespace), log=log)
    assert om["status"]["selected"]["pool"] == "cpu-c7i"
    events = get_json(
        local_cluster, "events", "-n", namespace, "--field-selector", "involvedObject.kind=OptimizedModel"
    )
    assert any(e["reason"] == "VariantSelected" for e in events["items"])
    assert "Forbidden" not in log.read_text() and " 403 " not in log.read_text()
