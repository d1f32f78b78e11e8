"""The operator against the real API server, with KWOK playing every pod.

KWOK completes Job pods without running them, so these tests write what a converter Job reports (the summary
the operator keeps on a finished Job) themselves; `tests/e2e` runs the real converters and Triton instead.
"""

from __future__ import annotations

import os
import pathlib
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from operator_runner import (
    CPU_PROFILE,
    GPU_FAST,
    GPU_SKIPPED,
    apply_manifest,
    condition,
    get_json,
    jobs_of,
    model_manifest,
    profile_all,
    ready_model,
    report_job,
    running_operator,
    wait_for,
)

from thrifty_operator import names
from thrifty_testbed.cluster import LocalCluster

pytestmark = pytest.mark.cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def operator_log(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "operator.log"


@pytest.fixture
def operator(crds: LocalCluster, namespace: str, operator_log: pathlib.Path) -> Iterator[None]:
    with running_operator(crds, namespace, operator_log):
        yield


def _pod_nodes(cluster: LocalCluster, namespace: str) -> set[str]:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=triton") or {
        "items": []
    }
    return {p["spec"].get("nodeName", "") for p in pods["items"]}


def test_operator_deploys_cheapest_cpu_variant_on_cpu_pool(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_SKIPPED, operator_log)
    om = wait_for("Ready=True", lambda: ready_model(crds, namespace), log=operator_log)
    status = om["status"]
    assert status["selected"]["variant"] == "onnx-int8-dynamic"
    assert status["selected"]["pool"] == "cpu-c7i"
    assert status["observedGeneration"] == om["metadata"]["generation"]
    assert status["endpoints"]["http"] == f"http://minilm.{namespace}.svc:8000"
    assert status["replicas"] == {"desired": 1, "ready": 1}
    assert {c["type"] for c in status["conditions"]} >= {"Converted", "Optimized", "Deployed", "Ready"}
    nodes = _pod_nodes(crds, namespace)
    assert nodes and all(n.startswith("cpu-c7i-") for n in nodes)
    service = get_json(crds, "service", "minilm", "-n", namespace)
    assert [p["port"] for p in service["spec"]["ports"]] == [8000, 8001, 8002]
    events = get_json(crds, "events", "-n", namespace, "--field-selector", "involvedObject.name=minilm")
    reasons = {e["reason"] for e in events["items"]}
    assert {"JobCreated", "ConversionSucceeded", "VariantSelected", "Ready"} <= reasons
    # kopf's own bookkeeping stays in annotations under the project prefix.
    assert not set(status) - {
        "observedGeneration",
        "conditions",
        "variants",
        "selected",
        "replicas",
        "cost",
        "endpoints",
        "artifacts",
        "scaling",
    }


def test_operator_places_gpu_variant_only_on_gpu_nodes(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_FAST, operator_log)
    om = wait_for("Ready=True", lambda: ready_model(crds, namespace), log=operator_log)
    assert om["status"]["selected"] == {
        **om["status"]["selected"],
        "variant": "tensorrt-fp16",
        "pool": "gpu-l4",
    }
    nodes = _pod_nodes(crds, namespace)
    assert nodes and all(n.startswith("gpu-l4-") for n in nodes)
    dep = get_json(crds, "deployment", "minilm-triton", "-n", namespace)
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_operator_rolls_out_new_variant_when_spec_changes(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_FAST, operator_log)
    wait_for("Ready on the GPU", lambda: ready_model(crds, namespace), log=operator_log)
    # Dropping the GPU pool leaves only CPU variants: the Deployment rolls over to the cheapest one.
    crds.kubectl(
        "patch",
        "om",
        "minilm",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"serving":{"pools":["cpu-c7i"]}}}',
    )

    def rolled() -> dict[str, Any] | None:
        om = ready_model(crds, namespace)
        if om and om["status"]["selected"]["pool"] == "cpu-c7i" and om["status"]["observedGeneration"] == 2:
            return om
        return None

    wait_for("the CPU variant serving", rolled, log=operator_log)
    nodes = _pod_nodes(crds, namespace)
    dep = get_json(crds, "deployment", "minilm-triton", "-n", namespace)
    assert dep["spec"]["template"]["metadata"]["annotations"][names.ANNOTATION_VARIANT] == "onnx-int8-dynamic"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert all(n.startswith("cpu-c7i-") for n in nodes)


def test_operator_scales_to_zero_when_suspended(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_SKIPPED, operator_log)
    wait_for("Ready=True", lambda: ready_model(crds, namespace), log=operator_log)
    crds.kubectl("patch", "om", "minilm", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')

    def suspended() -> bool:
        om = get_json(crds, "om", "minilm", "-n", namespace)
        dep = get_json(crds, "deployment", "minilm-triton", "-n", namespace)
        cond = condition(om, "Suspended")
        return bool(cond and cond["status"] == "True" and dep["spec"]["replicas"] == 0)

    wait_for("suspension", suspended, log=operator_log)
    om = get_json(crds, "om", "minilm", "-n", namespace)
    assert condition(om, "Ready")["reason"] == "Suspended"  # type: ignore[index]


def test_operator_reports_unknown_pool_without_creatingjobs_of(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest(serving__pools=["tpu-v5"]))

    def reported() -> dict[str, Any] | None:
        cond = condition(get_json(crds, "om", "minilm", "-n", namespace), "Ready")
        return cond if cond and cond["reason"] == "UnknownPool" else None

    cond = wait_for("UnknownPool", reported, log=operator_log)
    assert "tpu-v5" in cond["message"]
    assert jobs_of(crds, namespace, "convert") == []


def test_operator_removes_children_when_model_deleted(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_SKIPPED, operator_log)
    wait_for("Ready=True", lambda: ready_model(crds, namespace), log=operator_log)
    crds.kubectl("delete", "om", "minilm", "-n", namespace, "--wait=true", "--timeout=60s")

    def gone() -> bool:
        left = [
            get_json(crds, kind, "-n", namespace, "-l", f"{names.LABEL_MODEL}=minilm")["items"]
            for kind in ("jobs", "deployments", "services")
        ]
        return not any(left)

    wait_for("children garbage-collected", gone, timeout=90, log=operator_log)


def test_operator_adopts_running_job_after_restart(
    crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    # Job pods stay Pending (as if converting for a long time): KWOK skips pods with this label.
    hold = '{"testbed.thrifty.dev/kwok-hold": "true"}'
    with running_operator(crds, namespace, operator_log, extra_pod_labels=hold) as proc:
        apply_manifest(crds, namespace, model_manifest())
        first = wait_for("a conversion Job", lambda: jobs_of(crds, namespace, "convert"), log=operator_log)[0]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with running_operator(crds, namespace, operator_log, extra_pod_labels=hold):
        wait_for(
            "the restarted operator to reconcile",
            lambda: "Resuming" in operator_log.read_text() or operator_log.read_text().count("Timer") > 0,
            log=operator_log,
        )
        wait_for(
            "another reconcile pass",
            lambda: operator_log.read_text().count("succeeded") >= 2,
            log=operator_log,
        )
        jobs = jobs_of(crds, namespace, "convert")
    assert [j["metadata"]["uid"] for j in jobs] == [first["metadata"]["uid"]]


def test_operator_shares_converted_artifacts_between_models(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    apply_manifest(crds, namespace, model_manifest())
    profile_all(crds, namespace, CPU_PROFILE, GPU_SKIPPED, operator_log)
    wait_for("the first model Ready", lambda: ready_model(crds, namespace), log=operator_log)
    apply_manifest(crds, namespace, model_manifest("minilm-b"))
    wait_for("the second model Ready", lambda: ready_model(crds, namespace, "minilm-b"), log=operator_log)
    jobs = jobs_of(crds, namespace, "convert") + jobs_of(crds, namespace, "profile")
    assert len(jobs) == 3, "the second model must reuse the first one's conversion and profiles"

    # Both models own the shared Jobs: deleting the one that created them keeps them for the other.
    uids = {get_json(crds, "om", n, "-n", namespace)["metadata"]["uid"] for n in ("minilm", "minilm-b")}
    for job in jobs:
        owners = {ref["uid"] for ref in job["metadata"]["ownerReferences"]}
        assert owners == uids, job["metadata"]["name"]
    crds.kubectl("delete", "om", "minilm", "-n", namespace, "--wait=true", "--timeout=60s")
    gone = next(iter(uids - {get_json(crds, "om", "minilm-b", "-n", namespace)["metadata"]["uid"]}))
    wait_for(
        "the garbage collector dropping the deleted model from the Jobs' owners",
        lambda: all(
            gone not in {ref["uid"] for ref in j["metadata"].get("ownerReferences", [])}
            for j in jobs_of(crds, namespace, "convert") + jobs_of(crds, namespace, "profile")
        ),
        log=operator_log,
    )
    kept = jobs_of(crds, namespace, "convert") + jobs_of(crds, namespace, "profile")
    assert sorted(j["metadata"]["uid"] for j in kept) == sorted(j["metadata"]["uid"] for j in jobs)
    om = ready_model(crds, namespace, "minilm-b")
    assert om and om["status"]["selected"]["variant"] == "onnx-int8-dynamic"
    # The last owner gone, the Jobs go too.
    crds.kubectl("delete", "om", "minilm-b", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for("the shared Jobs collected", lambda: not jobs_of(crds, namespace, "convert"), log=operator_log)


def test_operator_splits_a_namespace_budget_between_its_models(
    operator: None, crds: LocalCluster, namespace: str, operator_log: pathlib.Path
) -> None:
    crds.kubectl("annotate", "namespace", namespace, "thrifty.dev/budget-per-hour=1")
    cpu_only = {"serving__pools": ["cpu-c7i"]}
    apply_manifest(crds, namespace, model_manifest("a", **cpu_only))
    apply_manifest(crds, namespace, model_manifest("b", **cpu_only))
    converts = wait_for(
        "the shared conversion Job", lambda: jobs_of(crds, namespace, "convert"), log=operator_log
    )
    report_job(crds, namespace, converts[0], {"variants": []})
    profiles = wait_for("the profiling Job", lambda: jobs_of(crds, namespace, "profile"), log=operator_log)
    report_job(crds, namespace, profiles[0], CPU_PROFILE)

    def budgets(expected: str) -> dict[str, Any] | None:
        models = {n: get_json(crds, "om", n, "-n", namespace) for n in ("a", "b")}
        shown = {
            n: ((om or {}).get("status") or {}).get("cost", {}).get("budget") for n, om in models.items()
        }
        return models if set(shown.values()) == {expected} else None

    # Equal demand: each model gets half of the namespace's 1/h, which pays for its one CPU replica.
    models = wait_for(
        "each model holding half the namespace budget", lambda: budgets("0.5/h"), log=operator_log
    )
    for om in models.values():
        assert condition(om, "BudgetLimited")["status"] == "False"  # type: ignore[index]
    # A quarter each no longer pays for minReplicas: the models keep it and say so.
    crds.kubectl("annotate", "namespace", namespace, "--overwrite", "thrifty.dev/budget-per-hour=0.5")
    models = wait_for("the tighter namespace budget applied", lambda: budgets("0.25/h"), log=operator_log)

    def limited() -> bool:
        conds = [condition(get_json(crds, "om", n, "-n", namespace), "BudgetLimited") for n in ("a", "b")]
        return all(c and c["status"] == "True" and c["reason"] == "BudgetBelowMinimum" for c in conds)

    wait_for("BudgetLimited on both models", limited, log=operator_log)
    dep = get_json(crds, "deployment", "a-triton", "-n", namespace)
    assert dep["spec"]["replicas"] == 1
