"""Budget-aware scaling policy: one pure function from (config, state, observation) to a decision.

The operator calls `decide()` once per sync period with the Triton load and the month-to-date spend,
stores `Decision.state` in status and applies `Decision.variant`/`Decision.replicas`; the simulator
runs the very same function.

Order of work in `decide()`:

1. Demand: `lam = rate + pending / drain_s + rejected rate`, the highest of the last
   `scale_up_window_s`; if Triton's queue time per request, with every replica ready for at least
   `queue_time_settle_s`, exceeds both its target and `queue_time_factor` times the modelled mean
   wait, the demand of one more replica; above `burst_inversion_factor` times that wait, at least the
   Poisson rate that would queue as long (load burstier than Poisson).
2. Per variant: the fewest replicas whose modelled p99 (`queueing`) meets the SLO at that demand
   times `headroom` (scale-down: the window's peak times `scale_down_margin` too), rounded up to
   whole nodes when `fill_nodes` is set (pools whose nodes serve one model only; off by default).
3. Choice: keep the current variant unless another is cheaper by `switch_margin` (after
   `variant_hold_s`, from a ready fleet that serves the load) or the current one cannot meet the SLO,
   or the budget chose it last time. While a switch keeps the old fleet serving, its rate is billed.
4. No flapping: scale up at once (at most `max(2x, +4)` per decision); scale down only once every
   requested replica is ready, only to what `scale_down_margin` times the highest demand of the last
   `scale_down_stabilization_s` needs, at most halving per decision.
5. Budget: the billed rate must not exceed what the caps allow: the hourly cap, and for the monthly
   cap the pacing of `pacing` (it meets the cheapest hours of the month first and gives the dearest
   up whole; while the month's money cannot pay for the forecast demand, the policy plans without
   headroom). When the fleet would not fit, degrade in this order and say so in `given_up`:
   a. a cheaper variant or pool that still meets the SLO (e.g. CPU INT8 instead of GPU);
   b. fewer replicas: the affordable variant and count with the most capacity (down to the floor
      when the monthly pacing gives the hour up: `PeakGivenUp`);
   c. never below `min_replicas` (unless suspended), even if that exceeds the budget.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import budgets, metrics, pacing, pricing, queueing


@dataclasses.dataclass(frozen=True, kw_only=True)
class Variant:
    """A deployable model variant and its per-replica capacity.

    Attributes:
        name: Variant name, e.g. "tensorrt-fp16".
        pool: Name of the `pricing.PoolPrice` it runs on.
        request: Resources one replica requests.
        throughput_per_s: Requests/s one replica serves at the SLO-feasible batch size.
        latency_p50_ms: Profiled median latency.
        latency_p99_ms: Profiled p99 latency.
    """

    name: str
    pool: str
    request: pricing.ReplicaRequest
    throughput_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Tuning of the policy; defaults are the benchmarked ones.

    Attributes:
        slo_p99_ms: p99 latency target.
        min_replicas: Floor, kept even when the budget cannot pay for it.
        max_replicas: Ceiling per variant.
        suspended: Scale to zero and ignore load.
        max_utilization: Upper bound on planned utilisation, on top of the latency model.
        headroom: Plan for this multiple of the observed demand.
        drain_s: Pending requests should drain within this time.
        queue_time_target_us: Triton queue time per request above which one more replica is planned,
            if it is also `queue_time_factor` times the modelled mean wait; None means a quarter of the
            SLO's slack over the variant's p99 service time.
        queue_time_factor: See `queue_time_target_us`.
        queue_time_settle_s: Trust the queue time only once every replica has been ready this long
            (the 30-s metrics window plus one sync): until then the window still holds the requests
            that queued before the last replicas served, and it would plan one replica too many.
        scale_down_stabilization_s: Scale down only to what the peak demand of this window needs.
        scale_down_margin: ... times that peak demand (hysteresis against 3-4-3 flapping).
        scale_up_window_s: Scale up for the peak demand of this (short) window: short bursts recur.
        variant_hold_s: Minimum time between two voluntary variant switches.
        switch_margin: Switch voluntarily only if the other variant costs at most this share.
        budget_safety: Plan to this share of the allowed rate (billing minima, rounding).
        commitment_s: A fleet chosen now is paid for at least this long (until the next decision can
            stop it, plus the billing minimum); the monthly cap's zero-overrun bound uses it.
        fill_nodes: Run as many replicas as the nodes the fleet is billed for hold. Off: nodes of a pool are
            shared by many Deployments (Karpenter packs them), where an idle extra replica takes room other
            pods would use, and a catalogue node larger than the real one would leave the extras Pending.
        burst_inversion_factor: When Triton's queue time on the settled fleet exceeds this multiple of the
            modelled mean wait, plan for the Poisson rate that would queue as long (arrivals burstier
            than Poisson); `math.inf` never.
    """

    slo_p99_ms: float
    min_replicas: int = 1
    max_replicas: int = 100
    suspended: bool = False
    max_utilization: float = 0.9
    headroom: float = 1.1
    drain_s: float = 30.0
    queue_time_target_us: float | None = None
    queue_time_factor: float = 2.0
    queue_time_settle_s: float = 45.0
    scale_down_stabilization_s: float = 300.0
    scale_down_margin: float = 1.1
    scale_up_window_s: float = 60.0
    variant_hold_s: float = 900.0
    switch_margin: float = 0.75
    budget_safety: float = 0.98
    commitment_s: float = 120.0
    fill_nodes: bool = False
    burst_inversion_factor: float = 1.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("replicas must satisfy 0 <= min_replicas <= max_replicas")
        if self.slo_p99_ms <= 0 or not 0 < self.max_utilization <= 1 or self.headroom < 1:
            raise ValueError("slo_p99_ms must be > 0, max_utilization in (0, 1], headroom >= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyState:
    """What the policy remembers between decisions (kept in status).

    Attributes:
        variant: Variant now deployed ("" before the first decision).
        replicas: Replicas now requested.
        demand_history: (time, demand without headroom) pairs within the scale-down window.
        variant_since: When the current variant was chosen.
        profile: The rate wanted per slot of the day, for monthly pacing (`pacing`).
        budget_limited: The budget bound the last decision (its variant was not chosen freely).
        ready_since: Since when every requested replica has been ready (None: not all are).
        draining: The previous variant and its replicas, still billed while a switch keeps them serving
            until the new fleet is ready (None: no switch under way).
    """

    variant: str = ""
    replicas: int = 0
    demand_history: tuple[tuple[float, float], ...] = ()
    variant_since: float = 0.0
    profile: pacing.DemandProfile = dataclasses.field(default_factory=pacing.DemandProfile)
    budget_limited: bool = False
    ready_since: float | None = None
    draining: tuple[str, int] | None = None

    def to_status(self) -> dict[str, Any]:
        """Plain JSON-able dict for the CR's status (no floats that JSON cannot carry)."""
        return {
            "variant": self.variant,
            "replicas": self.replicas,
            "demandHistory": [[round(t, 3), round(d, 3)] for t, d in self.demand_history],
            "variantSince": round(self.variant_since, 3),
            "profile": self.profile.to_status(),
            "budgetLimited": self.budget_limited,
            "readySince": None if self.ready_since is None else round(self.ready_since, 3),
            "draining": None if self.draining is None else list(self.draining),
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> PolicyState:
        """Rebuild from `to_status()` output; a missing or malformed status gives a fresh state."""
        if not raw:
            return cls()
        try:
            return cls(
                variant=str(raw.get("variant", "")),
                replicas=int(raw.get("replicas", 0)),
                demand_history=tuple((float(t), float(d)) for t, d in raw.get("demandHistory", ())),
                variant_since=float(raw.get("variantSince", 0.0)),
                profile=pacing.DemandProfile.from_status(raw.get("profile")),
                budget_limited=bool(raw.get("budgetLimited", False)),
                ready_since=None if raw.get("readySince") is None else float(raw["readySince"]),
                draining=_draining_from_status(raw.get("draining")),
            )
        except (TypeError, ValueError):
            return cls()


def _draining_from_status(raw: Any) -> tuple[str, int] | None:
    return None if not raw else (str(raw[0]), int(raw[1]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observation:
    """Inputs measured for one decision.

    Attributes:
        now: Seconds since any fixed epoch (monotonic across decisions).
        load: Load summed over the model's pods (see `metrics.combine_loads`); None when no metrics came
            this time (pods unreachable, Prometheus down): the policy then plans for the last demand it
            saw, as HPA does not scale down on missing metrics.
        month_to_date: Billed spend so far in the budget period.
        hours_left: Hours until the budget period (the month) ends.
        ready_replicas: Ready replicas of the current variant; None if unknown (then the queue-time
            check is skipped).
    """

    now: float
    load: metrics.LoadSample | None
    month_to_date: float = 0.0
    hours_left: float = 720.0
    ready_replicas: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GivenUp:
    """One thing the budget made the policy give up: becomes a BudgetLimited condition/Event."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """The policy's output.

    Attributes:
        variant: Variant to run.
        pool: Its pool.
        replicas: Replicas of `variant` to request.
        rate_per_hour: Billed rate from now on, what spend accounting uses: the fleet, plus the previous
            variant's while a switch keeps it serving until the new fleet is ready.
        allowed_rate_per_hour: Highest rate the budget allows now (`math.inf` when unlimited).
        reason: CamelCase: Suspended, ScaledUp, ScaledDown, Steady, VariantSwitched.
        message: One line for an Event.
        meets_slo: Whether the modelled p99 at the planned demand meets the SLO.
        given_up: Non-empty exactly when the budget bound (BudgetLimited=True).
        keep_previous_until_ready: On a variant switch, keep the old variant serving until the new one
            is ready (the budget covers both for the start-up time); else remove it at once.
        state: State to store for the next decision.
    """

    variant: str
    pool: str
    replicas: int
    rate_per_hour: float
    allowed_rate_per_hour: float
    reason: str
    message: str
    meets_slo: bool
    given_up: tuple[GivenUp, ...]
    keep_previous_until_ready: bool
    state: PolicyState

    @property
    def budget_limited(self) -> bool:
        """True when the budget made the policy give something up."""
        return bool(self.given_up)


@dataclasses.dataclass(frozen=True)
class _Option:
    variant: Variant
    replicas: int
    rate: float
    meets: bool


def observed_demand(config: PolicyConfig, load: metrics.LoadSample) -> float:
    """Requests/s the model is asked for: served rate, backlog to drain and rejections.

    Args:
        config: Policy configuration.
        load: Observed load.

    Returns:
        Demand in requests/s.
    """
    return load.request_rate + load.pending / config.drain_s + load.rejected_rate


def planned_demand(config: PolicyConfig, load: metrics.LoadSample) -> float:
    """Requests/s to plan capacity for: the observed demand with headroom."""
    return observed_demand(config, load) * config.headroom


def _options(
    config: PolicyConfig,
    pools: Mapping[str, pricing.PoolPrice],
    variants: Sequence[Variant],
    up_demand: float,
    hold_demand: float,
) -> tuple[dict[str, _Option], dict[str, _Option], _Option]:
    """Per variant: the fleet for the scale-up demand and for the stabilized demand; the cheapest one
    that meets the SLO at the stabilized demand (or the one with most capacity if none does)."""
    up = {v.name: _option(config, pools[v.pool], v, up_demand, 0) for v in variants}
    hold = {v.name: _option(config, pools[v.pool], v, hold_demand, 0) for v in variants}
    meeting = [hold[v.name] for v in variants if hold[v.name].meets]
    cheapest = (
        min(meeting, key=lambda o: o.rate)
        if meeting
        else max(hold.values(), key=lambda o: o.replicas * o.variant.throughput_per_s)
    )
    return up, hold, cheapest


def _option(config: PolicyConfig, pool: pricing.PoolPrice, v: Variant, demand: float, floor: int) -> _Option:
    need = queueing.replicas_for_slo(
        demand,
        v.throughput_per_s,
        v.latency_p99_ms,
        config.slo_p99_ms,
        config.max_utilization,
        limit=config.max_replicas,
    )
    meets = need is not None
    n = (
        config.max_replicas
        if need is None
        else min(config.max_replicas, max(need, floor, config.min_replicas))
    )
    # Billing is by whole nodes: the replicas a node already paid for has room for cost nothing and absorb
    # bursts (on-off load at x1: one replica missed every switch on, two on the same node did not).
    per_node = pricing.replicas_per_node(pool, v.request)
    if config.fill_nodes and per_node > 1 and n > 0:
        n = min(config.max_replicas, -(-n // per_node) * per_node)
    return _Option(v, n, pricing.fleet_price_per_hour(pool, v.request, n), meets)


def _fleet_rate(pools: Mapping[str, pricing.PoolPrice], v: Variant, n: int) -> float:
    return pricing.fleet_price_per_hour(pools[v.pool], v.request, n)


def _bounded(current: int, target: int) -> int:
    """HPA-style step bounds: up by at most max(100 %, 4 pods), down by at most half."""
    if target > current:
        return min(target, max(2 * current, current + 4))
    if target < current:
        return max(target, current // 2)
    return current


def _affordable(
    config: PolicyConfig, pools: Mapping[str, pricing.PoolPrice], variants: Sequence[Variant], allowed: float
) -> _Option | None:
    """The SLO-capable variant and count with the most capacity within `allowed` (ties: cheaper)."""
    best: _Option | None = None
    for v in variants:
        if v.latency_p99_ms > config.slo_p99_ms:
            continue
        n = config.max_replicas
        while n > config.min_replicas and _fleet_rate(pools, v, n) > allowed:
            n -= 1
        rate = _fleet_rate(pools, v, n)
        if rate > allowed:
            continue
        cand = _Option(v, n, rate, False)
        if best is None or (n * v.throughput_per_s, -rate) > (
            best.replicas * best.variant.throughput_per_s,
            -best.rate,
        ):
            best = cand
    return best


def _choose_variant(
    config: PolicyConfig,
    state: PolicyState,
    obs: Observation,
    current: Variant | None,
    cheapest: _Option,
    up: Mapping[str, _Option],
    hold: Mapping[str, _Option],
    current_rate: float,
    planned_allowed: float,
    settled: bool,
) -> Variant:
    """Keep the current variant unless it cannot meet the SLO or another is clearly cheaper.

    A voluntary switch also needs the budget to pay for both fleets during the new one's start-up,
    or the switch itself would cost SLO windows.
    """
    if current is None or (not up[current.name].meets and up[cheapest.variant.name].meets):
        return cheapest.variant
    if state.budget_limited:
        # The budget chose the running variant; without it the choice is free again.
        return cheapest.variant
    # Only from a fleet that serves the load now: a switch on a burst's first sample left the old fleet
    # saturated through the new one's longer start-up (markov bursts at x20: 3 windows per burst).
    voluntary = (
        cheapest.variant is not current
        and settled
        and up[current.name].replicas <= state.replicas
        and cheapest.rate <= config.switch_margin * hold[current.name].rate
        and obs.now - state.variant_since >= config.variant_hold_s
        and cheapest.rate + current_rate <= planned_allowed
    )
    return cheapest.variant if voluntary else current


def _stabilized_replicas(
    config: PolicyConfig,
    state: PolicyState,
    current: Variant | None,
    choice: Variant,
    up: Mapping[str, _Option],
    hold: Mapping[str, _Option],
    settled: bool,
) -> int:
    """Scale up at once, down only to the window's peak need and only once every requested replica is
    ready, both within step bounds."""
    if choice is current:
        want_up, want_hold = up[choice.name].replicas, hold[choice.name].replicas
        if want_up > state.replicas:
            replicas = _bounded(state.replicas, want_up)
        elif want_hold < state.replicas and settled:
            replicas = _bounded(state.replicas, want_hold)
        else:
            replicas = state.replicas
    else:
        replicas = max(up[choice.name].replicas, hold[choice.name].replicas)
    return min(config.max_replicas, max(config.min_replicas, replicas))


def _within_budget(
    config: PolicyConfig,
    pools: Mapping[str, pricing.PoolPrice],
    variants: Sequence[Variant],
    up: Mapping[str, _Option],
    preferred: _Option,
    planned_allowed: float,
    allowed: float,
) -> tuple[Variant, int, float, bool, tuple[GivenUp, ...]]:
    """Degrade in the documented order until the fleet fits the budget."""
    pv, pn = preferred.variant, preferred.replicas
    # a. a cheaper variant/pool that still meets the SLO at the current demand.
    cheaper = [up[v.name] for v in variants if up[v.name].meets and up[v.name].rate <= planned_allowed]
    if cheaper:
        best = min(cheaper, key=lambda o: o.rate)
        if best.variant is not pv:
            why = GivenUp(
                reason="CheaperVariant",
                message=f"runs {best.variant.name} on {best.variant.pool} instead of {pv.name} on {pv.pool} "
                f"to stay within {planned_allowed:.4f}/h",
            )
        else:
            why = GivenUp(
                reason="StabilizationSkipped",
                message=f"scaled {pv.name} to {best.replicas} at once to stay within {planned_allowed:.4f}/h",
            )
        return best.variant, best.replicas, best.rate, True, (why,)
    # b. fewer replicas: the most capacity the budget buys.
    fewer = _affordable(config, pools, variants, planned_allowed)
    if fewer is not None:
        why = GivenUp(
            reason="FewerReplicas",
            message=f"runs {fewer.replicas} of {fewer.variant.name} instead of {pn} of {pv.name}; "
            f"the p99 target of {config.slo_p99_ms:g} ms is not met within {planned_allowed:.4f}/h",
        )
        return fewer.variant, fewer.replicas, fewer.rate, False, (why,)
    # c. the floor wins over the budget: min_replicas of the cheapest (SLO-capable if any) variant.
    v, rate = floor_rate(config, pools, variants)
    n = config.min_replicas
    why = GivenUp(
        reason="BudgetBelowMinimum",
        message=f"min_replicas={n} of {v.name} costs {rate:.4f}/h, "
        f"more than the {allowed:.4f}/h the budget allows",
    )
    return v, n, rate, False, (why,)


def floor_rate(
    config: PolicyConfig, pools: Mapping[str, pricing.PoolPrice], variants: Sequence[Variant]
) -> tuple[Variant, float]:
    """The cheapest `min_replicas` fleet (of an SLO-capable variant if any): paid even over budget."""
    capable = [v for v in variants if v.latency_p99_ms <= config.slo_p99_ms] or list(variants)
    v = min(capable, key=lambda v: _fleet_rate(pools, v, config.min_replicas))
    return v, _fleet_rate(pools, v, config.min_replicas)


def _slot_end(now: float) -> str:
    end = (now // pacing.SLOT_S + 1) * pacing.SLOT_S
    return f"{int(end % 86_400) // 3600:02d}:{int(end % 3600) // 60:02d} UTC"


def _allowed(
    config: PolicyConfig,
    pools: Mapping[str, pricing.PoolPrice],
    variants: Sequence[Variant],
    budget: budgets.Budget,
    obs: Observation,
    profile: pacing.DemandProfile,
    need: float,
) -> tuple[float, float, GivenUp | None, bool, pacing.DemandProfile]:
    """Allowed rate, the rate to plan to, why a slot is given up when the monthly pacing skips it,
    whether the monthly budget cannot pay for the forecast demand, and the profile with the verdict."""
    allowed = budget.per_hour if budget.per_hour is not None else math.inf
    if budget.per_month is None:
        planned = allowed * config.budget_safety if math.isfinite(allowed) else allowed
        return allowed, planned, None, False, profile
    _, floor = floor_rate(config, pools, variants)
    a, profile = pacing.monthly_allowance(
        remaining=budget.per_month - obs.month_to_date,
        hours_left=obs.hours_left,
        floor_per_hour=floor,
        need_per_hour=need,
        profile=profile,
        now=obs.now,
        commitment_h=config.commitment_s / 3600,
        ceiling_per_hour=allowed,
    )
    if a.skipped and a.rate_per_hour >= floor and floor <= allowed:
        # The floor is reserved for every hour left, so it is paid exactly, without the safety margin.
        why = GivenUp(
            reason="PeakGivenUp",
            message=f"gives up the p99 target until {_slot_end(obs.now)}: meeting it costs about "
            f"{need:.4f}/h and the monthly budget left meets only the cheaper hours "
            f"(up to {a.threshold_per_hour:.4f}/h)"
            if math.isfinite(a.threshold_per_hour)
            else f"gives up the p99 target until {_slot_end(obs.now)}: the monthly budget left pays "
            "only for the floor",
        )
        return floor, floor, why, True, profile
    allowed = min(allowed, a.rate_per_hour)
    return allowed, allowed * config.budget_safety, None, math.isfinite(a.threshold_per_hour), profile


def _suspended(
    variants: Sequence[Variant],
    current: Variant | None,
    budget: budgets.Budget,
    state: PolicyState,
    obs: Observation,
) -> Decision:
    v = current or variants[0]
    new_state = PolicyState(
        variant=v.name, replicas=0, variant_since=state.variant_since, profile=state.profile
    )
    return Decision(
        variant=v.name,
        pool=v.pool,
        replicas=0,
        rate_per_hour=0.0,
        allowed_rate_per_hour=budgets.allowed_rate_per_hour(budget, obs.month_to_date, obs.hours_left),
        reason="Suspended",
        message="scaled to zero: the model is suspended",
        meets_slo=False,
        given_up=(),
        keep_previous_until_ready=False,
        state=new_state,
    )


def _demand(
    config: PolicyConfig, state: PolicyState, obs: Observation, current: Variant | None
) -> tuple[float, float | None]:
    """Demand now (requests/s, without headroom) and since when the whole current fleet is ready."""
    # Demand history is kept without headroom: the lean plan (binding budget) and the usual one share it.
    if obs.load is None:
        demand = state.demand_history[-1][1] if state.demand_history else 0.0
    else:
        demand = observed_demand(config, obs.load)
    all_ready = current is not None and state.replicas > 0 and obs.ready_replicas == state.replicas
    ready_since = (state.ready_since if state.ready_since is not None else obs.now) if all_ready else None
    # Only once every requested replica has been ready for a metrics window: while some start, and
    # while the window still holds the backlog from before they served, a long queue is expected.
    if (
        obs.load is not None
        and current is not None
        and ready_since is not None
        and obs.now - ready_since >= config.queue_time_settle_s
    ):
        # Triton's queue time well above what the model predicts for this fleet means the model
        # underestimates the need: plan for one replica more, remembered like any other demand.
        modelled_us = 1000.0 * queueing.mean_wait_ms(
            obs.load.request_rate, state.replicas, current.throughput_per_s
        )
        slack_us = 250.0 * max(0.0, config.slo_p99_ms - current.latency_p99_ms)
        queue_target = max(config.queue_time_target_us or slack_us, config.queue_time_factor * modelled_us)
        observed_us = obs.load.queue_us_per_request
        if observed_us > config.burst_inversion_factor * modelled_us:
            # Arrivals burstier than Poisson queue longer than M/M/c predicts at their rate: plan for the
            # Poisson rate that queues as long on this fleet (heavy-tailed load at 110 req/s queued 1.5-4x
            # the model on 4 replicas and missed 17 % of windows; Poisson load stays within 1.3x).
            equivalent = _equivalent_rate(observed_us, state.replicas, current.throughput_per_s)
            demand += max(0.0, equivalent - obs.load.request_rate)
        if obs.load.queue_us_per_request > queue_target:
            one_more = (state.replicas + 1) * current.throughput_per_s * config.max_utilization * 0.99
            demand = max(demand, one_more / config.headroom)
    return demand, ready_since


def _equivalent_rate(queue_us: float, servers: int, mu: float) -> float:
    """The Poisson rate whose M/M/c mean wait on `servers` replicas is `queue_us` (at most the fleet's
    capacity at `max_utilization` 1: beyond it the queue-time check plans replicas one by one)."""
    low, high = 0.0, servers * mu
    for _ in range(40):
        mid = (low + high) / 2
        if 1000.0 * queueing.mean_wait_ms(mid, servers, mu) < queue_us:
            low = mid
        else:
            high = mid
    return low


def _reason(
    state: PolicyState,
    obs: Observation,
    current: Variant | None,
    choice: Variant,
    replicas: int,
    rate: float,
    demand: float,
) -> tuple[str, str, float]:
    """Reason, message and the variant's start time of a decision."""
    switched = current is not None and choice is not current
    if current is None or switched:
        reason = "VariantSwitched" if switched else "ScaledUp"
        return reason, f"runs {replicas} replicas of {choice.name} on {choice.pool} at {rate:.4f}/h", obs.now
    reason = (
        "ScaledUp" if replicas > state.replicas else "ScaledDown" if replicas < state.replicas else "Steady"
    )
    message = (
        f"{state.replicas} -> {replicas} replicas of {choice.name} at {rate:.4f}/h for {demand:.1f} req/s"
    )
    return reason, message, state.variant_since


def _draining(
    state: PolicyState, obs: Observation, choice: Variant, current: Variant | None, keeps: bool
) -> tuple[str, int] | None:
    """The fleet a switch keeps serving: set by a switch that keeps it, kept until the new fleet is ready."""
    if keeps and current is not None:
        return current.name, state.replicas
    if state.draining is None or choice is not current or state.draining[0] == choice.name:
        return None
    ready = obs.ready_replicas
    return state.draining if ready is None or ready < state.replicas else None


def decide(
    config: PolicyConfig,
    variants: Sequence[Variant],
    pools: Mapping[str, pricing.PoolPrice],
    budget: budgets.Budget,
    state: PolicyState,
    obs: Observation,
) -> Decision:
    """Decide variant and replicas for one model.

    Args:
        config: Policy configuration.
        variants: Deployable variants (their pools must be in `pools`); order breaks cost ties.
        pools: Pool catalogue by name.
        budget: Effective budget (own caps combined with the namespace share, see `budgets`).
        state: State from the previous decision (`PolicyState()` the first time).
        obs: Measurements now.

    Returns:
        The decision, including the next state.

    Raises:
        ValueError: If `variants` is empty or names a pool missing from `pools`.
    """
    if not variants:
        raise ValueError("at least one variant is needed")
    for v in variants:
        if v.pool not in pools:
            raise ValueError(f"variant {v.name!r} runs on unknown pool {v.pool!r}")
    current = {v.name: v for v in variants}.get(state.variant)
    if config.suspended:
        return _suspended(variants, current, budget, state, obs)
    demand, ready_since = _demand(config, state, obs, current)
    history = (*(h for h in state.demand_history if h[0] > obs.now - config.scale_down_stabilization_s),)
    history = (*history, (obs.now, demand))
    hold_demand = max(d for _, d in history)
    up_demand = max(d for t, d in history if t > obs.now - config.scale_up_window_s)

    # What meeting the SLO costs now without headroom or budget: the profile's and the pacing's measure.
    lean = _options(config, pools, variants, up_demand, hold_demand)
    profile = state.profile.observe(obs.now, lean[2].rate)
    allowed, planned_allowed, skipped, binds, profile = _allowed(
        config, pools, variants, budget, obs, profile, lean[2].rate
    )
    # When the monthly budget cannot pay for the forecast demand, headroom would cost hours met.
    up_hold_demand = (up_demand * config.headroom, hold_demand * config.headroom * config.scale_down_margin)
    up, hold, cheapest = lean if binds else _options(config, pools, variants, *up_hold_demand)

    current_rate = _fleet_rate(pools, current, state.replicas) if current is not None else 0.0
    # Replicas still starting are not stopped: each would be billed its minimum for nothing (a switch to
    # 3 T4s shrunk to 1 a sync later, before any served, billed 2 x 45 s the spend accounting never saw).
    settled = obs.ready_replicas is None or obs.ready_replicas >= state.replicas
    choice = _choose_variant(
        config, state, obs, current, cheapest, up, hold, current_rate, planned_allowed, settled
    )
    replicas = _stabilized_replicas(config, state, current, choice, up, hold, settled)
    if obs.load is None and not state.demand_history and choice is current:
        # No metrics and no demand seen yet (a restart without memory, Prometheus down): hold what runs
        # rather than shrink to the minimum blindly; the budget below still binds.
        replicas = max(replicas, state.replicas)
    meets = up[choice.name].meets and replicas >= up[choice.name].replicas
    rate = _fleet_rate(pools, choice, replicas)
    given_up: tuple[GivenUp, ...] = ()
    if rate > planned_allowed:
        choice, replicas, rate, meets, given_up = _within_budget(
            config, pools, variants, up, _Option(choice, replicas, rate, meets), planned_allowed, allowed
        )
        if skipped is not None:
            given_up = (skipped, *given_up)

    switched = current is not None and choice is not current
    keep_previous = (
        switched
        and current is not None
        and (rate + _fleet_rate(pools, current, state.replicas) <= planned_allowed)
    )
    draining = _draining(state, obs, choice, current, switched and keep_previous)
    old = {v.name: v for v in variants}.get(draining[0]) if draining else None
    # The old fleet serves, and is billed, until the new one is ready: spend accounting must count it.
    billed = rate + (_fleet_rate(pools, old, draining[1]) if old is not None and draining else 0.0)
    reason, message, variant_since = _reason(state, obs, current, choice, replicas, rate, demand)
    new_state = PolicyState(
        variant=choice.name,
        replicas=replicas,
        # A new variant starts a new stabilization history.
        demand_history=((obs.now, demand),) if switched else history,
        variant_since=variant_since,
        profile=profile,
        budget_limited=bool(given_up),
        # A fleet that changes starts its settling again (new replicas are not ready yet).
        ready_since=ready_since if (choice.name, replicas) == (state.variant, state.replicas) else None,
        draining=draining,
    )
    return Decision(
        variant=choice.name,
        pool=choice.pool,
        replicas=replicas,
        rate_per_hour=billed,
        allowed_rate_per_hour=allowed,
        reason=reason,
        message=message,
        meets_slo=meets,
        given_up=given_up,
        keep_previous_until_ready=keep_previous,
        state=new_state,
    )
