"""Thrifty in the simulator through the operator's own timer pass: `planning.scale.decide` on the stored
status, with the status dumped, filtered by the handler's write rule and read back between decisions.

What runs as on the cluster: the budget parsed from annotations; the spend accounting kept in
`status.cost.spend` (the policy sees the operator's month-to-date, not the simulator's bill); the policy's
memory carried as the handler's memo carries it (`result.status.scaling`, compacted); status written only
when `status_io.changes` says so (the 15-minute rule); the commitment from the sync interval; the
BudgetLimited and ScalingActive conditions.

What the simulator supplies: the clock (the period ends with a UTC month, so that the month's hours left are
the period's), the spec (the simulator's variants, SLO and replica bounds), the measured candidates, and the
budget annotations. A run's period cap is the money for the measured period: the monthly annotation is what
the operator has accounted this month by time 0 (the burn-in's spend, if the burn-in lies in the same month)
plus that cap, set once at time 0; during the burn-in it is re-set each decision, so that the burn-in plans
as if the whole cap lay ahead, as `simulate.run` has always measured it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty_api import job_summary, pools
from thrifty_api import optimized_model as models
from thrifty_operator import conditions, pool_pricing, status_io
from thrifty_operator.cost import metrics, policy, pricing
from thrifty_operator.planning import measure, observed, scale

from .simulate import SimConfig, Target, View

# The period ends here; December has 31 days, the longest period the simulator takes.
MONTH_END = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
# How often the handler writes cost and scaling when nothing it watches moved (the Settings default).
COST_UPDATE_INTERVAL_S = 900.0
_GENERATION = 1


def catalogue(prices: Mapping[str, pricing.PoolPrice]) -> pools.PoolCatalogue:
    """The contract's catalogue for the simulator's pools (exact quantities: millicores and bytes)."""
    out = []
    for p in prices.values():
        allocatable: dict[str, Any] = {
            "cpu": f"{round(p.cpu * 1000)}m",
            "memory": str(round(p.memory_gib * 2**30)),
        }
        raw: dict[str, Any] = {
            "name": p.name,
            "nodeSelector": {"node.kubernetes.io/instance-type": p.name},
            "allocatable": allocatable,
            "pricePerNodeHour": repr(p.price_per_hour),
            "startupSeconds": round(p.startup_s),
        }
        if p.gpu:
            raw["accelerator"] = {"product": p.accelerator, "count": p.gpu}
            allocatable["gpu"] = p.gpu
        out.append(pools.Pool.model_validate(raw))
    return pools.PoolCatalogue(pools=out)


def spec(variants: Sequence[policy.Variant], cfg: SimConfig) -> models.OptimizedModelSpec:
    """A spec for the simulator's variants: its SLO and bounds, and one replica request for every pool (a
    CPU variant's: a GPU pool adds its GPU, as the operator does)."""
    request = ([v for v in variants if not v.request.gpu] or list(variants))[0].request
    return models.OptimizedModelSpec.model_validate(
        {
            "source": {"uri": "file:///models/sim/model.pt", "format": "TorchScript"},
            "signature": {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
            },
            # Whole milliseconds, rounded down: Thrifty plans for no looser a target than is measured.
            "optimization": {"latencyTargetMs": max(1, math.floor(cfg.slo_ms))},
            "serving": {
                "pools": sorted({v.pool for v in variants}),
                "resources": {
                    "requests": {
                        "cpu": f"{round(request.cpu * 1000)}m",
                        "memory": str(round(request.memory_gib * 2**30)),
                    }
                },
                "minReplicas": cfg.min_replicas,
                "maxReplicas": cfg.max_replicas,
            },
        }
    )


def candidates(
    variants: Sequence[policy.Variant], cat: pools.PoolCatalogue, model_spec: models.OptimizedModelSpec
) -> list[measure.Candidate]:
    """The candidates the measure phase would hold after profiling the simulator's variants.

    Raises:
        ValueError: If the spec's one request packs a variant's pool differently from the simulator's
            request for it (the bill and the policy's prices would disagree).
    """
    requests = model_spec.serving.resources.requests
    slo = float(model_spec.optimization.latency_target_ms)
    out = []
    for v in variants:
        pool = cat.get(v.pool)
        if pool is None:
            raise ValueError(f"variant {v.name!r} runs on unknown pool {v.pool!r}")
        price = pool_pricing.pool_price(pool)
        request = pool_pricing.replica_request(pool, requests.cpu, requests.memory)
        if pricing.replicas_per_node(price, request) != pricing.replicas_per_node(price, v.request):
            raise ValueError(
                f"variant {v.name!r}: the operator requests the same cpu and memory on every pool, and "
                f"{request} packs pool {v.pool!r} differently from the simulator's {v.request}"
            )
        result = job_summary.VariantResult(
            name=v.name,
            status="ok",
            p50_ms=v.latency_p50_ms,
            p99_ms=v.latency_p99_ms,
            throughput_per_s=v.throughput_per_s,
        )
        out.append(
            measure.Candidate(
                pool=pool,
                result=result,
                cost_per_million=measure.cost_per_million(
                    pool_pricing.spec_replica_price(pool, model_spec), v.throughput_per_s
                ),
                feasible=v.latency_p99_ms <= slo,
                why_not=None,
            )
        )
    return out


def _decimal(value: float) -> str:
    """A budget annotation never above `value` (rounded down to a millionth)."""
    return f"{math.floor(value * 1e6) / 1e6:.6f}"


class Thrifty:
    """Thrifty's scaler exactly as the operator's timer pass runs it (see the module docstring)."""

    def __init__(
        self,
        variants: Sequence[policy.Variant],
        pools_: Mapping[str, pricing.PoolPrice],
        cfg: SimConfig,
        initial_rate: float = 0.0,
        period_h: float = 720.0,
        burn_in_s: float = 0.0,
    ) -> None:
        """Build the controller; its first decision (at the start of the burn-in, `burn_in_s` before
        time 0) sizes the fleet for `initial_rate` req/s. `period_h` is the measured period's length."""
        self.name = "thrifty"
        self._cfg = cfg
        self._catalogue = catalogue(pools_)
        self._spec = spec(variants, cfg)
        self._options = candidates(variants, self._catalogue, self._spec)
        feasible = [c for c in self._options if c.feasible] or self._options
        # The selection phase's choice: the cheapest per million inferences.
        self._default = min(feasible, key=lambda c: c.cost_per_million or 0)
        self._epoch = MONTH_END - datetime.timedelta(hours=period_h)
        self._initial_rate = initial_rate
        self._start_s = -burn_in_s
        self._stored: dict[str, Any] = {}
        self._memo: models.ScalingStatus | None = None
        self._month_budget: str | None = None
        self.last_limited = False
        self.status_writes = 0
        """Status patches at or after time 0 (the handler's writes)."""

    @property
    def month_budget(self) -> str | None:
        """The monthly budget annotation set at time 0 (None before, or without a period cap)."""
        return self._month_budget

    @property
    def stored(self) -> dict[str, Any]:
        """The status as the API server holds it now."""
        return dict(self._stored)

    def initial(self) -> Target:
        """The fleet the scaler would run at the starting load."""
        return self._pass(self._start_s, metrics.LoadSample(request_rate=self._initial_rate), None)

    def step(self, view: View) -> Target:
        """One timer pass."""
        return self._pass(view.now, view.load, view.ready)

    def _annotations(self, now_s: float, now: datetime.datetime) -> dict[str, str]:
        out = {}
        if self._cfg.budget.per_hour is not None:
            out[models.BUDGET_PER_HOUR_ANNOTATION] = _decimal(self._cfg.budget.per_hour)
        if self._cfg.budget.per_month is not None:
            if self._month_budget is None:
                raw = (self._stored.get("cost") or {}).get("spend")
                spent = pricing.SpendState.from_status(raw, now)
                accounted = pricing.accrue(spent, now, spent.rate_per_hour).month_to_date
                budget = _decimal(accounted + self._cfg.budget.per_month)
                if now_s >= 0:
                    self._month_budget = budget
            else:
                budget = self._month_budget
            out[models.BUDGET_PER_MONTH_ANNOTATION] = budget
        return out

    def _pass(self, now_s: float, sample: metrics.LoadSample | None, ready: int | None) -> Target:
        now = self._epoch + datetime.timedelta(seconds=now_s)
        load = observed.Load(
            now=now,
            annotations=self._annotations(now_s, now),
            namespace_annotations={},
            namespace_demand={},
            sample=sample,
            ready_replicas=ready,
            remembered=self._memo,
            sync_seconds=float(self._cfg.sync_s),
        )
        stored = status_io.read(self._stored)
        choice = scale.decide(
            model="sim",
            spec=self._spec,
            stored=stored,
            load=load,
            options=self._options,
            catalogue=self._catalogue,
            default=self._default,
        )
        # The handler's memo: the scaler's memory between status writes.
        self._memo = choice.scaling
        status = models.OptimizedModelStatus(
            observed_generation=_GENERATION,
            cost=choice.cost,
            scaling=choice.scaling,
            conditions=conditions.merge(stored.conditions, choice.conditions, _GENERATION, now),
        )
        changes = status_io.changes(self._stored, status_io.dump(status), now, COST_UPDATE_INTERVAL_S)
        self._stored = {**self._stored, **changes}
        self.status_writes += bool(changes) and now_s >= 0
        self.last_limited = bool((choice.scaling.state or {}).get("budgetLimited"))
        return Target(
            variant=choice.variant, replicas=choice.replicas, keep_previous=choice.keep_previous_until_ready
        )
