"""Budget annotations against real load: the operator scrapes a real Triton and caps replicas at the budget.

The converted artifacts are prepared by the test (a tiny Python-backend model in the namespace's artifact
volume, and the Jobs' kept summaries claiming 20 inferences/s per replica), so the test exercises serving and
scaling only; tests/e2e/test_real_node.py runs the real converters. Triton's replicas run in containers on the
real node; the load comes from this machine to their pod addresses on the node's bridge.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from operator_runner import TritonLoad, condition, get_json, model_manifest, running_operator, wait_for

from thrifty_api import optimized_model as models
from thrifty_converters.triton import repository
from thrifty_operator import names, promload
from thrifty_testbed import deploy, triton_models
from thrifty_testbed.cluster import REPO_ROOT, LocalCluster
from thrifty_testbed.prometheus import LocalPrometheus

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ROOT = pathlib.Path(__file__).resolve().parents[2]
VARIANT = "onnx-int8-dynamic"


def _stored_spec(cluster: LocalCluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The spec as the API server stores it (with defaults), without creating the object."""
    out = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input_text=yaml.safe_dump(manifest),
    ).stdout
    return json.loads(out)["spec"]  # type: ignore[no-any-return]


def _prepare_artifacts(cluster: LocalCluster, namespace: str, digest: str, tmp: pathlib.Path) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "thrifty-artifacts", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(claim))
    wait_for(
        "the artifact claim bound",
        lambda: (
            (get_json(cluster, "pvc", "thrifty-artifacts", "-n", namespace) or {})
            .get("status", {})
            .get("phase")
            == "Bound"
        ),
    )
    pv = get_json(cluster, "pvc", "thrifty-artifacts", "-n", namespace)["spec"]["volumeName"]
    volume = pathlib.Path(get_json(cluster, "pv", pv)["spec"]["hostPath"]["path"])
    onnx = triton_models.build_onnx(tmp / "model.onnx")
    repo = volume / digest / "model_repository"
    repository.write_python_backend_variant(
        repo, f"{VARIANT}-py", triton_models.variant(VARIANT, "onnx", onnx)
    )
    # Written here as root (the repository is staged in a private temporary folder); Triton runs as 10001.
    for path in [volume / digest, *(volume / digest).rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    summaries = {
        names.convert_job(digest): {"v": 1, "variants": []},
        names.profile_job("cpu-c7i", digest): {
            "v": 1,
            "variants": [{"name": VARIANT, "status": "ok", "p50_ms": 2, "p99_ms": 5, "throughput_per_s": 20}],
        },
    }
    for job, summary in summaries.items():
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job,
                "namespace": namespace,
                "labels": {names.LABEL_DIGEST: digest},
                "annotations": {names.ANNOTATION_SUMMARY: json.dumps(summary)},
            },
            # Suspended: a finished conversion that runs no pod.
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "none", "command": ["true"]}],
                    }
                },
            },
        }
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))


def _load(ip: str) -> TritonLoad:
    """About 70 requests/s on the served variant, for at most 4 minutes."""
    return TritonLoad(f"{ip}:8000", f"{VARIANT}-py", 70, triton_models.FEATURES, seconds=240)


def _catalogue(tmp: pathlib.Path) -> pathlib.Path:
    """The local pools, with the CPU pool priced as if each replica (600Mi of 1Gi) filled a c7i.2xlarge: four
    replicas then cost four nodes, as on a cloud, while all four fit on the one real node."""
    catalogue = yaml.safe_load((REPO_ROOT / "config" / "pools.local.yaml").read_text())
    for pool in catalogue["pools"]:
        if pool["name"] == "cpu-c7i":
            pool["allocatable"]["memory"] = "1Gi"
    path = tmp / "pools.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    return path


@contextlib.contextmanager
def _serving(
    local_cluster: LocalCluster, namespace: str, tmp_path: pathlib.Path, budget: str | None, **settings: str
) -> Iterator[tuple[str, pathlib.Path]]:
    """The operator running the test model on one CPU pool; yields a Triton pod's IP and the operator log."""
    manifest = model_manifest(serving__pools=["cpu-c7i"])
    manifest["spec"]["optimization"]["variants"] = [VARIANT]
    # One replica fills a node of the test's catalogue: each replica costs a whole c7i.2xlarge, 0.357/h.
    manifest["spec"]["serving"].update(
        minReplicas=1,
        maxReplicas=4,
        tritonImage=deploy.image_refs()["triton-cpu"],
        resources={"requests": {"cpu": "100m", "memory": "600Mi"}},
    )
    if budget is not None:
        manifest["metadata"]["annotations"] = {models.BUDGET_PER_HOUR_ANNOTATION: budget}
    spec = models.OptimizedModelSpec.model_validate(_stored_spec(local_cluster, namespace, manifest))
    _prepare_artifacts(local_cluster, namespace, names.artifact_digest(spec), tmp_path)
    log = tmp_path / "operator.log"
    settings = {
        "triton_backend_mode": "python",
        "pool_catalogue": str(_catalogue(tmp_path)),
        "cost_update_interval_seconds": "2",
        **settings,
    }
    with running_operator(local_cluster, namespace, log, **settings):
        local_cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(manifest))

        def serving_ip() -> str | None:
            om = get_json(local_cluster, "om", "minilm", "-n", namespace)
            ready = condition(om, "Ready")
            if not ready or ready["status"] != "True":
                return None
            pods = get_json(local_cluster, "pods", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=triton")
            ips = [p["status"].get("podIP") for p in pods["items"] if p["status"].get("podIP")]
            return ips[0] if ips else None

        yield wait_for("Triton serving", serving_ip, timeout=180, log=log), log


def _replicas(local_cluster: LocalCluster, namespace: str) -> int:
    return int(get_json(local_cluster, "deployment", "minilm-triton", "-n", namespace)["spec"]["replicas"])


def test_budget_caps_replicas_under_real_load_and_recovers_when_raised(
    crds: LocalCluster, namespace: str, tmp_path: pathlib.Path
) -> None:
    local_cluster = crds
    serving = _serving(local_cluster, namespace, tmp_path, budget="0.75")
    with (
        serving as (ip, log),
        _load(ip) as load,
    ):

        def capped() -> dict[str, Any] | None:
            om = get_json(local_cluster, "om", "minilm", "-n", namespace)
            limited = condition(om, "BudgetLimited")
            if limited and limited["status"] == "True" and _replicas(local_cluster, namespace) == 2:
                return om
            return None

        om = wait_for("the budget capping replicas at 2", capped, timeout=120, log=log)
        assert om["status"]["scaling"]["replicas"] == 2
        assert float(om["status"]["cost"]["ratePerHour"]) <= 0.75
        assert condition(om, "BudgetLimited")["reason"] == "FewerReplicas"  # type: ignore[index]
        events = get_json(
            local_cluster, "events", "-n", namespace, "--field-selector", "reason=FewerReplicas"
        )
        assert events["items"], "a BudgetLimited Event must say what was given up"

        raised = f"{models.BUDGET_PER_HOUR_ANNOTATION}=5"
        local_cluster.kubectl("annotate", "om", "minilm", "-n", namespace, "--overwrite", raised)

        def recovered() -> dict[str, Any] | None:
            om = get_json(local_cluster, "om", "minilm", "-n", namespace)
            limited = condition(om, "BudgetLimited")
            if limited and limited["status"] == "False" and _replicas(local_cluster, namespace) >= 3:
                return om
            return None

        om = wait_for("scale-up after the budget was raised", recovered, timeout=120, log=log)
        assert load.sent > 0
    assert om["status"]["cost"]["budget"] == "5/h"


def test_scaler_reads_triton_load_through_prometheus(
    crds: LocalCluster, namespace: str, tmp_path: pathlib.Path
) -> None:
    """A real Prometheus discovers the Triton pods through the API server and scrapes them; the operator
    asks it (PromQL over the Deployment's pods) instead of scraping the pods, and scales on that load."""
    local_cluster = crds
    with LocalPrometheus(local_cluster.kubeconfig, namespace, tmp_path / "prometheus") as prom:
        settings = {"prometheus_url": prom.url, "prometheus_rate_window": "10s"}
        serving = _serving(local_cluster, namespace, tmp_path, None, **settings)
        with (
            serving as (ip, log),
            _load(ip),
        ):
            match = promload.selector(namespace, names.deployment("minilm"))
            seen = wait_for(
                "Prometheus seeing Triton's load",
                lambda: (s := promload.load(prom.url, match, "10s")) and s.request_rate > 30 and s,
                timeout=60,
                log=prom.log,
            )
            assert seen.queue_us_per_request >= 0
            om = wait_for(
                "scale-up on the load Prometheus reports",
                lambda: (
                    (o := get_json(local_cluster, "om", "minilm", "-n", namespace))
                    and _replicas(local_cluster, namespace) >= 3
                    and o
                ),
                timeout=120,
                log=log,
            )
            assert om["status"]["scaling"]["reason"] in ("ScaledUp", "Steady")
            assert "Prometheus" not in log.read_text(), "the operator logged a Prometheus failure"
