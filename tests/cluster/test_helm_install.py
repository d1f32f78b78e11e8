"""`helm install` of the chart into the local cluster with the ci values, and `helm uninstall`."""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import Iterator

import pytest

from thrifty_api import crdgen
from thrifty_testbed import chart
from thrifty_testbed.cluster import LocalCluster

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = "customresourcedefinition/optimizedmodels.thrifty.dev"
POLICY = "validatingadmissionpolicy/budget-annotations.thrifty.dev"


def _exists(cluster: LocalCluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, "-o", "name", check=False).returncode == 0


def _helm(cluster: LocalCluster, *args: str, check: bool = True) -> str:
    result = chart.helm(*args, kubeconfig=cluster.kubeconfig, bin_dir=cluster.bin_dir, check=check)
    return result.stdout


@pytest.fixture
def release(local_cluster: LocalCluster, namespace: str) -> Iterator[str]:
    """A unique release name; the release is uninstalled and the shared cluster-scoped objects restored."""
    name = f"t{uuid.uuid4().hex[:8]}"
    # The CRD and the policy are cluster-wide and may come from `kubectl apply -f crds/` (other tests):
    # the release takes them over, and uninstalling deletes the policy, so put it back afterwards.
    policy_existed = _exists(local_cluster, POLICY)
    yield name
    _helm(local_cluster, "uninstall", name, "--namespace", namespace, "--ignore-not-found", check=False)
    for kind in ("clusterrole", "clusterrolebinding"):
        local_cluster.kubectl("delete", kind, f"{name}-thrifty", "--ignore-not-found", check=False)
    if policy_existed:
        local_cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / crdgen.POLICY_FILE)
        )


def test_helm_install_creates_operator_and_uninstall_keeps_crd(
    local_cluster: LocalCluster, namespace: str, release: str
) -> None:
    _helm(
        local_cluster,
        "install",
        release,
        str(chart.CHART_DIR),
        "--namespace",
        namespace,
        "-f",
        str(chart.LOCAL_VALUES),
        "--set",
        "crds.keep=true",
        "--wait=false",
        "--take-ownership",
        "--timeout=60s",
    )
    local_cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
    fullname = f"{release}-thrifty"
    for kind in ("deployment", "serviceaccount", "configmap"):
        assert _exists(
            local_cluster, kind, "-n", namespace, fullname if kind != "configmap" else f"{fullname}-pools"
        )
    assert _exists(local_cluster, "clusterrole", fullname)
    assert _exists(local_cluster, "clusterrolebinding", fullname)
    assert _exists(local_cluster, POLICY)
    deployment = json.loads(
        local_cluster.kubectl("get", "deployment", fullname, "-n", namespace, "-o", "json").stdout
    )
    assert deployment["spec"]["strategy"]["type"] == "Recreate"

    _helm(local_cluster, "uninstall", release, "--namespace", namespace)

    crd = json.loads(local_cluster.kubectl("get", CRD, "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not _exists(local_cluster, "clusterrole", fullname)
    assert not _exists(local_cluster, "clusterrolebinding", fullname)
    assert not _exists(local_cluster, "deployment", "-n", namespace, fullname)
