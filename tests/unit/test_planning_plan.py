"""State-in/state-out tests of the reconciler's pure planner; every status goes through the API's dict form
between passes, as on the cluster."""

from __future__ import annotations

import json
import pathlib
from decimal import Decimal
from typing import Any

import pytest
import yaml

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import config, manifests, names, pool_pricing, status_io
from thrifty_operator.planning import measure, observed
from thrifty_operator.planning import plan as planner

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = pools.PoolCatalogue.model_validate(yaml.safe_load((ROOT / "config/pools.local.yaml").read_text()))
SETTINGS = config.Settings()
OWNER = manifests.Owner(name="minilm", namespace="ml", uid="uid-1")


def _spec(**serving: Any) -> models.OptimizedModelSpec:
    raw = yaml.safe_load((ROOT / "examples/minilm.yaml").read_text())["spec"]
    raw["serving"].update(serving)
    return models.OptimizedModelSpec.model_validate(raw)


def _plan(
    spec: models.OptimizedModelSpec,
    children: observed.Observed,
    status: models.OptimizedModelStatus | None = None,
) -> planner.Plan:
    # Stored as the API server stores it, read back as the handler reads it.
    stored = status_io.read(status_io.dump(status)) if status else models.OptimizedModelStatus()
    return planner.plan(
        owner=OWNER,
        generation=3,
        spec=spec,
        stored=stored,
        observed=children,
        catalogue=CATALOGUE,
        settings=SETTINGS,
        price_of=pool_pricing.spec_replica_price,
    )


def _summary(*variants: dict[str, Any]) -> str:
    return json.dumps({"v": 1, "variants": list(variants)})


def _ok(name: str, p99: float, tput: float) -> dict[str, Any]:
    return {
        "name": name,
        "format": "onnx",
        "precision": "fp32",
        "status": "ok",
        "p99_ms": p99,
        "throughput_per_s": tput,
    }


def _conditions(plan: planner.Plan) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in plan.status.conditions}


def _selected(plan: planner.Plan) -> tuple[str, str]:
    assert plan.status.selected is not None
    return plan.status.selected.variant, plan.status.selected.pool


def test_plan_creates_conversion_job_when_nothing_exists() -> None:
    spec = _spec()
    plan = _plan(spec, observed.Observed(jobs={}, deployment=None))
    digest = names.artifact_digest(spec)
    assert [j["metadata"]["name"] for j in plan.create_jobs] == [f"thrifty-convert-{digest}"]
    job = plan.create_jobs[0]
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": "cpu-c7i"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert (
        "tensorrt-fp16"
        not in pod["containers"][0]["args"][pod["containers"][0]["args"].index("--variants") + 1]
    )
    assert _conditions(plan)["Converted"] == ("Unknown", "ConversionPending")
    assert _conditions(plan)["Ready"] == ("False", "Converting")
    assert plan.status.observed_generation == 3
    assert plan.apply == []


def test_plan_reports_failed_conversion_without_creating_jobs() -> None:
    spec = _spec()
    digest = names.artifact_digest(spec)
    failed = observed.JobState(
        phase="Failed", message=json.dumps({"v": 1, "error": "unsupported operator aten::foo"})
    )
    plan = _plan(spec, observed.Observed(jobs={names.convert_job(digest): failed}, deployment=None))
    assert plan.create_jobs == []
    assert _conditions(plan)["Ready"] == ("False", "ConversionFailed")
    assert any("aten::foo" in c.message for c in plan.status.conditions)
    assert [e.reason for e in plan.events] == ["ConversionFailed"]


def test_plan_profiles_every_pool_after_conversion() -> None:
    spec = _spec()
    digest = names.artifact_digest(spec)
    done = observed.JobState(phase="Succeeded", message=_summary(_ok("onnx-fp32", 10, 100)))
    plan = _plan(spec, observed.Observed(jobs={names.convert_job(digest): done}, deployment=None))
    created = {j["metadata"]["name"]: j for j in plan.create_jobs}
    assert set(created) == {names.profile_job("cpu-c7i", digest), names.profile_job("gpu-l4", digest)}
    gpu = created[names.profile_job("gpu-l4", digest)]["spec"]["template"]["spec"]
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert _conditions(plan)["Optimized"] == ("Unknown", "Profiling")


def _profiled(spec: models.OptimizedModelSpec, cpu: str, gpu: str) -> dict[str, observed.JobState]:
    digest = names.artifact_digest(spec)
    return {
        names.convert_job(digest): observed.JobState(phase="Succeeded", message=_summary()),
        names.profile_job("cpu-c7i", digest): observed.JobState(phase="Succeeded", message=cpu),
        names.profile_job("gpu-l4", digest): observed.JobState(phase="Succeeded", message=gpu),
    }


def test_plan_selects_cheapest_feasible_variant_and_deploys_on_its_pool() -> None:
    spec = _spec()
    cpu = _summary(_ok("onnx-fp32", 30, 40), _ok("onnx-int8-dynamic", 20, 60), _ok("openvino-bf16", 80, 500))
    gpu = _summary({"name": "tensorrt-fp16", "status": "skipped: no GPU"})
    plan = _plan(spec, observed.Observed(jobs=_profiled(spec, cpu, gpu), deployment=None))
    assert _selected(plan) == ("onnx-int8-dynamic", "cpu-c7i")
    statuses = {(v.name, v.pool): v.status for v in plan.status.variants}
    assert statuses[("openvino-bf16", "cpu-c7i")].startswith(
        "infeasible: p99 80.0 ms exceeds the 50 ms target"
    )
    assert statuses[("tensorrt-fp16", "gpu-l4")] == "skipped: no GPU"
    service, deployment = plan.apply
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": "cpu-c7i"}
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "--load-model=onnx-int8-dynamic" in pod["containers"][0]["args"]
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert service["spec"]["ports"][0]["port"] == 8000
    assert _conditions(plan)["Deployed"] == ("True", "DeploymentUpdated")
    assert _conditions(plan)["Ready"] == ("False", "RollingOut")


def _applied(plan: planner.Plan) -> dict[str, str]:
    return {
        f"{m['kind']}/{m['metadata']['name']}": m["metadata"]["annotations"][
            manifests.APPLIED_HASH_ANNOTATION
        ]
        for m in plan.apply
    }


def test_plan_is_ready_when_rollout_completed() -> None:
    spec = _spec()
    jobs = _profiled(
        spec, _summary(_ok("onnx-int8-dynamic", 20, 60)), _summary(_ok("tensorrt-fp16", 2, 2000))
    )
    dep = observed.DeploymentState(
        replicas=1,
        ready_replicas=1,
        updated_replicas=1,
        variant="tensorrt-fp16",
        pool="gpu-l4",
        rolled_out=True,
    )
    applying = _plan(spec, observed.Observed(jobs=jobs, deployment=dep))
    # A GPU replica costs ~9x a CPU replica, but ~33x the throughput makes it cheaper per inference.
    assert _selected(applying)[1] == "gpu-l4"
    assert _conditions(applying)["Ready"] == ("False", "RollingOut")
    plan = _plan(
        spec, observed.Observed(jobs=jobs, deployment=dep, applied=_applied(applying)), applying.status
    )
    assert plan.apply == []
    assert _conditions(plan)["Ready"] == ("True", "Serving")
    assert plan.ready
    again = _plan(spec, observed.Observed(jobs=jobs, deployment=dep, applied=_applied(applying)), plan.status)
    assert again.events == []
    assert again.status.conditions == plan.status.conditions


def test_plan_warns_when_every_replica_of_a_rolled_out_deployment_is_lost_and_recovers() -> None:
    spec = _spec()
    jobs = _profiled(
        spec, _summary(_ok("onnx-int8-dynamic", 20, 60)), _summary(_ok("tensorrt-fp16", 2, 2000))
    )

    def serving(ready: int) -> observed.DeploymentState:
        return observed.DeploymentState(
            replicas=1,
            ready_replicas=ready,
            updated_replicas=1,
            variant="tensorrt-fp16",
            pool="gpu-l4",
            rolled_out=True,
        )

    applying = _plan(spec, observed.Observed(jobs=jobs, deployment=serving(1)))
    seen = {"jobs": jobs, "applied": _applied(applying)}
    ready = _plan(spec, observed.Observed(deployment=serving(1), **seen), applying.status)
    lost = _plan(spec, observed.Observed(deployment=serving(0), **seen), ready.status)
    assert _conditions(lost)["Ready"] == ("False", "ReplicasUnavailable")
    assert [(e.type, e.reason) for e in lost.events] == [("Warning", "ReplicasUnavailable")]
    assert lost.apply == []
    back = _plan(spec, observed.Observed(deployment=serving(1), **seen), lost.status)
    assert _conditions(back)["Ready"] == ("True", "Serving")
    assert [(e.type, e.reason) for e in back.events] == [("Normal", "Ready")]


def test_plan_reports_no_feasible_variant_with_reasons() -> None:
    spec = _spec()
    cpu = _summary(
        _ok("onnx-fp32", 90, 40), {"name": "onnx-int8-dynamic", "status": "failed: cosine 0.91 < 0.99"}
    )
    gpu = _summary({"name": "tensorrt-fp16", "status": "skipped: no GPU"})
    plan = _plan(spec, observed.Observed(jobs=_profiled(spec, cpu, gpu), deployment=None))
    assert _conditions(plan)["Optimized"] == ("False", "NoFeasibleVariant")
    message = next(c.message for c in plan.status.conditions if c.type == "Optimized")
    assert "cosine 0.91" in message and "exceeds the 50 ms target" in message
    assert plan.apply == []


def test_plan_rejects_unknown_pool_permanently() -> None:
    plan = _plan(_spec(pools=["tpu-v5"]), observed.Observed(jobs={}, deployment=None))
    assert plan.create_jobs == []
    assert _conditions(plan)["Ready"] == ("False", "UnknownPool")
    assert [e.reason for e in plan.events] == ["UnknownPool"]


def test_plan_scales_to_zero_when_suspended() -> None:
    spec = models.OptimizedModelSpec.model_validate(_spec().model_dump(by_alias=True) | {"suspend": True})
    cpu = _summary(_ok("onnx-int8-dynamic", 20, 60))
    gpu = _summary()
    dep = observed.DeploymentState(
        replicas=2,
        ready_replicas=2,
        updated_replicas=2,
        variant="onnx-int8-dynamic",
        pool="cpu-c7i",
        rolled_out=True,
    )
    plan = _plan(spec, observed.Observed(jobs=_profiled(spec, cpu, gpu), deployment=dep))
    assert plan.apply[1]["spec"]["replicas"] == 0
    assert _conditions(plan)["Suspended"] == ("True", "Suspended")
    assert _conditions(plan)["Ready"] == ("False", "Suspended")


@pytest.mark.parametrize("throughput", [1.0, 250.0, 12345.5])
def test_cost_per_million_is_price_over_hourly_inferences(throughput: float) -> None:
    cost = measure.cost_per_million(Decimal("0.36"), throughput)
    assert float(cost) == pytest.approx(0.36 / (throughput * 3600) * 1e6)


def test_plan_skips_applying_children_that_are_unchanged() -> None:
    spec = _spec()
    jobs = _profiled(spec, _summary(_ok("onnx-int8-dynamic", 20, 60)), _summary())
    first = _plan(spec, observed.Observed(jobs=jobs, deployment=None))
    applied = {
        f"{m['kind']}/{m['metadata']['name']}": m["metadata"]["annotations"][
            manifests.APPLIED_HASH_ANNOTATION
        ]
        for m in first.apply
    }
    assert set(applied) == {"Service/minilm", "Deployment/minilm-triton"}
    again = _plan(spec, observed.Observed(jobs=jobs, deployment=None, applied=applied))
    assert again.apply == []
    bigger = _plan(
        _spec(resources={"requests": {"cpu": "3"}}),
        observed.Observed(jobs=jobs, deployment=None, applied=applied),
    )
    assert [m["kind"] for m in bigger.apply] == ["Deployment"]


def test_plan_uses_measurements_recorded_in_status_when_jobs_are_gone() -> None:
    spec = _spec()
    jobs = _profiled(spec, _summary(_ok("onnx-fp32", 90, 40), _ok("onnx-int8-dynamic", 20, 60)), _summary())
    first = _plan(spec, observed.Observed(jobs=jobs, deployment=None))
    assert not measure.fully_recorded(spec, first.status)  # gpu-l4 measured nothing: its Job stays needed
    cpu_only = _spec(pools=["cpu-c7i"])
    first = _plan(cpu_only, observed.Observed(jobs=jobs, deployment=None))
    assert measure.fully_recorded(cpu_only, first.status)
    # Without any Job, a stricter latency target is re-judged from the recorded numbers alone.
    stricter = models.OptimizedModelSpec.model_validate(
        cpu_only.model_dump(by_alias=True)
        | {"optimization": {**cpu_only.optimization.model_dump(by_alias=True), "latencyTargetMs": 95}}
    )
    again = _plan(stricter, observed.Observed(jobs={}, deployment=None), first.status)
    assert again.create_jobs == []
    assert {v.name: v.status for v in again.status.variants}["onnx-fp32"] == "ok"
    assert _selected(again)[0] == "onnx-int8-dynamic"


def test_plan_with_s3_store_syncs_artifacts_through_the_bucket() -> None:
    settings = config.Settings(
        artifact_store="s3", artifact_s3_uri="s3://models/thrifty", artifact_s3_secret="s3-creds"
    )
    spec = _spec(pools=["cpu-c7i"])
    digest = names.artifact_digest(spec)

    def plan(jobs: dict[str, observed.JobState]) -> planner.Plan:
        return planner.plan(
            owner=OWNER,
            generation=1,
            spec=spec,
            stored=models.OptimizedModelStatus(),
            observed=observed.Observed(jobs=jobs, deployment=None),
            catalogue=CATALOGUE,
            settings=settings,
            price_of=pool_pricing.spec_replica_price,
        )

    container = plan({}).create_jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["thrifty-store"]
    remote = f"s3://models/thrifty/{digest}"
    assert container["args"][:8] == [
        "run",
        "--pull",
        remote,
        f"/var/lib/thrifty/artifacts/{digest}",
        "--push",
        f"/var/lib/thrifty/artifacts/{digest}",
        remote,
        "--",
    ]
    assert container["args"][8:10] == ["thrifty-convert", "optimize"]
    assert {"secretRef": {"name": "s3-creds"}} in container["envFrom"]
    served = plan(_profiled(spec, _summary(_ok("onnx-int8-dynamic", 20, 60)), _summary()))
    pod = served.apply[1]["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["args"] == [
        "pull",
        f"{remote}/model_repository",
        f"/var/lib/thrifty/artifacts/{digest}/model_repository",
    ]
    assert pod["volumes"][0] == {"name": "artifacts", "emptyDir": {}}
    assert served.status.artifacts is not None and served.status.artifacts.uri == remote


def test_a_model_joins_the_owners_of_shared_jobs_it_does_not_own_yet() -> None:
    children = observed.Observed(
        jobs={
            "thrifty-convert-1": observed.JobState(phase="Succeeded", owners=("a",)),
            "thrifty-prof-cpu-1": observed.JobState(phase="Running", owners=("a", "b")),
            "thrifty-prof-gpu-1": observed.JobState(phase="Succeeded"),
        },
        deployment=None,
    )
    assert planner.jobs_to_adopt(children, "b") == ["thrifty-convert-1", "thrifty-prof-gpu-1"]
    assert planner.jobs_to_adopt(children, "a") == ["thrifty-prof-gpu-1"]


@pytest.mark.parametrize(
    ("serving", "reason", "says"),
    [
        ({"resources": {"requests": {"cpu": "8"}}}, "RequestsDoNotFit", "cpu 8, memory 2Gi"),
        ({"resources": {"requests": {"memory": "64Gi"}}}, "RequestsDoNotFit", "fit no node of pool"),
        ({"resources": {"requests": {"cpu": "0"}}}, "InvalidResources", "cpu must be at least 1m"),
        ({"resources": {"requests": {"memory": "0.5"}}}, "InvalidResources", "memory must be at least 1"),
        ({"minReplicas": 5, "maxReplicas": 2}, "InvalidSpec", "minReplicas (5) must be less than or equal"),
    ],
)
def test_an_admitted_spec_that_cannot_be_served_says_what_to_change(
    serving: dict[str, Any], reason: str, says: str
) -> None:
    plan = _plan(_spec(**serving), observed.Observed(jobs={}, deployment=None))
    assert plan.create_jobs == [] and plan.apply == []
    assert _conditions(plan)["Ready"] == ("False", reason)
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert says in ready.message
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", reason)]


def test_a_profile_summary_with_nan_is_a_failure_of_that_pool_not_a_crash() -> None:
    spec = _spec(pools=["cpu-c7i"])
    broken = (
        '{"v": 1, "variants": [{"name": "onnx-fp32", "status": "ok", "p99_ms": NaN, "throughput_per_s": 5}]}'
    )
    plan = _plan(spec, observed.Observed(jobs=_profiled(spec, broken, _summary()), deployment=None))
    assert _conditions(plan)["Optimized"] == ("False", "NoFeasibleVariant")
    optimized = next(c for c in plan.status.conditions if c.type == "Optimized")
    assert "left no readable summary" in optimized.message
