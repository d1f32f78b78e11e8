"""Time-step simulator: replays per-second arrivals against a controller and a replica fleet.

Model (stated, not measured):

* Time step 1 s. Arrivals in a second are Poisson at that second's count; a serving pool of `c` ready
  replicas is M/M/c (`cost.queueing`), so a request's p99 latency is the profiled p99 service time
  plus the Erlang-C p99 wait, plus the time to drain any backlog carried in from earlier seconds
  (fluid queue: backlog grows when arrivals exceed `c * mu`). Requests that would wait more than
  `max_queue_s` are rejected (Triton's queue timeout) and count as late; a pool with no ready replica
  holds `max_queue_s` of arrivals.
* A scale-up launches replicas at once: they are billed from launch and serve after the pool's
  `startup_s` (default 120 s GPU, 60 s CPU: scheduling, image pull, model load). A scale-down removes
  the youngest replicas first (not-ready ones first) and stops their billing at once, except that
  every replica is billed at least 60 s (AWS per-second billing with a 60-s minimum).
* Billing is by whole nodes (`pricing.fleet_price_per_hour`), the number budgets are enforced on.
* Controllers see Triton counters through `cost.metrics`: each sync the rate over the last 30 s.
* SLO: a 60-s window with at least `min_window_requests` requests meets it when the request-weighted
  99th percentile of its per-second p99 latencies is at most the target.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from thrifty_operator.cost import budgets, metrics, policy, pricing, queueing


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Simulation settings.

    Attributes:
        slo_ms: p99 latency target.
        budget: Caps; `per_month` is the cap for the whole simulated period (the CLI pro-rates it).
        sync_s: Controller period.
        metrics_window_s: Rate window of the load the controllers see.
        window_s: SLO window.
        min_window_requests: Windows with fewer requests are not counted.
        billing_minimum_s: Minimum billed life of a replica.
        min_replicas: Floor for every policy.
        max_replicas: Ceiling for every policy.
        max_queue_s: Requests that would wait longer are rejected (Triton's queue policy with a
            timeout, or the client giving up); they count as late.
    """

    slo_ms: float
    budget: budgets.Budget = budgets.UNLIMITED
    sync_s: int = 15
    metrics_window_s: int = 30
    window_s: int = 60
    min_window_requests: int = 20
    billing_minimum_s: float = 60.0
    min_replicas: int = 1
    max_replicas: int = 100
    max_queue_s: float = 2.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """What a controller wants: `replicas` of `variant`.

    `keep_previous`: keep other variants serving until this one has `replicas` ready; a later target without
    it ends the drain at once.
    """

    variant: str
    replicas: int
    keep_previous: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class View:
    """What a controller sees at a sync."""

    now: float
    load: metrics.LoadSample
    ready: int
    spent: float
    hours_left: float


class Controller(Protocol):
    """A scaling policy under test."""

    name: str

    def initial(self) -> Target:
        """Fleet at time 0 (ready from the start, as if it had run before the trace)."""
        ...

    def step(self, view: View) -> Target:
        """Decide at one sync."""
        ...


@dataclasses.dataclass(kw_only=True)
class RunResult:
    """Metrics of one run (JSON-friendly)."""

    policy: str
    total_cost: float
    cost_per_million_requests: float
    budget_overrun: float
    budget_overrun_windows: int
    slo_attainment: float
    request_slo_share: float
    eligible_windows: int
    scaling_actions: int
    cold_starts: int
    mean_replicas: float
    replicas_per_minute: list[float]
    cumulative_spend_per_minute: list[float]
    variant_seconds: dict[str, float]
    budget_limited_syncs: int = 0
    rejected_requests: float = 0.0


@functools.lru_cache(maxsize=400_000)
def _late(rate: int, servers: int, mu: float, p99: float, slo_ms: float) -> float:
    return queueing.late_fraction(float(rate), servers, mu, p99, slo_ms)


@functools.lru_cache(maxsize=400_000)
def _mean_wait(rate: int, servers: int, mu: float) -> float:
    return queueing.mean_wait_ms(float(rate), servers, mu)


def window_attainment(
    counts: npt.NDArray[np.int64], late: npt.NDArray[np.float64], window_s: int, min_requests: int
) -> tuple[float, int, npt.NDArray[np.bool_]]:
    """Share of eligible windows whose p99 latency meets the SLO.

    A window's p99 meets the target exactly when at most 1 % of its requests are late.

    Args:
        counts: Requests per second.
        late: Share of each second's requests slower than the target.
        window_s: Window length.
        min_requests: Eligibility threshold.

    Returns:
        (attainment in [0, 1], eligible windows, met flag per window).
    """
    n = len(counts) // window_s
    c = counts[: n * window_s].reshape(n, window_s).astype(np.float64)
    total = c.sum(axis=1)
    late_requests = (c * late[: n * window_s].reshape(n, window_s)).sum(axis=1)
    eligible = total >= min_requests
    met: npt.NDArray[np.bool_] = ~eligible | (late_requests <= 0.01 * total)
    count = int(eligible.sum())
    return (float((met & eligible).sum()) / count if count else 1.0), count, met


def rolling_overrun(
    spend_per_s: npt.NDArray[np.float64], budget: budgets.Budget, step_s: int = 60
) -> tuple[float, int]:
    """Budget overrun: amount and number of violating windows.

    Hourly cap: every rolling hour (starting every `step_s`) must stay within `per_hour`; a trace
    shorter than an hour is one window with the cap pro-rated. Period cap: the total must stay within
    `per_month` (already pro-rated to the period). Amount = sum of the excesses.

    Args:
        spend_per_s: Spend billed in each second.
        budget: Caps.
        step_s: Start step of the rolling windows.

    Returns:
        (overrun amount, violating windows).
    """
    amount, windows = 0.0, 0
    cum = np.concatenate(([0.0], np.cumsum(spend_per_s)))
    if budget.per_hour is not None:
        length = min(3600, len(spend_per_s))
        cap = budget.per_hour * length / 3600 * (1 + 1e-9)
        starts = np.arange(0, len(spend_per_s) - length + 1, step_s)
        excess = cum[starts + length] - cum[starts] - cap
        amount += float(excess[excess > 0].sum())
        windows += int((excess > 0).sum())
    if budget.per_month is not None and cum[-1] > budget.per_month * (1 + 1e-9):
        amount += float(cum[-1] - budget.per_month)
        windows += 1
    return amount, windows


class _Fleet:
    """Replicas per variant as (launch time, ready time), with billing."""

    def __init__(
        self,
        variants: Sequence[policy.Variant],
        pools: Mapping[str, pricing.PoolPrice],
        spend: npt.NDArray[np.float64],
        billing_minimum_s: float,
        offset: int = 0,
    ) -> None:
        self.by_name = {v.name: v for v in variants}
        self.pools = pools
        self.reps: dict[str, list[tuple[float, float]]] = {v.name: [] for v in variants}
        self.spend = spend
        self.billing_minimum_s = billing_minimum_s
        self.offset = offset  # index of time 0 in `spend`
        self.cold_starts = 0

    def ready(self, name: str, now: float) -> int:
        return sum(1 for r in self.reps[name] if r[1] <= now)

    def _unit_price(self, v: policy.Variant) -> float:
        pool = self.pools[v.pool]
        return pool.price_per_hour / pricing.replicas_per_node(pool, v.request)

    def scale(self, name: str, replicas: int, now: float) -> None:
        have = self.reps[name]
        if replicas > len(have):
            v = self.by_name[name]
            start = self.pools[v.pool].startup_s
            self.reps[name] = have + [(now, now + start)] * (replicas - len(have))
            self.cold_starts += replicas - len(have)
            return
        ordered = sorted(have, key=lambda r: r[1])  # keep the oldest ready ones
        for launch, _ready in ordered[replicas:]:
            age = now - launch
            if age < self.billing_minimum_s:
                # Billed for at least the minimum: charge the rest now.
                idx = min(int(now) + self.offset, len(self.spend) - 1)
                self.spend[idx] += (
                    (self.billing_minimum_s - age) * self._unit_price(self.by_name[name]) / 3600
                )
        self.reps[name] = ordered[:replicas]

    def drop_others(self, keep: str, now: float) -> None:
        for other in self.reps:
            if other != keep and self.reps[other]:
                self.scale(other, 0, now)

    def rate_per_hour(self) -> float:
        total = 0.0
        for name, reps in self.reps.items():
            if reps:
                v = self.by_name[name]
                total += pricing.fleet_price_per_hour(self.pools[v.pool], v.request, len(reps))
        return total

    def serving(self, now: float) -> tuple[policy.Variant | None, float]:
        """The variant with most ready capacity (its latency profile serves) and total capacity."""
        cap, main, main_cap = 0.0, None, 0.0
        for name in self.reps:
            v = self.by_name[name]
            c = self.ready(name, now) * v.throughput_per_s
            cap += c
            if c > main_cap:
                main, main_cap = v, c
        return main, cap


class _Queue:
    """The serving pool's queue and Triton's cumulative counters."""

    def __init__(self) -> None:
        self.backlog = self.success = self.queue_us = self.duration_us = self.rejected = 0.0

    def serve(self, a: int, main: policy.Variant | None, cap: float, cfg: SimConfig) -> tuple[float, float]:
        """Serve one second with `a` arrivals; returns (late share of them, requests rejected)."""
        if main is None:
            self.backlog += a
            late = 1.0 if a else 0.0
            served = wait = 0.0
            limit = a * cfg.max_queue_s
        else:
            servers = max(1, round(cap / main.throughput_per_s))
            carried_ms = 1000.0 * self.backlog / cap
            total = self.backlog + a
            served = min(total, cap)
            self.backlog = total - served
            mu, p99 = main.throughput_per_s, main.latency_p99_ms
            if a < cap:
                if carried_ms:
                    late = queueing.late_fraction(a, servers, mu, p99, cfg.slo_ms, carried_ms)
                else:
                    late = _late(a, servers, mu, p99, cfg.slo_ms)
                wait = _mean_wait(a, servers, mu) + carried_ms
            else:
                # At or above capacity M/M/c is unstable: the second's requests are late.
                late = 1.0
                wait = 1000.0 * self.backlog / cap
            self.duration_us += served * (main.latency_p50_ms + wait) * 1000
            limit = cap * cfg.max_queue_s
        dropped = 0.0
        if self.backlog > limit:
            dropped = self.backlog - limit
            self.backlog = limit
            self.rejected += dropped
            if a:
                late = min(1.0, late + dropped / a)
        self.success += served
        self.queue_us += served * wait * 1000
        return late, dropped

    def counters(self, timestamp: float) -> metrics.TritonCounters:
        """What a scrape of Triton's metrics would read now."""
        return metrics.TritonCounters(
            timestamp=timestamp,
            request_success=self.success,
            queue_duration_us=self.queue_us,
            request_duration_us=self.duration_us,
            pending=self.backlog,
            rejected=self.rejected,
        )


def run(
    controller: Controller,
    counts: npt.NDArray[np.int64],
    variants: Sequence[policy.Variant],
    pools: Mapping[str, pricing.PoolPrice],
    cfg: SimConfig,
    burn_in: npt.NDArray[np.int64] | None = None,
) -> RunResult:
    """Replay `counts` against `controller`.

    Args:
        controller: Policy under test.
        counts: Requests arriving in each second.
        variants: Variants the controller may name.
        pools: Pool catalogue.
        cfg: Settings.
        burn_in: Load replayed first and not measured, so that the measured replay starts from the
            fleet and memory the policy reaches on such load rather than from its initial fleet. Its
            clock ends at 0 (a whole number of days keeps the time of day). The period budget starts
            afresh after it (a new month).

    Returns:
        The run's metrics (of `counts` alone).
    """
    prefix = np.zeros(0, dtype=np.int64) if burn_in is None else burn_in
    offset = len(prefix)
    load = np.concatenate((prefix, counts))
    total_n = len(load)
    n = len(counts)
    period_h = n / 3600
    spend_all = np.zeros(total_n)
    late_all = np.zeros(total_n)
    replicas_all = np.zeros(total_n)
    fleet = _Fleet(variants, pools, spend_all, cfg.billing_minimum_s, offset)
    target = controller.initial()
    fleet.reps[target.variant] = [(-1e9, -1e9)] * target.replicas
    variant_seconds = dict.fromkeys(fleet.by_name, 0.0)
    draining = False  # other variants serve until `target` is ready
    queue = _Queue()
    snaps: list[metrics.TritonCounters] = []
    actions = limited = 0
    spent = 0.0
    rejected_measured = 0.0
    cold_at_start = 0

    for s in range(total_n):
        now = float(s - offset)
        measured = s >= offset
        if s == offset:
            cold_at_start = fleet.cold_starts
        if s % cfg.sync_s == 0 and s >= cfg.metrics_window_s:
            observed = metrics.load_between(snaps[s - cfg.metrics_window_s], snaps[-1])
            view = View(
                now=now,
                load=observed,
                ready=fleet.ready(target.variant, now),
                spent=spent,
                hours_left=max(period_h - max(0.0, now) / 3600, 1e-6),
            )
            new = controller.step(view)
            if measured:
                limited += bool(getattr(controller, "last_limited", False))
                if (new.variant, new.replicas) != (target.variant, target.replicas):
                    actions += 1
            fleet.scale(new.variant, new.replicas, now)
            # A switch starts a drain when the controller keeps the old fleet; any later step ends it once the
            # controller stops keeping it (what the policy accounts), or the new fleet is ready (below).
            if new.variant != target.variant or draining:
                draining = new.keep_previous
            target = new
            if not draining:
                fleet.drop_others(new.variant, now)
        if draining and fleet.ready(target.variant, now) >= target.replicas:
            fleet.drop_others(target.variant, now)
            draining = False

        rate_h = fleet.rate_per_hour()
        spend_all[s] += rate_h / 3600
        if measured:
            spent += float(spend_all[s])
            for name, reps in fleet.reps.items():
                variant_seconds[name] += len(reps)
                replicas_all[s] += len(reps)

        main, cap = fleet.serving(now)
        late_all[s], dropped = queue.serve(int(load[s]), main, cap, cfg)
        if measured:
            rejected_measured += dropped
        snaps.append(queue.counters(now + 1))

    spend = spend_all[offset:]
    late = late_all[offset:]
    replicas_series = replicas_all[offset:]
    attainment, eligible, _ = window_attainment(counts, late, cfg.window_s, cfg.min_window_requests)
    overrun, windows = rolling_overrun(spend, cfg.budget)
    total_cost = float(spend.sum())
    minutes = max(1, n // 60)
    cum = np.cumsum(spend)
    return RunResult(
        policy=controller.name,
        total_cost=total_cost,
        cost_per_million_requests=total_cost / max(1, int(counts.sum())) * 1e6,
        budget_overrun=overrun,
        budget_overrun_windows=windows,
        slo_attainment=attainment,
        request_slo_share=1.0 - float((counts * late).sum()) / max(1, int(counts.sum())),
        eligible_windows=eligible,
        scaling_actions=actions,
        cold_starts=fleet.cold_starts - cold_at_start,
        mean_replicas=float(replicas_series.mean()),
        replicas_per_minute=[
            float(x) for x in replicas_series[: minutes * 60].reshape(minutes, 60).mean(axis=1)
        ],
        cumulative_spend_per_minute=[float(cum[min(n - 1, (m + 1) * 60 - 1)]) for m in range(minutes)],
        variant_seconds=variant_seconds,
        budget_limited_syncs=limited,
        rejected_requests=rejected_measured,
    )
