"""Baselines compared with Thrifty in the benchmark (cost.md §5.3); Thrifty itself runs in `scaler`.

Baselines run the converter's selected variant (what a user would deploy) with Kubernetes' and KEDA's
documented defaults; a budget can only become a static `maxReplicas` for them (cost.md §1.1), which
they get: the most replicas the hourly cap, or the period cap spread evenly, pays for.
"""

from __future__ import annotations

import collections
import math

from thrifty_operator.cost import budgets, policy, pricing

from .simulate import SimConfig, Target, View


def budget_max_replicas(
    pool: pricing.PoolPrice, variant: policy.Variant, budget: budgets.Budget, period_h: float, ceiling: int
) -> int:
    """The static `maxReplicas` that keeps a fleet within the budget at all times.

    Args:
        pool: The variant's pool.
        variant: The deployed variant.
        budget: Caps (`per_month` for the whole period).
        period_h: Period length in hours.
        ceiling: Upper bound.

    Returns:
        Replicas (at least 1).
    """
    rate = budgets.allowed_rate_per_hour(budget, 0.0, period_h)
    n = ceiling
    while n > 1 and pricing.fleet_price_per_hour(pool, variant.request, n) > rate:
        n -= 1
    return n


class StaticPeak:
    """A fixed fleet sized for the trace's peak (known in advance: optimistic)."""

    def __init__(self, variant: str, replicas: int) -> None:
        """Run `replicas` of `variant` throughout."""
        self.name = "static-peak"
        self._target = Target(variant=variant, replicas=replicas)

    def initial(self) -> Target:
        """The fixed fleet."""
        return self._target

    def step(self, view: View) -> Target:
        """Never changes."""
        return self._target


class _HpaBehavior:
    """autoscaling/v2 defaults: tolerance 0.1, scale-up max(100 %, 4 pods) per 15 s, scale-down
    stabilization 300 s (rolling max of recommendations) with 100 % per 15 s."""

    def __init__(self, min_replicas: int, max_replicas: int, initial: int) -> None:
        self.min, self.max = min_replicas, max_replicas
        self.replicas = initial
        # The warm start counts as a recommendation at t=0, as for Thrifty.
        self._recs: collections.deque[tuple[float, int]] = collections.deque([(0.0, initial)])

    def apply(self, now: float, ratio: float, raw_desired: int) -> int:
        current = self.replicas
        desired = current if abs(ratio - 1.0) <= 0.1 else raw_desired
        desired = max(self.min, min(self.max, desired))
        self._recs.append((now, desired))
        while self._recs and self._recs[0][0] <= now - 300:
            self._recs.popleft()
        if desired < current:
            desired = min(current, max(n for _, n in self._recs))
        elif desired > current:
            desired = min(desired, max(2 * current, current + 4))
        self.replicas = desired
        return desired


class HpaLike:
    """HPA on utilisation (served rate / replica capacity), target 70 % by default, sync 15 s."""

    def __init__(
        self,
        variant: policy.Variant,
        cfg: SimConfig,
        max_replicas: int,
        initial: int,
        target: float = 0.7,
        name: str = "hpa",
    ) -> None:
        """Scale `variant` between cfg.min_replicas and `max_replicas`, starting from `initial`, to keep
        the average utilisation at `target`."""
        self.name = name
        self._v = variant
        self._target = target
        self._hpa = _HpaBehavior(max(1, cfg.min_replicas), max_replicas, initial)

    def initial(self) -> Target:
        """Starting fleet."""
        return Target(variant=self._v.name, replicas=self._hpa.replicas)

    def step(self, view: View) -> Target:
        """One HPA sync."""
        # Not-ready pods count as 0 % on scale-up, so the average is over all requested pods.
        usage = view.load.request_rate / self._v.throughput_per_s
        current = max(1, self._hpa.replicas)
        ratio = usage / (current * self._target)
        desired = math.ceil(usage / self._target)
        return Target(variant=self._v.name, replicas=self._hpa.apply(view.now, ratio, desired))


class KedaLike:
    """KEDA Prometheus scaler, AverageValue: desired = ceil(metric / threshold), polled every 30 s.

    Metric: request rate plus the backlog to drain in 30 s (`rate(success) + pending / 30`); threshold
    70 % of a replica's throughput; `minReplicaCount` 0 with a 300-s cooldown to zero (activation 0);
    1 <-> N by the HPA defaults.
    """

    def __init__(self, variant: policy.Variant, cfg: SimConfig, max_replicas: int, initial: int) -> None:
        """Scale `variant` between 0 and `max_replicas`, starting from `initial`."""
        self.name = "keda"
        self._v = variant
        self._hpa = _HpaBehavior(1, max_replicas, initial)
        self._metric = 0.0
        self._polled = -math.inf
        self._last_active = 0.0
        self._zero = False

    def initial(self) -> Target:
        """Starting fleet."""
        return Target(variant=self._v.name, replicas=self._hpa.replicas)

    def step(self, view: View) -> Target:
        """One HPA sync, with KEDA's metric cache and scale-to-zero."""
        if view.now - self._polled >= 30:
            self._metric = view.load.request_rate + view.load.pending / 30
            self._polled = view.now
        if self._metric > 0:
            self._last_active = view.now
            if self._zero:
                self._zero = False
                self._hpa.replicas = 1
        elif view.now - self._last_active >= 300:
            self._zero = True
        if self._zero:
            return Target(variant=self._v.name, replicas=0)
        threshold = 0.7 * self._v.throughput_per_s
        current = max(1, self._hpa.replicas)
        ratio = self._metric / (current * threshold)
        n = self._hpa.apply(view.now, ratio, math.ceil(self._metric / threshold))
        return Target(variant=self._v.name, replicas=n)
