"""Status writes of an idle model: at most 6 an hour (issue 17: 17 versions in 10 minutes before); and a
metrics outage: the fleet holds, one condition says so, and the status stays as quiet.

The planner and the handler's write rule (`status_io.changes`) run every 30 s of simulated time over two
hours, with the status stored and read back as on the cluster and the policy's memory carried between passes
as the operator's memo carries it; the second hour is counted.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import Callable

import pytest
import yaml

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import conditions, config, manifests, names, pool_pricing, status_io
from thrifty_operator.cost import budgets, metrics, policy
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


Sample = tuple[metrics.LoadSample | None, str | None]


def _passes(
    annotations: dict[str, str], sample_at: Callable[[int], Sample], hours: int = 2
) -> list[tuple[planner.Plan, dict[str, object]]]:
    """Every timer pass: the plan and the status keys written, for Triton's load (and why it is missing)
    pass by pass."""
    spec, stored = _spec(), dict[str, object]()
    jobs = _jobs(spec)
    memory: models.ScalingStatus | None = None
    deployment: observed.DeploymentState | None = None
    applied: dict[str, str] = {}
    out: list[tuple[planner.Plan, dict[str, object]]] = []
    for i in range(hours * 3600 // PASS_SECONDS):
        now = T0 + datetime.timedelta(seconds=PASS_SECONDS * i)
        sample, error = sample_at(i)
        load = observed.Load(
            now=now,
            annotations=annotations,
            namespace_annotations={},
            namespace_demand={},
            sample=sample,
            load_error=error,
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
        out.append((result, changes))
    return out


def _writes(annotations: dict[str, str], rates: list[float]) -> list[list[str]]:
    """The status keys written per pass of the second hour, for request rates repeated pass by pass."""
    passes = _passes(annotations, lambda i: (metrics.LoadSample(request_rate=rates[i % len(rates)]), None))
    return [sorted(changes) for _, changes in passes[len(passes) // 2 :]]


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


def _replicas(plan: planner.Plan) -> int:
    assert plan.status.replicas is not None
    return plan.status.replicas.desired


def _active(plan: planner.Plan) -> tuple[str, str] | None:
    found = conditions.find(plan.status.conditions, "ScalingActive")
    return (found.status, found.reason) if found else None


@pytest.mark.parametrize(
    "error",
    [
        "Prometheus at http://prometheus.monitoring:9090: connection refused",
        "Triton's metrics port 8002 unreachable on every ready pod (triton-0: timed out)",
    ],
    ids=["prometheus-down", "triton-metrics-missing"],
)
def test_a_metrics_outage_holds_the_fleet_says_so_once_and_recovers(error: str) -> None:
    # 100 req/s for the first half hour (3 replicas of 40/s), then 30 minutes without metrics, then load.
    outage = range(60, 120)

    def sample_at(i: int) -> Sample:
        if i in outage:
            return None, error
        return metrics.LoadSample(request_rate=100.0 if i < 60 else 10.0), None

    passes = _passes({}, sample_at)
    before = _replicas(passes[59][0])
    assert before >= 3
    assert _active(passes[59][0]) == ("True", "LoadObserved")
    during = passes[60:120]
    # The scaler never scales down blindly: the demand it last saw holds the fleet.
    assert {_replicas(p) for p, _ in during} == {before}
    grace = int(scale.METRICS_GRACE_S // PASS_SECONDS)
    assert [_active(p) for p, _ in during[:grace]] == [("True", "LoadObserved")] * grace
    assert {_active(p) for p, _ in during[grace:]} == {("False", "MetricsUnavailable")}
    down = conditions.find(during[-1][0].status.conditions, "ScalingActive")
    assert down is not None and error in down.message and f"holding {before} replicas" in down.message
    warnings = [e for p, _ in during for e in p.events if e.reason == "MetricsUnavailable"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    # One write for the transition; the message does not move while the outage lasts.
    condition_writes = [c for _, c in during if "conditions" in c]
    assert len(condition_writes) == 1
    after = passes[120:]
    assert _active(after[0][0]) == ("True", "LoadObserved")
    assert [e.reason for e in after[0][0].events if e.reason == "MetricsRestored"] == ["MetricsRestored"]
    # With the low load back, the fleet shrinks only through the usual stabilization.
    assert _replicas(after[-1][0]) < before


def test_a_first_scrape_without_a_rate_changes_no_condition() -> None:
    def sample_at(i: int) -> Sample:
        return (None, None) if i % 2 else (metrics.LoadSample(request_rate=20.0), None)

    passes = _passes({}, sample_at, hours=1)
    assert {_active(p) for p, _ in passes[1:]} == {("True", "LoadObserved")}


def test_without_metrics_and_without_memory_the_scaler_keeps_what_runs() -> None:
    """An operator restart that lost its memory while Prometheus is down: no demand seen, none measured."""
    cpu = CATALOGUE.get("cpu-c7i")
    assert cpu is not None
    state = policy.PolicyState(variant="onnx-int8-dynamic@cpu-c7i", replicas=3)
    variants = [
        policy.Variant(
            name="onnx-int8-dynamic@cpu-c7i",
            pool="cpu-c7i",
            request=pool_pricing.replica_request(cpu, "2", "2Gi"),
            throughput_per_s=40.0,
            latency_p50_ms=8.0,
            latency_p99_ms=20.0,
        )
    ]
    config_ = policy.PolicyConfig(slo_p99_ms=50.0, min_replicas=1, max_replicas=4)
    prices = {p.name: pool_pricing.pool_price(p) for p in CATALOGUE.pools}
    obs = policy.Observation(now=T0.timestamp(), load=None, ready_replicas=3)
    decision = policy.decide(config_, variants, prices, budgets.Budget(), state, obs)
    assert decision.replicas == 3
