"""The operator's budget-aware scaling step: budgets, degrade order, spend accounting, conditions."""

from __future__ import annotations

import datetime
import pathlib
from decimal import Decimal
from typing import Any

import yaml

from thrifty_api import job_summary, pools
from thrifty_api import optimized_model as models
from thrifty_operator import pool_pricing, status_io
from thrifty_operator.cost import metrics
from thrifty_operator.planning import measure, observed, scale, selection

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = pools.PoolCatalogue.model_validate(yaml.safe_load((ROOT / "config/pools.local.yaml").read_text()))
NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def _spec(**serving: Any) -> models.OptimizedModelSpec:
    raw = yaml.safe_load((ROOT / "examples/minilm.yaml").read_text())["spec"]
    raw["serving"].update(serving)
    return models.OptimizedModelSpec.model_validate(raw)


def _candidates(spec: models.OptimizedModelSpec) -> list[measure.Candidate]:
    cpu, gpu = CATALOGUE.get("cpu-c7i"), CATALOGUE.get("gpu-l4")
    assert cpu and gpu
    measured = [
        (
            cpu,
            job_summary.JobSummary(
                variants=[
                    job_summary.VariantResult(
                        name="onnx-int8-dynamic", status="ok", p50_ms=8, p99_ms=20, throughput_per_s=40
                    )
                ]
            ),
        ),
        (
            gpu,
            job_summary.JobSummary(
                variants=[
                    job_summary.VariantResult(
                        name="tensorrt-fp16", status="ok", p50_ms=1, p99_ms=3, throughput_per_s=2000
                    )
                ]
            ),
        ),
    ]
    return measure.candidates(spec, measured, pool_pricing.spec_replica_price)


def _decide(
    spec: models.OptimizedModelSpec,
    *,
    annotations: dict[str, str] | None = None,
    load: float = 0.0,
    status: dict[str, Any] | None = None,
    namespace: dict[str, str] | None = None,
) -> scale.ScaleChoice:
    options = _candidates(spec)
    default = selection.cheapest(spec, options)
    assert default is not None
    observation = observed.Load(
        now=NOW,
        annotations=annotations or {},
        namespace_annotations=namespace or {},
        namespace_demand={"minilm": 1.0, "other": 1.0} if namespace else {},
        sample=metrics.LoadSample(request_rate=load),
        ready_replicas=1,
    )
    return scale.decide(
        model="minilm",
        spec=spec,
        stored=status_io.read(status or {}),
        load=observation,
        options=options,
        catalogue=CATALOGUE,
        default=default,
    )


def _condition(choice: scale.ScaleChoice) -> tuple[str, str]:
    (cond,) = [c for c in choice.conditions if c.type == "BudgetLimited"]
    return cond.status, cond.reason


def test_scaling_without_budget_reports_within_budget_and_costs() -> None:
    choice = _decide(_spec())
    assert _condition(choice) == ("False", "WithinBudget")
    assert choice.replicas >= 1
    assert Decimal(choice.cost.rate_per_hour) > 0
    assert choice.cost.budget is None and choice.cost.allowed_rate_per_hour is None
    assert choice.cost.month == "2026-11"


def test_scaling_under_tight_hourly_budget_degrades_to_cpu_and_says_why() -> None:
    # 300 req/s: one GPU node (~0.98/h) would do; 0.60/h only pays for CPU replicas, and not enough of them.
    choice = _decide(_spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "0.60"}, load=300)
    assert choice.pool == "cpu-c7i"
    assert Decimal(choice.cost.rate_per_hour) <= Decimal("0.60")
    status, reason = _condition(choice)
    assert status == "True"
    assert reason in {"CheaperVariant", "FewerReplicas"}
    assert any(e.type == "Warning" and e.reason == reason for e in choice.events)
    assert choice.cost.budget == "0.6/h"


def test_scaling_scales_up_when_budget_is_raised() -> None:
    tight = _decide(_spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "0.60"}, load=300)
    raised = _decide(_spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "20"}, load=300)
    assert _condition(raised) == ("False", "WithinBudget")
    assert raised.replicas >= 1 and (raised.pool, raised.replicas) != (tight.pool, tight.replicas)


def test_scaling_reports_malformed_budget_without_crashing() -> None:
    choice = _decide(_spec(), annotations={"thrifty.dev/budget-per-hour": "cheap"})
    status, reason = _condition(choice)
    assert status == "Unknown" and reason.startswith("Budget")
    assert choice.events[0].type == "Warning"


def test_scaling_splits_namespace_budget_between_models() -> None:
    alone = _decide(_spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "2"}, load=300)
    shared = _decide(_spec(maxReplicas=20), namespace={"thrifty.dev/budget-per-hour": "2"}, load=300)
    assert shared.cost.budget == "1/h"
    assert Decimal(shared.cost.rate_per_hour) <= Decimal("1")
    assert alone.cost.budget == "2/h"


def test_scaling_accrues_month_to_date_across_passes() -> None:
    earlier = {
        "cost": {
            "ratePerHour": "0.5000",
            "monthToDate": "10.0000",
            "projectedMonthEnd": "10.0000",
            "spend": {
                "month": "2026-11",
                "monthToDate": "10.0",
                "accountedAt": (NOW - datetime.timedelta(hours=2)).isoformat(),
                "ratePerHour": "0.5",
            },
        }
    }
    choice = _decide(_spec(), status=earlier)
    assert Decimal(choice.cost.month_to_date) == Decimal("11.0000")
    assert Decimal(choice.cost.projected_month_end) > Decimal("11")


def test_scaling_keeps_minimum_replicas_when_budget_is_below_it() -> None:
    choice = _decide(_spec(minReplicas=2, maxReplicas=4), annotations={"thrifty.dev/budget-per-hour": "0.01"})
    assert choice.replicas == 2
    assert _condition(choice)[0] == "True"


def test_scaling_keeps_status_small_by_compacting_demand_history() -> None:
    history = [[1000.0 + i, float(i % 7)] for i in range(400)]
    compact = scale.compact({"demandHistory": history})
    assert len(compact["demandHistory"]) <= 32
    assert max(d for _, d in compact["demandHistory"]) == 6.0


def test_scaling_posts_budget_events_only_on_transitions() -> None:
    first = _decide(_spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "0.60"}, load=300)
    assert any(e.type == "Warning" for e in first.events)
    (cond,) = [c for c in first.conditions if c.type == "BudgetLimited"]
    stored = {
        "conditions": [
            {
                "type": "BudgetLimited",
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": NOW.isoformat(),
            }
        ]
    }
    again = _decide(
        _spec(maxReplicas=20), annotations={"thrifty.dev/budget-per-hour": "0.60"}, load=300, status=stored
    )
    assert not any(e.reason == cond.reason for e in again.events)
    assert _condition(again)[0] == "True"
