"""Status writes of an idle model: at most 6 an hour (issue 17: 17 versions in 10 minutes before).

The planner and the handler's write rule (`status_io.changes`) run every 30 s of simulated time over two
hours, with the status stored and read back as on the cluster and the policy's memory carried between passes
as the operator's memo carries it; the second hour is counted.
"""

from __future__ import annotations

import datetime
import json
import pathlib

import pytest
import yaml

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import conditions, config, manifests, names, pool_pricing, status_io
from thrifty_operator.cost import metrics
from thrifty_operator.planning import observed, scale
from thrifty_operator.planning import plan as planner

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = pools.parse((ROOT / "config" / "pools.local.yaml").read_text())
SETTINGS = config.Settings()
OWNER = manifests.Owner(name="search", namespace="shop", uid="uid-1")
T0 = datetime.datetime(2026, 11, 10, 8, 0, tzinfo=datetime.UTC)
PASS_SECONDS = 30


def _spec() -> models.OptimizedModelSpec:
    raw = yaml.safe_load((ROOT / "examples" / "minilm.yaml").read_text())["spec"]
    raw["serving"] |= {"pools": ["cpu-c7i"], "minReplicas": 1, "maxReplicas": 4}
    return models.OptimizedModelSpec.model_validate(raw)


def _jobs(spec: models.OptimizedModelSpec) -> dict[str, observed.JobState]:
    digest = names.artifact_digest(spec)
    row = {"name": "onnx-int8-dynamic", "status": "ok", "p50_ms": 8, "p99_ms": 20, "throughput_per_s": 40}
    summary = json.dumps({"v": 1, "variants": [row]})
    return {
        names.convert_job(digest): observed.JobState(phase="Succeeded", message=summary),
        names.profile_job("cpu-c7i", digest): observed.JobState(phase="Succeeded", message=summary),
    }


def _writes(annotations: dict[str, str], rates: list[float]) -> list[list[str]]:
    """The status keys written per pass of the second hour, for request rates repeated pass by pass."""
    spec, stored = _spec(), dict[str, object]()
    jobs = _jobs(spec)
    memory: models.ScalingStatus | None = None
    deployment: observed.DeploymentState | None = None
    applied: dict[str, str] = {}
    written: list[list[str]] = []
    passes = 2 * 3600 // PASS_SECONDS
    for i in range(passes):
        now = T0 + datetime.timedelta(seconds=PASS_SECONDS * i)
        load = observed.Load(
            now=now,
            annotations=annotations,
            namespace_annotations={},
            namespace_demand={},
            sample=metrics.LoadSample(request_rate=rates[i % len(rates)]),
            ready_replicas=deployment.ready_replicas if deployment else 0,
            remembered=memory,
        )
        result = planner.plan(
            owner=OWNER,
            generation=1,
            spec=spec,
            stored=status_io.read(stored),
            observed=observed.Observed(jobs=jobs, deployment=deployment, applied=applied),
            catalogue=CATALOGUE,
            settings=SETTINGS,
            price_of=pool_pricing.spec_replica_price,
            load=load,
        )
        memory = result.status.scaling
        applied |= {f"{m['kind']}/{m['metadata']['name']}": manifests.stamp(m) for m in result.apply}
        selected, replicas = result.status.selected, result.status.replicas
        assert selected is not None and replicas is not None
        # The Deployment follows at once: every requested replica is ready by the next pass.
        deployment = observed.DeploymentState(
            replicas=replicas.desired,
            ready_replicas=replicas.desired,
            updated_replicas=replicas.desired,
            variant=selected.variant,
            pool=selected.pool,
            rolled_out=True,
        )
        new = status_io.dump(result.status)
        changes = status_io.changes(stored, new, now, SETTINGS.cost_update_interval_seconds)
        stored = {**stored, **changes}
        if i >= passes // 2:
            written.append(sorted(changes))
    return written


def test_an_idle_model_without_budget_writes_its_status_at_most_6_times_an_hour() -> None:
    writes = [w for w in _writes({}, [0.0]) if w]
    assert len(writes) <= 6, writes


@pytest.mark.parametrize(
    "rates", [[0.0], [0.0, 0.0, 0.0, 35.0], [1.0, 60.0]], ids=["idle", "blips", "bursts"]
)
def test_a_binding_budget_keeps_its_condition_steady_and_writes_stay_few(rates: list[float]) -> None:
    # 0.05/h pays for less than the one replica minReplicas keeps: the budget binds on every pass.
    writes = [w for w in _writes({models.BUDGET_PER_HOUR_ANNOTATION: "0.05"}, rates) if w]
    assert len(writes) <= 6, writes


def test_budget_limited_stays_true_until_the_budget_has_not_bound_for_the_hold_time() -> None:
    stored = models.OptimizedModelStatus.model_validate(
        {
            "conditions": [
                {
                    "type": "BudgetLimited",
                    "status": "True",
                    "reason": "FewerReplicas",
                    "message": "runs 1 of onnx-int8-dynamic instead of 3",
                    "lastTransitionTime": "2026-11-10T08:00:00Z",
                }
            ]
        }
    )
    free = conditions.Condition(
        type="BudgetLimited", status="False", reason="WithinBudget", message="spend fits within the budget"
    )
    previous = stored.conditions[0]
    bound_at = T0.timestamp()
    soon = T0 + datetime.timedelta(seconds=scale.BUDGET_LIMITED_HOLD_S - 30)
    later = T0 + datetime.timedelta(seconds=scale.BUDGET_LIMITED_HOLD_S + 30)
    held = scale._steady(free, previous, bound_at, soon)
    assert (held.status, held.reason, held.message) == ("True", "FewerReplicas", previous.message)
    assert scale._steady(free, previous, bound_at, later).status == "False"
