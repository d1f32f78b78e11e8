"""Shared fixtures: the local control plane (started on demand, once per run) and a namespace per test."""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator

import pytest

from thrifty_testbed import cluster as testbed


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[testbed.LocalCluster]:
    """The local cluster: reuse a running one (e.g. from `make cluster-up`) or start one for this run.

    A cluster started here stops at the end of the run unless THRIFTY_KEEP_CLUSTER=1.
    """
    local = testbed.LocalCluster()
    started = not local.is_running()
    if started:
        try:
            local.start()
        except testbed.ClusterError as err:
            pytest.fail(f"{err}\n" + "\n".join(local.log_tail(30)))
    yield local
    if started and os.environ.get("THRIFTY_KEEP_CLUSTER") != "1":
        local.stop()


@pytest.fixture
def namespace(local_cluster: testbed.LocalCluster) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    local_cluster.kubectl("create", "namespace", name)
    yield name
    local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(local_cluster: testbed.LocalCluster) -> testbed.LocalCluster:
    """The cluster with Thrifty's CRD and budget admission policy installed (from crds/, as generated)."""
    folder = pathlib.Path(__file__).resolve().parents[1] / "crds"
    local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder))
    local_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/optimizedmodels.thrifty.dev", "--timeout=60s"
    )
    return local_cluster
