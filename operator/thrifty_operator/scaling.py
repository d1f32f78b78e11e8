"""Budget-aware scaling for one OptimizedModel: the operator's bridge to the pure cost core.

Pure: inputs are the spec, annotations, stored status, Triton load and the measured candidates; the output is
the variant, pool and replicas to run, the status `cost` and `scaling` blocks, the BudgetLimited condition and
Events. `cost.policy.decide` makes the decision; the same code runs in the simulator (`thrifty-sim`).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import conditions, config, pipeline, pricing
from .api import models
from .cost import budgets, metrics, policy
from .cost import pricing as cost_pricing

# Spec metric targets become the policy's queue-time target; the other metrics use the latency model.
_QUEUE_TIME = "QueueTime"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inputs:
    """Everything one scaling decision reads."""

    now: datetime.datetime
    spec: models.OptimizedModelSpec
    annotations: Mapping[str, str]
    namespace_annotations: Mapping[str, str]
    namespace_demand: Mapping[str, float]
    """Hourly rate per model of the namespace (this one included), to split a shared namespace budget."""
    model: str
    stored_status: Mapping[str, Any]
    candidates: Sequence[pipeline.Candidate]
    load: metrics.LoadSample | None
    ready_replicas: int | None
    sync_seconds: float = 30.0
    """How often decisions come: a fleet chosen now runs at least that long plus the 60-s billing minimum."""


def _key(c: pipeline.Candidate) -> str:
    return f"{c.result.name}@{c.pool.name}"


def _policy_variants(
    spec: models.OptimizedModelSpec, options: Sequence[pipeline.Candidate]
) -> list[policy.Variant]:
    requests = spec.serving.resources.requests
    out = []
    # The policy breaks cost ties by order: cheapest per million inferences first.
    ranked = sorted(options, key=lambda c: (c.cost_per_million is None, c.cost_per_million or 0))
    for c in ranked:
        if not c.feasible or not c.result.throughput_per_s:
            continue
        out.append(
            policy.Variant(
                name=_key(c),
                pool=c.pool.name,
                request=pricing.replica_request(c.pool, requests.cpu, requests.memory),
                throughput_per_s=c.result.throughput_per_s,
                latency_p50_ms=c.result.p50_ms or c.result.p99_ms or 1.0,
                latency_p99_ms=c.result.p99_ms or 1.0,
            )
        )
    return out


def _budget_conditions(
    errors: Sequence[budgets.BudgetError], decision: policy.Decision | None, effective: budgets.Budget
) -> tuple[list[conditions.Condition], list[pipeline.Event]]:
    events = [pipeline.Event(type="Warning", reason=e.reason.value, message=e.message) for e in errors]
    if errors:
        first = errors[0]
        return [
            conditions.Condition(
                type="BudgetLimited", status="Unknown", reason=first.reason.value, message=first.message
            )
        ], events
    if decision is not None and decision.budget_limited:
        gave_up = decision.given_up[0]
        message = "; ".join(g.message for g in decision.given_up)
        events.append(pipeline.Event(type="Warning", reason=gave_up.reason, message=message))
        return [
            conditions.Condition(type="BudgetLimited", status="True", reason=gave_up.reason, message=message)
        ], events
    why = "no budget annotations" if effective.unlimited else "spend fits within the budget"
    return [
        conditions.Condition(type="BudgetLimited", status="False", reason="WithinBudget", message=why)
    ], events


def _budget_text(b: budgets.Budget) -> str | None:
    parts = []
    if b.per_hour is not None:
        parts.append(f"{b.per_hour:g}/h")
    if b.per_month is not None:
        parts.append(f"{b.per_month:g}/month")
    return ", ".join(parts) or None


def _compact(state: dict[str, Any], points: int = 32) -> dict[str, Any]:
    """Bound the demand history kept in status: per time bucket keep its peak, which is all the scale-down
    stabilization needs (it scales down to the window's highest demand)."""
    history = state.get("demandHistory") or []
    if len(history) <= points:
        return state
    start, end = history[0][0], history[-1][0]
    width = (end - start) / points or 1.0
    buckets: dict[int, list[float]] = {}
    for t, demand in history:
        key = min(int((t - start) / width), points - 1)
        kept = buckets.get(key)
        if kept is None or demand >= kept[1]:
            buckets[key] = [t, demand]
    return state | {"demandHistory": [buckets[k] for k in sorted(buckets)]}


def decide(
    inputs: Inputs, catalogue: config.PoolCatalogue, default: pipeline.Candidate
) -> pipeline.ScaleChoice:
    """Variant, pool and replicas under the budgets, plus the cost accounting to store."""
    spec = inputs.spec
    epoch = inputs.now.timestamp()
    own, errors = budgets.parse_budget(inputs.annotations)
    shared, ns_errors = budgets.parse_budget(inputs.namespace_annotations)
    effective = own
    if not shared.unlimited:
        demand = dict(inputs.namespace_demand) or {inputs.model: 1.0}
        demand.setdefault(inputs.model, 0.0)
        share = budgets.split_namespace_budget(shared, {k: max(v, 1e-6) for k, v in demand.items()})
        effective = budgets.combine(own, share[inputs.model])
    stored_cost = inputs.stored_status.get("cost") or {}
    spend = cost_pricing.SpendState.from_status(stored_cost.get("spend"), inputs.now)
    spend = cost_pricing.accrue(spend, inputs.now, spend.rate_per_hour)
    pools = {p.name: pricing.pool_price(p) for p in catalogue.pools}
    variants = _policy_variants(spec, inputs.candidates)
    stored_scaling = inputs.stored_status.get("scaling") or {}
    state = policy.PolicyState.from_status(stored_scaling.get("state"))
    decision: policy.Decision | None = None
    if variants:
        cfg = policy.PolicyConfig(
            slo_p99_ms=float(spec.optimization.latency_target_ms),
            min_replicas=spec.serving.min_replicas,
            max_replicas=spec.serving.max_replicas,
            suspended=spec.suspend,
            queue_time_target_us=float(spec.scaling.target) if spec.scaling.metric == _QUEUE_TIME else None,
            scale_down_stabilization_s=float(spec.scaling.scale_down_stabilization_seconds),
            commitment_s=inputs.sync_seconds + 60.0,
        )
        if not state.variant:
            # First decision: start from the cost-per-inference choice, not from nothing.
            state = dataclasses.replace(state, variant=_key(default), variant_since=epoch)
        obs = policy.Observation(
            now=epoch,
            load=inputs.load,
            month_to_date=spend.month_to_date,
            hours_left=cost_pricing.hours_left_in_month(inputs.now),
            ready_replicas=inputs.ready_replicas,
        )
        decision = policy.decide(cfg, variants, pools, effective, state, obs)
    by_key = {_key(c): c for c in inputs.candidates}
    chosen = by_key.get(decision.variant) if decision else None
    chosen = chosen or default
    replicas = decision.replicas if decision else (0 if spec.suspend else max(spec.serving.min_replicas, 1))
    rate = decision.rate_per_hour if decision else 0.0
    spend = cost_pricing.accrue(spend, inputs.now, rate)
    conds, events = _budget_conditions((*errors, *ns_errors), decision, effective)
    previous = conditions.find(inputs.stored_status.get("conditions") or [], "BudgetLimited")
    if previous and (previous.get("status"), previous.get("reason")) == (conds[0].status, conds[0].reason):
        # Budget Events mark transitions; a budget that keeps binding is in the condition, not an Event storm.
        events = []
    if decision and decision.reason in ("ScaledUp", "ScaledDown", "VariantSwitched"):
        events.append(pipeline.Event(type="Normal", reason=decision.reason, message=decision.message))
    allowed = decision.allowed_rate_per_hour if decision else math.inf
    cost = {
        "currency": catalogue.currency,
        "ratePerHour": f"{rate:.4f}",
        "monthToDate": f"{spend.month_to_date:.4f}",
        "projectedMonthEnd": f"{cost_pricing.projected_month_end(spend, inputs.now):.4f}",
        "month": spend.month,
        "lastAccounted": inputs.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spend": spend.to_status(),
    }
    if (text := _budget_text(effective)) is not None:
        cost["budget"] = text
    if math.isfinite(allowed):
        cost["allowedRatePerHour"] = f"{allowed:.4f}"
    scaling = {
        "replicas": replicas,
        "reason": decision.reason if decision else "NoFeasibleVariant",
        "message": (decision.message if decision else "no feasible variant to scale")[:1024],
        "state": _compact(decision.state.to_status()) if decision else {},
    }
    return pipeline.ScaleChoice(
        variant=chosen.result.name,
        pool=chosen.pool.name,
        replicas=replicas,
        cost=cost,
        scaling=scaling,
        conditions=conds,
        events=events,
    )
