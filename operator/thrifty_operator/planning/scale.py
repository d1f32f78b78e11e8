"""The scale phase: variant, pool and replicas under the budgets, with the cost accounting to store.

Pure: inputs are the spec, the budget annotations, the stored status, Triton's load and the measured
candidates; the output is what to run, the status `cost` and `scaling` blocks, the BudgetLimited condition and
Events. `cost.policy.decide` makes the decision; the simulator (`thrifty-sim`) runs this whole phase.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence
from typing import Any

from thrifty_api import optimized_model as models
from thrifty_api import pools

from .. import conditions, pool_pricing
from ..cost import budgets, policy
from ..cost import pricing as cost_pricing
from .events import Event
from .measure import Candidate
from .observed import Load

# Spec metric targets become the policy's queue-time target; the other metrics use the latency model.
_QUEUE_TIME = "QueueTime"
# BudgetLimited turns False only after the budget has not bound for this long.
BUDGET_LIMITED_HOLD_S = 900.0
_LIMITED_AT = "budgetLimitedAt"
# ScalingActive turns False once Triton's load has been missing through a failure for this long: a new pod's
# first scrape, or Prometheus' first rate window, is not a failure.
METRICS_GRACE_S = 120.0
_LOAD_MISSING_SINCE = "loadMissingSince"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScaleChoice:
    """The budget-aware scaler's decision and what to record of it."""

    variant: str
    pool: str
    replicas: int
    cost: models.Cost
    scaling: models.ScalingStatus
    conditions: list[conditions.Condition]
    events: list[Event]
    keep_previous_until_ready: bool = False
    """The previous variant's fleet serves, and is billed and accounted, until the new one is ready (a switch
    the budget pays for twice during the start-up); the simulator drops the old fleet once this is False."""


def _policy_variants(spec: models.OptimizedModelSpec, options: Sequence[Candidate]) -> list[policy.Variant]:
    requests = spec.serving.resources.requests
    # The policy breaks cost ties by order: cheapest per million inferences first.
    ranked = sorted(options, key=lambda c: (c.cost_per_million is None, c.cost_per_million or 0))
    out = []
    for c in ranked:
        if not c.feasible or not c.result.throughput_per_s:
            continue
        out.append(
            policy.Variant(
                name=c.key,
                pool=c.pool.name,
                request=pool_pricing.replica_request(c.pool, requests.cpu, requests.memory),
                throughput_per_s=c.result.throughput_per_s,
                latency_p50_ms=c.result.p50_ms or c.result.p99_ms or 1.0,
                latency_p99_ms=c.result.p99_ms or 1.0,
            )
        )
    return out


def _budget_conditions(
    errors: Sequence[budgets.BudgetError], decision: policy.Decision | None, effective: budgets.Budget
) -> tuple[conditions.Condition, list[Event]]:
    events = [Event(type="Warning", reason=e.reason.value, message=e.message) for e in errors]
    if errors:
        first = errors[0]
        return conditions.Condition(
            type="BudgetLimited", status="Unknown", reason=first.reason.value, message=first.message
        ), events
    if decision is not None and decision.budget_limited:
        gave_up = decision.given_up[0]
        message = "; ".join(g.message for g in decision.given_up)
        events.append(Event(type="Warning", reason=gave_up.reason, message=message))
        return conditions.Condition(
            type="BudgetLimited", status="True", reason=gave_up.reason, message=message
        ), events
    why = "no budget annotations" if effective.unlimited else "spend fits within the budget"
    return conditions.Condition(
        type="BudgetLimited", status="False", reason="WithinBudget", message=why
    ), events


def _budget_text(b: budgets.Budget) -> str | None:
    parts = []
    if b.per_hour is not None:
        parts.append(f"{b.per_hour:g}/h")
    if b.per_month is not None:
        parts.append(f"{b.per_month:g}/month")
    return ", ".join(parts) or None


def compact(state: dict[str, Any], points: int = 32) -> dict[str, Any]:
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


def _steady(
    computed: conditions.Condition,
    previous: models.Condition | None,
    limited_at: float | None,
    now: datetime.datetime,
) -> conditions.Condition:
    """BudgetLimited without flapping: once True it stays True until the budget has not bound for
    `BUDGET_LIMITED_HOLD_S`, and an unchanged status and reason keep the message of their transition (its
    figures move every pass; `cost` and `scaling` carry the live ones)."""
    if previous is None:
        return computed
    recent = limited_at is not None and now.timestamp() - float(limited_at) < BUDGET_LIMITED_HOLD_S
    if computed.status == "False" and previous.status == "True" and recent:
        return conditions.Condition(
            type=computed.type, status="True", reason=previous.reason, message=previous.message
        )
    if (previous.status, previous.reason) == (computed.status, computed.reason):
        return dataclasses.replace(computed, message=previous.message)
    return computed


def _memory(
    decision: policy.Decision | None, limited_at: float | None, missing_since: float | None
) -> dict[str, Any]:
    """The policy's memory between decisions, when the budget last bound (for `_steady`) and since when the
    load has been missing (for `_scaling_active`)."""
    state = compact(decision.state.to_status()) if decision else {}
    if limited_at is not None:
        state[_LIMITED_AT] = round(limited_at, 3)
    if missing_since is not None:
        state[_LOAD_MISSING_SINCE] = round(missing_since, 3)
    return state


def _scaling_active(
    load: Load, previous: models.Condition | None, missing_since: float | None, replicas: int
) -> tuple[conditions.Condition | None, float | None]:
    """ScalingActive (as HPA names it): whether the scaler sees Triton's load, and since when it has not.

    None keeps the stored condition: a missing sample without a failure (a first scrape), or a failure
    younger than `METRICS_GRACE_S`, changes nothing yet. Without load the policy holds the fleet.
    """
    now = load.now.timestamp()
    if load.sample is not None:
        active = conditions.Condition(
            type="ScalingActive",
            status="True",
            reason="LoadObserved",
            message="the scaler reads Triton's load",
        )
        return active, None
    if load.load_error is None:
        return None, missing_since
    since = now if missing_since is None else float(missing_since)
    if now - since < METRICS_GRACE_S:
        return None, since
    if previous is not None and (previous.status, previous.reason) == ("False", "MetricsUnavailable"):
        return conditions.Condition(
            type="ScalingActive", status="False", reason="MetricsUnavailable", message=previous.message
        ), since
    started = datetime.datetime.fromtimestamp(since, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    message = (
        f"no load since {started} UTC: {load.load_error}; holding {replicas} replicas (the scaler does not "
        "scale down without metrics; the budget still binds)"
    )
    return conditions.Condition(
        type="ScalingActive", status="False", reason="MetricsUnavailable", message=message
    ), since


def effective_budget(model: str, load: Load) -> tuple[budgets.Budget, list[budgets.BudgetError]]:
    """The model's own budget combined with its share of the namespace's, and every annotation error."""
    own, errors = budgets.parse_budget(load.annotations)
    shared, ns_errors = budgets.parse_budget(load.namespace_annotations)
    if shared.unlimited:
        return own, [*errors, *ns_errors]
    demand = dict(load.namespace_demand) or {model: 1.0}
    demand.setdefault(model, 0.0)
    share = budgets.split_namespace_budget(shared, {k: max(v, 1e-6) for k, v in demand.items()})
    return budgets.combine(own, share[model]), [*errors, *ns_errors]


def _policy_config(spec: models.OptimizedModelSpec, load: Load) -> policy.PolicyConfig:
    return policy.PolicyConfig(
        slo_p99_ms=float(spec.optimization.latency_target_ms),
        min_replicas=spec.serving.min_replicas,
        max_replicas=spec.serving.max_replicas,
        suspended=spec.suspend,
        queue_time_target_us=float(spec.scaling.target) if spec.scaling.metric == _QUEUE_TIME else None,
        scale_down_stabilization_s=float(spec.scaling.scale_down_stabilization_seconds),
        commitment_s=load.sync_seconds + 60.0,
    )


def _cost(
    currency: str,
    spend: cost_pricing.SpendState,
    now: datetime.datetime,
    rate: float,
    effective: budgets.Budget,
    allowed: float,
) -> models.Cost:
    return models.Cost(
        currency=currency,
        rate_per_hour=f"{rate:.4f}",
        month_to_date=f"{spend.month_to_date:.4f}",
        projected_month_end=f"{cost_pricing.projected_month_end(spend, now):.4f}",
        month=spend.month,
        last_accounted=now.replace(microsecond=0),
        spend=models.SpendRecord.model_validate(spend.to_status()),
        budget=_budget_text(effective),
        allowed_rate_per_hour=f"{allowed:.4f}" if math.isfinite(allowed) else None,
    )


def decide(
    *,
    model: str,
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    load: Load,
    options: Sequence[Candidate],
    catalogue: pools.PoolCatalogue,
    default: Candidate,
) -> ScaleChoice:
    """Variant, pool and replicas under the budgets, plus the cost accounting to store."""
    effective, errors = effective_budget(model, load)
    last_spend = stored.cost.spend if stored.cost else None
    spend = cost_pricing.SpendState.from_status(
        last_spend.model_dump(by_alias=True) if last_spend else None, load.now
    )
    spend = cost_pricing.accrue(spend, load.now, spend.rate_per_hour)
    remembered = load.remembered or stored.scaling
    state = policy.PolicyState.from_status(remembered.state if remembered else None)
    variants = _policy_variants(spec, options)
    decision: policy.Decision | None = None
    if variants:
        if not state.variant:
            # First decision: start from the cost-per-inference choice, not from nothing.
            state = dataclasses.replace(state, variant=default.key, variant_since=load.now.timestamp())
        obs = policy.Observation(
            now=load.now.timestamp(),
            load=load.sample,
            month_to_date=spend.month_to_date,
            hours_left=cost_pricing.hours_left_in_month(load.now),
            ready_replicas=load.ready_replicas,
        )
        pool_prices = {p.name: pool_pricing.pool_price(p) for p in catalogue.pools}
        decision = policy.decide(_policy_config(spec, load), variants, pool_prices, effective, state, obs)
    return _choice(spec, stored, load, options, catalogue, default, effective, errors, spend, decision)


def _choice(
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    load: Load,
    options: Sequence[Candidate],
    catalogue: pools.PoolCatalogue,
    default: Candidate,
    effective: budgets.Budget,
    errors: Sequence[budgets.BudgetError],
    spend: cost_pricing.SpendState,
    decision: policy.Decision | None,
) -> ScaleChoice:
    """What to record of a decision (or of having no feasible variant to decide on)."""
    chosen = next((c for c in options if decision and c.key == decision.variant), default)
    replicas = decision.replicas if decision else (0 if spec.suspend else max(spec.serving.min_replicas, 1))
    rate = decision.rate_per_hour if decision else 0.0
    spend = cost_pricing.accrue(spend, load.now, rate)
    budget_limited, events = _budget_conditions(errors, decision, effective)
    previous = conditions.find(stored.conditions, "BudgetLimited")
    remembered = load.remembered or stored.scaling
    last_limited = (remembered.state or {}).get(_LIMITED_AT) if remembered else None
    limited_at = load.now.timestamp() if decision and decision.budget_limited else last_limited
    # A budget the user changed is judged afresh: the hold is for a budget that flaps, not for a raise.
    changed = stored.cost is not None and stored.cost.budget != _budget_text(effective)
    budget_limited = _steady(budget_limited, previous, None if changed else limited_at, load.now)
    if previous and (previous.status, previous.reason) == (budget_limited.status, budget_limited.reason):
        # Budget Events mark transitions; a budget that keeps binding is in the condition, not an Event storm.
        events = []
    last_missing = (remembered.state or {}).get(_LOAD_MISSING_SINCE) if remembered else None
    stored_active = conditions.find(stored.conditions, "ScalingActive")
    active, missing_since = _scaling_active(
        load,
        stored_active,
        float(last_missing) if isinstance(last_missing, int | float) else None,
        replicas,
    )
    was_active = stored_active is None or stored_active.status != "False"
    if active is not None and active.status == "False" and was_active:
        events.append(Event(type="Warning", reason=active.reason, message=active.message))
    elif active is not None and active.status == "True" and not was_active:
        events.append(
            Event(type="Normal", reason="MetricsRestored", message="the scaler reads Triton's load again")
        )
    if decision and decision.reason in ("ScaledUp", "ScaledDown", "VariantSwitched"):
        events.append(Event(type="Normal", reason=decision.reason, message=decision.message))
    allowed = decision.allowed_rate_per_hour if decision else math.inf
    scaling = models.ScalingStatus(
        variant=chosen.result.name,
        pool=chosen.pool.name,
        replicas=replicas,
        reason=decision.reason if decision else "NoFeasibleVariant",
        message=(decision.message if decision else "no feasible variant to scale")[:1024],
        state=_memory(decision, limited_at, missing_since),
    )
    return ScaleChoice(
        variant=chosen.result.name,
        pool=chosen.pool.name,
        replicas=replicas,
        cost=_cost(catalogue.currency, spend, load.now, rate, effective, allowed),
        scaling=scaling,
        conditions=[budget_limited] if active is None else [budget_limited, active],
        events=events,
        keep_previous_until_ready=bool(decision and decision.state.draining is not None),
    )
