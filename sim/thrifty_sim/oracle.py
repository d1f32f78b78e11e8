"""Offline oracles that know the whole trace (cost.md §5.3).

Both use the simulator's SLO rule: a 60-s window meets the SLO when at most 1 % of its requests are
late, a second with `a` arrivals on `c` ready replicas having `queueing.late_fraction(a, c)` late.

* O1 (`cheapest`): the cheapest plan that meets the SLO in every window, by dynamic programming over
  (variant, replicas) per window. It is feasible: an added replica is billed for its pool's start-up
  time before it serves (the oracle launches it early), a switched-away variant keeps serving (and is
  billed) during the new one's start-up. No backlog, no billing minimum within a 60-s window.
* O2 (`best_within_budget`): the most SLO-met windows within the budget, as a feasible plan under the
  same billing as O1 (start-up billed, whole nodes). Lagrangian relaxation: for a price `lam` per
  unit of money, dynamic programming over the same fleets maximizes `windows met - lam * cost`; `lam`
  is bisected to the cheapest price whose plan fits the period cap. An hourly cap forbids fleets whose
  rate exceeds it. The plan is within the budget by construction; it can miss the true optimum by what
  the relaxation's duality gap leaves, which `budget_upper_bound` brackets.
* `budget_upper_bound`: an upper bound on any plan's SLO-met windows within the budget, ignoring
  start-up billing: every window runs at least the cheapest `min_replicas` fleet, meeting window w
  costs `extra_w` more, and the period cap is a knapsack with unit values, solved exactly by taking
  the cheapest extras first.
* `cost_lower_bound`: the dual relaxation, a lower bound on the cost of any plan that meets at least
  a given share of the windows (what a target "cheaper than X at equal or better SLO" can be held
  against): the floor plus the cheapest extras of that many windows.
* `cost_lower_bound_within_actions`: the same bound for plans that also change their fleet at most a
  given number of times ("... with at most half its scaling actions"), by Lagrangian duality over a
  dynamic programme on (fleet, changes so far).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from thrifty_operator.cost import budgets, policy, pricing, queueing


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """A per-window provisioning plan and its metrics."""

    name: str
    variant: tuple[str, ...]
    replicas: tuple[int, ...]
    total_cost: float
    slo_attainment: float
    scaling_actions: int
    request_slo_share: float = 1.0


def _late_table(
    values: npt.NDArray[np.int64], v: policy.Variant, slo_ms: float, nmax: int
) -> npt.NDArray[np.float64]:
    """late[i, c]: late share of a second with values[i] arrivals on c replicas."""
    table = np.ones((len(values), nmax + 1))
    mu = v.throughput_per_s
    for i, a in enumerate(values):
        if a == 0:
            table[i, :] = 0.0
            continue
        b = 1.0  # Erlang B, built up one server at a time
        offered = a / mu
        for c in range(1, nmax + 1):
            b = offered * b / (c + offered * b)
            if a >= c * mu:
                continue
            slack = (slo_ms - v.latency_p99_ms) / 1000.0
            if slack < 0:
                break
            wait = b / (1.0 - offered / c * (1.0 - b))
            table[i, c] = wait * math.exp(-(c * mu - a) * slack)
            if table[i, c] < 1e-9:
                table[i, c + 1 :] = 0.0
                break
    return table


def window_needs(
    counts: npt.NDArray[np.int64],
    v: policy.Variant,
    slo_ms: float,
    window_s: int,
    min_requests: int,
    min_replicas: int,
    max_replicas: int = 100,
) -> npt.NDArray[np.int64]:
    """Fewest replicas of `v` per window that meet the SLO (-1 where `max_replicas` cannot).

    Args:
        counts: Requests per second.
        v: Variant.
        slo_ms: p99 target.
        window_s: Window length.
        min_requests: Windows with fewer requests need only `min_replicas`.
        min_replicas: Floor.
        max_replicas: Ceiling.

    Returns:
        Replicas per window.
    """
    n = len(counts) // window_s
    c = counts[: n * window_s].reshape(n, window_s)
    values, inverse = np.unique(c, return_inverse=True)
    nmax = min(max_replicas, math.ceil(float(values.max()) / v.throughput_per_s) + 8)
    table = _late_table(values, v, slo_ms, nmax)
    idx = inverse.reshape(n, window_s)
    total = c.sum(axis=1).astype(np.float64)
    out = np.full(n, -1, dtype=np.int64)
    for w in range(n):
        if total[w] < min_requests:
            out[w] = min_replicas
            continue
        late = c[w].astype(np.float64) @ table[idx[w]]
        ok = np.nonzero(late <= 0.01 * total[w])[0]
        if len(ok):
            out[w] = max(min_replicas, int(ok[0]))
    return out


def request_slo_share(
    counts: npt.NDArray[np.int64],
    plan: Sequence[tuple[policy.Variant, int]],
    slo_ms: float,
    window_s: int,
) -> float:
    """Share of requests within the SLO when window w runs plan[w] (no backlog: optimistic)."""
    late = 0.0
    for w, (v, k) in enumerate(plan):
        c = counts[w * window_s : (w + 1) * window_s]
        for a in c:
            if a:
                late += a * queueing.late_fraction(float(a), k, v.throughput_per_s, v.latency_p99_ms, slo_ms)
    return 1.0 - late / max(1, int(counts[: len(plan) * window_s].sum()))


def _eligible(counts: npt.NDArray[np.int64], window_s: int, min_requests: int) -> npt.NDArray[np.bool_]:
    n = len(counts) // window_s
    sums = counts[: n * window_s].reshape(n, window_s).sum(axis=1)
    eligible: npt.NDArray[np.bool_] = sums >= min_requests
    return eligible


def _unit(pools: Mapping[str, pricing.PoolPrice], v: policy.Variant) -> float:
    pool = pools[v.pool]
    return pool.price_per_hour / pricing.replicas_per_node(pool, v.request)


@dataclasses.dataclass(frozen=True)
class _States:
    """Fleets an oracle may run: (variant index, replicas), with their rates and switching costs."""

    states: list[tuple[int, int]]
    rate: npt.NDArray[np.float64]
    trans: npt.NDArray[np.float64]
    variant: npt.NDArray[np.int64]
    replicas: npt.NDArray[np.int64]


def _state_space(
    needs: Sequence[npt.NDArray[np.int64]],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    min_replicas: int,
) -> _States:
    """(variant, replicas) up to each variant's largest need. Moving from one fleet to another bills
    each added replica for its pool's start-up time before it serves; a switched-away variant keeps
    serving (and is billed) during the new one's start-up."""
    states: list[tuple[int, int]] = []
    for i, nd in enumerate(needs):
        top = max(min_replicas, int(nd.max()))
        states.extend((i, k) for k in range(min_replicas, top + 1))
    size = len(states)
    rate = np.array(
        [pricing.fleet_price_per_hour(pools[variants[i].pool], variants[i].request, k) for i, k in states]
    )
    trans = np.zeros((size, size))
    for a, (i, k) in enumerate(states):
        for b, (j, m) in enumerate(states):
            vj = variants[j]
            start_h = pools[vj.pool].startup_s / 3600
            if i == j:
                trans[a, b] = max(0, m - k) * _unit(pools, vj) * start_h
            else:
                trans[a, b] = (m * _unit(pools, vj) + k * _unit(pools, variants[i])) * start_h
    return _States(
        states=states,
        rate=rate,
        trans=trans,
        variant=np.array([i for i, _ in states]),
        replicas=np.array([k for _, k in states]),
    )


def _needs_and_fleets(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    window_s: int,
    min_requests: int,
    min_replicas: int,
    max_replicas: int,
) -> tuple[list[npt.NDArray[np.int64]], _States]:
    """Each variant's replicas needed per window, and the fleets a plan may run."""
    needs = [
        window_needs(counts, v, slo_ms, window_s, min_requests, min_replicas, max_replicas) for v in variants
    ]
    return needs, _state_space(needs, variants, pools, min_replicas)


def _meets(space: _States, needs: Sequence[npt.NDArray[np.int64]], w: int) -> npt.NDArray[np.bool_]:
    """Which fleets meet window w's SLO."""
    need_w = np.array([nd[w] for nd in needs])[space.variant]
    met: npt.NDArray[np.bool_] = (space.replicas >= need_w) & (need_w >= 0)
    return met


def _met_windows(
    space: _States, needs: Sequence[npt.NDArray[np.int64]], eligible: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """1 where a fleet meets an eligible window, shape (windows, fleets)."""
    return np.array([_meets(space, needs, w) & eligible[w] for w in range(len(eligible))], dtype=np.float64)


def _backtrack(back: npt.NDArray[np.int64], last: int) -> list[int]:
    path = [last]
    for w in range(len(back) - 1, 0, -1):
        path.append(int(back[w][path[-1]]))
    path.reverse()
    return path


def _plan_cost(space: _States, path: Sequence[int], window_s: int) -> float:
    run = float(space.rate[list(path)].sum()) * window_s / 3600
    return run + sum(float(space.trans[a, b]) for a, b in itertools.pairwise(path))


def cheapest(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    window_s: int = 60,
    min_requests: int = 20,
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> Plan:
    """O1: the cheapest feasible plan meeting the SLO in every window it can.

    Args:
        counts: Requests per second.
        variants: Variants.
        pools: Pool catalogue.
        slo_ms: p99 target.
        window_s: Window length.
        min_requests: Eligibility threshold.
        min_replicas: Floor.
        max_replicas: Ceiling.

    Returns:
        The plan.
    """
    needs, space = _needs_and_fleets(
        counts, variants, pools, slo_ms, window_s, min_requests, min_replicas, max_replicas
    )
    n_windows = len(needs[0])
    size = len(space.states)
    # A window no variant can meet runs the most capacity of any variant instead.
    all_bad = np.all([nd < 0 for nd in needs], axis=0)
    value = np.zeros(size)
    back = np.zeros((n_windows, size), dtype=np.int64)
    for w in range(n_windows):
        feasible = _meets(space, needs, w)
        if all_bad[w]:
            feasible = space.replicas == space.replicas.max()
        cost_w = np.where(feasible, space.rate * window_s / 3600, np.inf)
        if w == 0:
            value = cost_w
            continue
        total = value[:, None] + space.trans
        back[w] = np.argmin(total, axis=0)
        value = total[back[w], np.arange(size)] + cost_w
    path = _backtrack(back, int(np.argmin(value)))
    eligible = _eligible(counts, window_s, min_requests)
    met = eligible & ~all_bad
    return Plan(
        name="oracle",
        variant=tuple(variants[space.states[p][0]].name for p in path),
        replicas=tuple(space.states[p][1] for p in path),
        total_cost=float(value.min()),
        slo_attainment=float(met.sum() / eligible.sum()) if eligible.any() else 1.0,
        scaling_actions=sum(1 for a, b in itertools.pairwise(path) if a != b),
    )


@dataclasses.dataclass(frozen=True)
class _WindowPrices:
    """Per window, the cheapest fleet that meets it, and the floor every window pays at least."""

    best: list[tuple[str, int]]
    can_meet: npt.NDArray[np.bool_]
    extra: npt.NDArray[np.float64]  # money that meeting a window costs on top of the floor (inf: cannot)
    eligible: npt.NDArray[np.bool_]
    floor: tuple[str, int]
    base: float  # the floor for the whole period


def _window_prices(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    window_s: int,
    min_requests: int,
    min_replicas: int,
    max_replicas: int,
    hour_cap: float = math.inf,
) -> _WindowPrices:
    n_windows = len(counts) // window_s
    best_rate = np.full(n_windows, np.inf)
    best = [("", 0)] * n_windows
    for v in variants:
        nd = window_needs(counts, v, slo_ms, window_s, min_requests, min_replicas, max_replicas)
        for w, k in enumerate(nd):
            if k >= 0:
                r = pricing.fleet_price_per_hour(pools[v.pool], v.request, int(k))
                if r < best_rate[w]:
                    best_rate[w], best[w] = r, (v.name, int(k))
    floor_v = min(
        variants, key=lambda v: pricing.fleet_price_per_hour(pools[v.pool], v.request, min_replicas)
    )
    floor_rate = pricing.fleet_price_per_hour(pools[floor_v.pool], floor_v.request, min_replicas)
    eligible = _eligible(counts, window_s, min_requests)
    can_meet = np.isfinite(best_rate) & (best_rate <= hour_cap) & eligible
    extra = np.where(can_meet, np.maximum(best_rate - floor_rate, 0.0) * window_s / 3600, np.inf)
    return _WindowPrices(
        best=best,
        can_meet=can_meet,
        extra=extra,
        eligible=eligible,
        floor=(floor_v.name, min_replicas),
        base=floor_rate * n_windows * window_s / 3600,
    )


def _relaxed_plan(
    name: str,
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    prices: _WindowPrices,
    chosen: npt.NDArray[np.bool_],
    slo_ms: float,
    window_s: int,
) -> Plan:
    """The plan that meets the `chosen` windows with their cheapest fleets and runs the floor elsewhere."""
    plan = [prices.best[w] if chosen[w] else prices.floor for w in range(len(chosen))]
    by_name = {v.name: v for v in variants}
    eligible = prices.eligible
    return Plan(
        name=name,
        variant=tuple(p[0] for p in plan),
        replicas=tuple(p[1] for p in plan),
        total_cost=prices.base + float(prices.extra[chosen].sum()),
        slo_attainment=float((chosen & eligible).sum() / eligible.sum()) if eligible.any() else 1.0,
        scaling_actions=sum(1 for a, b in itertools.pairwise(plan) if a != b),
        request_slo_share=request_slo_share(counts, [(by_name[n], k) for n, k in plan], slo_ms, window_s),
    )


def budget_upper_bound(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    budget: budgets.Budget,
    window_s: int = 60,
    min_requests: int = 20,
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> Plan:
    """Upper bound on SLO-met windows within the budget (start-up billing ignored); the arguments are
    those of `best_within_budget`. Its plan is a relaxation: it may overrun once start-ups are billed."""
    hour_cap = budget.per_hour if budget.per_hour is not None else math.inf
    prices = _window_prices(
        counts, variants, pools, slo_ms, window_s, min_requests, min_replicas, max_replicas, hour_cap
    )
    remaining = (budget.per_month - prices.base) if budget.per_month is not None else math.inf
    chosen = np.zeros(len(prices.extra), dtype=np.bool_)
    for w in np.argsort(prices.extra):
        if prices.can_meet[w] and prices.extra[w] <= remaining:
            chosen[w] = True
            remaining -= float(prices.extra[w])
    return _relaxed_plan("oracle-budget-bound", counts, variants, prices, chosen, slo_ms, window_s)


def cost_lower_bound(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    attainment: float,
    window_s: int = 60,
    min_requests: int = 20,
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> Plan:
    """A lower bound on the cost of any plan whose SLO attainment is at least `attainment`.

    Every window pays at least the floor (`min_replicas` of the cheapest variant); meeting a window
    costs at least its cheapest fleet for the window; start-up billing is ignored. Meeting the share
    asked for therefore costs at least the floor plus the cheapest extras of that many windows, taken
    cheapest first. (A plan that changes its fleet within a 60-s window is not covered: a controller
    that syncs every 15 s could, in principle, do marginally better.)

    Args:
        counts: Requests per second.
        variants: Deployable variants.
        pools: Pool catalogue.
        slo_ms: p99 target.
        attainment: Share of eligible windows to meet, in [0, 1].
        window_s: Window length.
        min_requests: Windows with fewer requests are not judged.
        min_replicas: Floor.
        max_replicas: Ceiling per variant.

    Returns:
        The relaxed plan; its `total_cost` is the bound. When not enough windows can be met at all,
        it meets every window it can.
    """
    prices = _window_prices(
        counts, variants, pools, slo_ms, window_s, min_requests, min_replicas, max_replicas
    )
    k = math.ceil(attainment * int(prices.eligible.sum()) - 1e-9)
    order = [int(w) for w in np.argsort(prices.extra) if prices.can_meet[w]]
    chosen = np.zeros(len(prices.extra), dtype=np.bool_)
    chosen[order[:k]] = True
    return _relaxed_plan("oracle-cost-bound", counts, variants, prices, chosen, slo_ms, window_s)


def cost_lower_bound_within_actions(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    attainment: float,
    max_actions: int,
    window_s: int = 60,
    min_requests: int = 20,
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> float:
    """A lower bound on the cost of any plan that meets at least `attainment` of the windows and
    changes its fleet at most `max_actions` times (the starting fleet is free, as in the simulator).

    Same relaxation as `cost_lower_bound` (start-up billing ignored, one fleet per 60-s window), with
    the number of changes bounded: see `dual_bound`. The arguments are those of `cost_lower_bound`,
    plus `max_actions` (>= 0). Returns the bound (money over the trace), `math.inf` when no such plan
    meets that many windows.
    """
    needs, space = _needs_and_fleets(
        counts, variants, pools, slo_ms, window_s, min_requests, min_replicas, max_replicas
    )
    eligible = _eligible(counts, window_s, min_requests)
    met = _met_windows(space, needs, eligible)
    required = math.ceil(attainment * int(eligible.sum()) - 1e-9)
    return dual_bound(space.rate * window_s / 3600, met, required, max_actions)


def dual_bound(
    run_cost: npt.NDArray[np.float64], met: npt.NDArray[np.float64], required: int, max_actions: int
) -> float:
    """Lower bound on min cost s.t. windows met >= `required` and fleet changes <= `max_actions`.

    Weak duality: for any price `lam` >= 0 of a met window, every plan that meets `required` windows
    costs at least `min over plans (cost - lam * met) + lam * required`, the minimum taken over plans
    with at most `max_actions` changes. Any price gives a valid bound: the best of a log grid, then of
    a finer grid around it, is returned.

    Args:
        run_cost: Cost of running each fleet for one window, shape (fleets,).
        met: 1 where a fleet meets an (eligible) window, shape (windows, fleets).
        required: Windows that must be met.
        max_actions: Most changes of fleet between consecutive windows.

    Returns:
        The bound; `math.inf` when no plan within `max_actions` meets `required` windows.
    """
    n_windows = met.shape[0]
    changes = max(0, min(max_actions, n_windows - 1))
    most = -_min_within_changes(np.zeros_like(run_cost), met, np.ones(1), changes)[0]
    if most < required - 1e-9:
        return math.inf
    # Above `top` one window outweighs any plan's whole cost; below `low` no window is worth a fleet.
    top = float(run_cost.max()) * n_windows + 1.0
    low = max(float(np.diff(np.unique(run_cost)).min(initial=top)), 1e-9) * 1e-3
    grid = np.geomspace(low, top, 48)
    best = _min_within_changes(run_cost, met, grid, changes) + grid * required
    at = int(np.argmax(best))
    fine = np.geomspace(grid[max(0, at - 1)], grid[min(len(grid) - 1, at + 1)], 48)
    finer = _min_within_changes(run_cost, met, fine, changes) + fine * required
    return float(max(0.0, best.max(), finer.max()))


def _min_within_changes(
    run_cost: npt.NDArray[np.float64],
    met: npt.NDArray[np.float64],
    lam: npt.NDArray[np.float64],
    changes: int,
) -> npt.NDArray[np.float64]:
    """Per price in `lam`, min over plans with at most `changes` fleet changes of cost - lam * met."""
    v = np.full((len(lam), changes + 1, len(run_cost)), np.inf)
    v[:, 0, :] = run_cost[None, :] - lam[:, None] * met[0][None, :]
    for w in range(1, met.shape[0]):
        # Stay on a fleet, or change to any fleet from the best one with one change fewer.
        moved = np.full_like(v, np.inf)
        moved[:, 1:, :] = v[:, :-1, :].min(axis=2, keepdims=True)
        v = np.minimum(v, moved) + (run_cost[None, :] - lam[:, None] * met[w][None, :])[:, None, :]
    out: npt.NDArray[np.float64] = v.reshape(len(lam), -1).min(axis=1)
    return out


def _fill(
    space: _States,
    met: npt.NDArray[np.float64],
    within: list[int],
    over: list[int],
    cap: float,
    window_s: int,
    segment: int = 60,
) -> list[int]:
    """Close the Lagrangian's duality gap: take the over-budget plan's fleets hour by hour, best
    windows gained per money first, while the exact cost stays within the cap."""
    n = len(within)
    gains = []
    for start in range(0, n, segment):
        stop = min(n, start + segment)
        trial = within[:start] + over[start:stop] + within[stop:]
        gained = float(met[np.arange(start, stop), over[start:stop]].sum())
        gained -= float(met[np.arange(start, stop), within[start:stop]].sum())
        extra = _plan_cost(space, trial, window_s) - _plan_cost(space, within, window_s)
        if gained > 0:
            gains.append((gained / max(extra, 1e-12), start, stop))
    path = list(within)
    for _, start, stop in sorted(gains, reverse=True):
        trial = path[:start] + over[start:stop] + path[stop:]
        if _plan_cost(space, trial, window_s) <= cap:
            path = trial
    return path


def best_within_budget(
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    slo_ms: float,
    budget: budgets.Budget,
    window_s: int = 60,
    min_requests: int = 20,
    min_replicas: int = 1,
    max_replicas: int = 100,
    iterations: int = 40,
) -> Plan:
    """O2: the most SLO-met windows a feasible plan buys within the budget (Lagrangian DP).

    The arguments are those of `cheapest`, plus `budget` (caps; `per_month` for the whole period) and
    `iterations` (bisection steps on the price of money).
    """
    needs, space = _needs_and_fleets(
        counts, variants, pools, slo_ms, window_s, min_requests, min_replicas, max_replicas
    )
    n_windows = len(needs[0])
    size = len(space.states)
    eligible = _eligible(counts, window_s, min_requests)
    hour_cap = budget.per_hour if budget.per_hour is not None else math.inf
    allowed = space.rate <= hour_cap * (1 + 1e-9)
    if not allowed.any():
        allowed = space.rate == space.rate.min()
    met = _met_windows(space, needs, eligible)
    run_cost = space.rate * window_s / 3600

    def solve(lam: float) -> list[int]:
        value = np.where(allowed, met[0] - lam * run_cost, -np.inf)
        back = np.zeros((n_windows, size), dtype=np.int64)
        for w in range(1, n_windows):
            total = value[:, None] - lam * space.trans
            back[w] = np.argmax(total, axis=0)
            value = total[back[w], np.arange(size)] + np.where(allowed, met[w] - lam * run_cost, -np.inf)
        return _backtrack(back, int(np.argmax(value)))

    # Rounding must not make the exact O1 plan look over a budget of exactly its cost.
    cap = budget.per_month * (1 + 1e-9) if budget.per_month is not None else math.inf
    # The price of money: 0 meets what the fleets can; a price so high that one window's worth of the
    # dearest fleet outweighs a met window gives the cheapest plan.
    lo, hi = 0.0, 2.0 / max(float(run_cost.min()), 1e-12)
    path = solve(lo)
    if _plan_cost(space, path, window_s) > cap:
        over = path
        path = solve(hi)
        for _ in range(iterations):
            mid = (lo + hi) / 2
            candidate = solve(mid)
            if _plan_cost(space, candidate, window_s) <= cap:
                hi, path = mid, candidate
            else:
                lo, over = mid, candidate
        path = _fill(space, met, path, over, cap, window_s)
    plan_met = met[np.arange(n_windows), path].astype(bool)
    by_name = {v.name: v for v in variants}
    plan = [(variants[space.states[p][0]].name, space.states[p][1]) for p in path]
    return Plan(
        name="oracle-budget",
        variant=tuple(p[0] for p in plan),
        replicas=tuple(p[1] for p in plan),
        total_cost=_plan_cost(space, path, window_s),
        slo_attainment=float((plan_met & eligible).sum() / eligible.sum()) if eligible.any() else 1.0,
        scaling_actions=sum(1 for a, b in itertools.pairwise(path) if a != b),
        request_slo_share=request_slo_share(counts, [(by_name[n], k) for n, k in plan], slo_ms, window_s),
    )
