"""Scaling policy, state in and state out."""

import dataclasses
import math
from collections.abc import Callable

import pytest

from thrifty_operator.cost import budgets, policy, pricing, queueing
from thrifty_operator.cost.metrics import LoadSample

POOLS = {
    "gpu-t4": pricing.PoolPrice(
        name="gpu-t4", accelerator="nvidia-tesla-t4", cpu=4, memory_gib=16, gpu=1, price_per_hour=0.526
    ),
    "cpu-c7i": pricing.PoolPrice(
        name="cpu-c7i", accelerator="none", cpu=4, memory_gib=8, gpu=0, price_per_hour=0.1785
    ),
}
GPU = policy.Variant(
    name="tensorrt-fp16",
    pool="gpu-t4",
    request=pricing.ReplicaRequest(cpu=3, memory_gib=12, gpu=1),
    throughput_per_s=600,
    latency_p50_ms=6,
    latency_p99_ms=14,
)
CPU = policy.Variant(
    name="onnx-int8",
    pool="cpu-c7i",
    request=pricing.ReplicaRequest(cpu=2, memory_gib=3.5),
    throughput_per_s=70,
    latency_p50_ms=12,
    latency_p99_ms=28,
)
SLOW = policy.Variant(
    name="onnx-fp32",
    pool="cpu-c7i",
    request=pricing.ReplicaRequest(cpu=2, memory_gib=3.5),
    throughput_per_s=30,
    latency_p50_ms=40,
    latency_p99_ms=80,
)
VARIANTS = (GPU, CPU, SLOW)
CONFIG = policy.PolicyConfig(slo_p99_ms=50)


def decide(
    rate: float,
    state: policy.PolicyState,
    now: float,
    budget: budgets.Budget = budgets.UNLIMITED,
    config: policy.PolicyConfig = CONFIG,
    variants: tuple[policy.Variant, ...] = VARIANTS,
    spent: float = 0.0,
    hours_left: float = 720.0,
) -> policy.Decision:
    obs = policy.Observation(
        now=now,
        load=LoadSample(request_rate=rate),
        month_to_date=spent,
        hours_left=hours_left,
        ready_replicas=state.replicas,
    )
    return policy.decide(config, variants, POOLS, budget, state, obs)


def test_first_decision_picks_cpu_int8_at_low_load_and_gpu_at_high_load() -> None:
    low = decide(100, policy.PolicyState(), 0)
    assert (low.variant, low.pool, low.reason) == ("onnx-int8", "cpu-c7i", "ScaledUp")
    high = decide(1500, policy.PolicyState(), 0)
    assert high.variant == "tensorrt-fp16"
    assert high.meets_slo
    assert queueing.p99_latency_ms(1500, high.replicas, 600, 14) <= 50


def test_variant_whose_service_latency_exceeds_the_slo_is_never_chosen() -> None:
    d = decide(10, policy.PolicyState(), 0, variants=(SLOW, GPU))
    assert d.variant == "tensorrt-fp16"


def test_scale_up_is_immediate_but_bounded() -> None:
    state = decide(500, policy.PolicyState(), 0, variants=(GPU,)).state
    assert state.replicas == 2
    d = decide(20_000, state, 15, variants=(GPU,))
    assert d.reason == "ScaledUp"
    assert d.replicas == 6  # max(2x, +4) per decision


def test_scale_down_waits_for_the_stabilization_window() -> None:
    state = decide(1500, policy.PolicyState(), 0, variants=(GPU,)).state
    high = state.replicas
    t = 0.0
    for _ in range(19):  # 285 s of low load: still within the 300-s window
        t += 15
        d = decide(300, state, t, variants=(GPU,))
        assert d.replicas == high
        state = d.state
    d = decide(300, state, t + 30, variants=(GPU,))
    assert d.reason == "ScaledDown"
    assert d.replicas < high


def test_oscillating_load_does_not_flap() -> None:
    state = decide(1000, policy.PolicyState(), 0, variants=(GPU,)).state
    changes = 0
    for i in range(1, 200):
        rate = 1000 if i % 2 else 700
        d = decide(rate, state, 15 * i, variants=(GPU,))
        changes += d.replicas != state.replicas
        state = d.state
    assert changes == 0


def test_load_near_a_threshold_does_not_flap() -> None:
    state = decide(80, policy.PolicyState(), 0, variants=(CPU,)).state
    changes = 0
    for i in range(1, 400):
        rate = 80 + 8 * math.sin(i / 3)
        d = decide(rate, state, 15 * i, variants=(CPU,))
        changes += d.replicas != state.replicas
        state = d.state
    assert changes <= 1


def test_voluntary_variant_switch_waits_for_the_hold_time() -> None:
    state = decide(1200, policy.PolicyState(), 0).state
    assert state.variant == "tensorrt-fp16"
    t = 0.0
    # Load falls to where CPU INT8 is far cheaper; the switch waits for the window and the hold.
    while True:
        t += 15
        d = decide(60, state, t)
        state = d.state
        if d.reason == "VariantSwitched":
            break
        assert t < 2000
    assert t >= CONFIG.variant_hold_s
    assert d.variant == "onnx-int8"
    assert d.keep_previous_until_ready  # unlimited budget: make before break


def test_budget_caps_rate_and_degrades_to_cheaper_variant_first() -> None:
    # Within the variant hold time the policy would keep its GPU; the cap only pays for CPU INT8.
    state = policy.PolicyState(variant="tensorrt-fp16", replicas=1, variant_since=0)
    assert decide(120, state, 15).variant == "tensorrt-fp16"
    d = decide(120, state, 15, budget=budgets.Budget(per_hour=0.5))
    assert d.variant == "onnx-int8"
    assert d.meets_slo
    assert d.rate_per_hour <= 0.5
    assert [g.reason for g in d.given_up] == ["CheaperVariant"]
    assert "\n" not in d.given_up[0].message


def test_budget_then_takes_fewer_replicas_with_most_capacity() -> None:
    d = decide(2000, policy.PolicyState(), 0, budget=budgets.Budget(per_hour=1.2))
    assert d.budget_limited
    assert [g.reason for g in d.given_up] == ["FewerReplicas"]
    assert not d.meets_slo
    assert d.rate_per_hour <= 1.2
    assert (d.variant, d.replicas) == ("tensorrt-fp16", 2)


def test_budget_never_goes_below_min_replicas() -> None:
    config = policy.PolicyConfig(slo_p99_ms=50, min_replicas=2)
    d = decide(2000, policy.PolicyState(), 0, budget=budgets.Budget(per_hour=0.1), config=config)
    assert d.replicas == 2
    assert [g.reason for g in d.given_up] == ["BudgetBelowMinimum"]
    assert d.variant == "onnx-int8"  # the cheapest floor


def _learned_day(rate_at: Callable[[float], float]) -> policy.PolicyState:
    """State after a day of decisions every 5 minutes at `rate_at(hour)` without a budget."""
    state = policy.PolicyState()
    for t in range(0, 86_400 + 1, 300):
        state = decide(rate_at((t % 86_400) / 3600), state, float(t)).state
    return state


def _day(hour: float) -> float:
    return 1500.0 if 12 <= hour < 18 else 100.0


def test_monthly_budget_gives_the_peak_up_and_meets_the_nights() -> None:
    state = _learned_day(_day)
    needs = state.profile.needs
    assert all(n is not None for n in needs)
    floor = policy.floor_rate(CONFIG, POOLS, VARIANTS)[1]
    night_need, peak_need = needs[0], needs[14 * 4]
    assert night_need is not None and peak_need is not None and night_need < peak_need
    # From 14:00 on day 2 to the end of day 3: 24 night hours and 10 peak hours. The money left pays
    # the floor throughout and the nights above it, not the peaks.
    hours_left = 34.0
    budget = budgets.Budget(per_month=floor * hours_left + 24 * (night_need - floor) * 1.05)
    now = 86_400.0 + 14 * 3600
    peak = decide(1500, state, now, budget=budget, hours_left=hours_left)
    assert [g.reason for g in peak.given_up][:1] == ["PeakGivenUp"]
    assert "\n" not in peak.given_up[0].message
    assert peak.rate_per_hour <= floor
    assert peak.replicas >= CONFIG.min_replicas
    # The slot's verdict holds: a quieter minute in the same slot is still given up.
    assert decide(200, peak.state, now + 60, budget=budget, hours_left=hours_left).budget_limited
    night = decide(100, peak.state, now + 9 * 3600, budget=budget, hours_left=hours_left - 9)
    assert night.meets_slo
    assert not night.budget_limited


def test_binding_monthly_budget_plans_without_headroom() -> None:
    state = decide(1000, policy.PolicyState(), 0, variants=(GPU,)).state
    free = decide(1000, state, 15, variants=(GPU,))
    tight = decide(1000, state, 15, variants=(GPU,), budget=budgets.Budget(per_month=600.0), hours_left=720)
    assert tight.replicas < free.replicas
    assert tight.meets_slo
    assert queueing.p99_latency_ms(1000, tight.replicas, 600, 14) <= 50


def test_variant_the_budget_forced_is_not_held() -> None:
    # The budget forced CPU INT8 a minute ago; at a load where the GPU is cheaper the choice is free.
    forced = policy.PolicyState(variant="onnx-int8", replicas=2, variant_since=0, budget_limited=True)
    d = decide(1500, forced, 60)
    assert (d.variant, d.reason) == ("tensorrt-fp16", "VariantSwitched")
    held = dataclasses.replace(forced, budget_limited=False)
    assert decide(1500, held, 60).variant == "onnx-int8"


def test_namespace_share_combined_with_own_budget_caps_each_model() -> None:
    shares = budgets.split_namespace_budget(budgets.Budget(per_hour=2.0), {"big": 1500.0, "small": 500.0})
    effective = budgets.combine(budgets.Budget(per_hour=5.0), shares["small"])
    d = decide(500, policy.PolicyState(), 0, budget=effective)
    assert d.rate_per_hour <= 0.5


def test_suspended_scales_to_zero_without_budget_complaints() -> None:
    config = policy.PolicyConfig(slo_p99_ms=50, min_replicas=2, suspended=True)
    d = decide(2000, policy.PolicyState(variant="tensorrt-fp16", replicas=3), 0, config=config)
    assert (d.replicas, d.reason, d.given_up, d.rate_per_hour) == (0, "Suspended", (), 0.0)


def test_backlog_and_rejections_raise_the_planned_demand() -> None:
    load = LoadSample(request_rate=100.0, pending=3000.0, rejected_rate=50.0)
    assert policy.planned_demand(CONFIG, load) == pytest.approx((100 + 100 + 50) * CONFIG.headroom)


def test_long_triton_queue_with_all_replicas_ready_adds_a_replica() -> None:
    state = decide(300, policy.PolicyState(), 0, variants=(GPU,)).state
    assert state.replicas == 1

    def at(now: float, ready: int) -> policy.Observation:
        load = LoadSample(request_rate=300, queue_us_per_request=40_000)
        return policy.Observation(now=now, load=load, ready_replicas=ready)

    # The first decision that sees every replica ready only starts the settling time: the metrics
    # window may still hold the backlog from before the replica served.
    d = policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, state, at(15, 1))
    assert d.replicas == 1 and d.state.ready_since == 15
    for now in (30, 45):
        d = policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, d.state, at(now, 1))
        assert d.replicas == 1
    d = policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, d.state, at(60, 1))
    assert d.replicas == 2  # settled and still queueing: the model underestimates the need
    assert d.state.ready_since is None  # the new replica has to become ready first
    # While a replica is still starting the same queue is expected and adds nothing.
    settled = dataclasses.replace(state, ready_since=0.0)
    assert policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, settled, at(60, 0)).replicas == 1


def test_missing_metrics_hold_the_fleet_instead_of_scaling_down() -> None:
    state = decide(1500, policy.PolicyState(), 0, variants=(GPU,)).state
    high = state.replicas
    for i in range(1, 60):  # 15 minutes without metrics, well past the stabilization window
        obs = policy.Observation(now=15.0 * i, load=None, ready_replicas=high)
        d = policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, state, obs)
        assert d.replicas == high
        state = d.state
    # The first decision ever without metrics plans for no load.
    first = policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, policy.PolicyState(), obs)
    assert first.replicas == CONFIG.min_replicas


def test_decide_rejects_unknown_pool() -> None:
    bad = policy.Variant(
        name="x", pool="nope", request=GPU.request, throughput_per_s=1, latency_p50_ms=1, latency_p99_ms=1
    )
    with pytest.raises(ValueError, match="unknown pool"):
        decide(1, policy.PolicyState(), 0, variants=(bad,))


def test_queueing_model_basics() -> None:
    assert queueing.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert queueing.p99_latency_ms(700, 1, 600, 14) == math.inf
    assert queueing.replicas_for_slo(0, 600, 14, 50) == 0
    assert queueing.replicas_for_slo(10, 30, 80, 50) is None
    assert queueing.late_fraction(100, 1, 600, 14, 50) < 0.01


def test_policy_state_round_trips_through_status() -> None:
    import json

    state = decide(800, policy.PolicyState(), 1_700_000_000.0).state
    raw = json.loads(json.dumps(state.to_status(), allow_nan=False))
    back = policy.PolicyState.from_status(raw)
    assert (back.variant, back.replicas, back.variant_since) == (
        state.variant,
        state.replicas,
        state.variant_since,
    )
    assert back.to_status() == raw
    settled = dataclasses.replace(state, ready_since=1_700_000_015.0)
    assert policy.PolicyState.from_status(settled.to_status()).ready_since == settled.ready_since
    assert policy.PolicyState.from_status({"replicas": "many"}) == policy.PolicyState()
    assert policy.PolicyState.from_status(None) == policy.PolicyState()


def test_replicas_fill_the_nodes_the_fleet_is_billed_for_only_when_asked() -> None:
    # One c7i node holds two CPU replicas: with fill_nodes the second costs nothing and absorbs a burst.
    filled = decide(
        2, policy.PolicyState(), 0, variants=(CPU,), config=dataclasses.replace(CONFIG, fill_nodes=True)
    )
    assert (filled.replicas, filled.rate_per_hour) == (2, pytest.approx(0.1785))
    lean = decide(2, policy.PolicyState(), 0, variants=(CPU,))
    assert (lean.replicas, lean.rate_per_hour) == (1, pytest.approx(0.1785))


def test_queue_time_above_the_model_plans_for_the_poisson_rate_that_explains_it() -> None:
    """Heavy-tailed arrivals at 110 req/s queued 1.2 ms per request on 4 CPU replicas, where M/M/4 predicts
    a fraction of that: the policy plans for the rate that queues as long, which needs more replicas."""
    config = dataclasses.replace(CONFIG, fill_nodes=False)
    state = policy.PolicyState(variant="onnx-int8", replicas=4, ready_since=0.0)
    obs = policy.Observation(
        now=600.0, load=LoadSample(request_rate=110, queue_us_per_request=1200), ready_replicas=4
    )
    bursty = policy.decide(config, (CPU,), POOLS, budgets.UNLIMITED, state, obs)
    assert bursty.replicas == 5
    plain = dataclasses.replace(config, burst_inversion_factor=math.inf)
    assert policy.decide(plain, (CPU,), POOLS, budgets.UNLIMITED, state, obs).replicas == 4
    # A queue the model explains, to the noise of Poisson arrivals, changes nothing.
    modelled = 1000 * queueing.mean_wait_ms(110, 4, 70)
    calm = dataclasses.replace(obs, load=LoadSample(request_rate=110, queue_us_per_request=1.3 * modelled))
    assert policy.decide(config, (CPU,), POOLS, budgets.UNLIMITED, state, calm).replicas == 4


def test_replicas_still_starting_are_not_scaled_down() -> None:
    state = policy.PolicyState(variant="tensorrt-fp16", replicas=4, demand_history=((0.0, 2000.0),))
    later = 1000.0  # well past the stabilization window, at a load one replica serves
    starting = policy.Observation(now=later, load=LoadSample(request_rate=100), ready_replicas=2)
    assert policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, state, starting).replicas == 4
    ready = dataclasses.replace(starting, ready_replicas=4)
    assert policy.decide(CONFIG, (GPU,), POOLS, budgets.UNLIMITED, state, ready).replicas == 2


def test_a_switch_that_keeps_the_old_fleet_accounts_it_until_the_new_one_is_ready() -> None:
    # 16 CPU replicas (8 nodes) serve 700 req/s; two T4s cost 74 % as much: a voluntary switch.
    state = policy.PolicyState(variant="onnx-int8", replicas=16, variant_since=0.0)
    switched = policy.decide(
        CONFIG,
        (GPU, CPU),
        POOLS,
        budgets.UNLIMITED,
        state,
        policy.Observation(now=1000.0, load=LoadSample(request_rate=700), ready_replicas=16),
    )
    assert switched.variant == "tensorrt-fp16" and switched.keep_previous_until_ready
    gpu_rate = switched.replicas * 0.526
    assert switched.rate_per_hour == pytest.approx(gpu_rate + 8 * 0.1785)
    assert switched.state.draining == ("onnx-int8", 16)

    def next_with(ready: int) -> policy.Decision:
        obs = policy.Observation(now=1015.0, load=LoadSample(request_rate=700), ready_replicas=ready)
        return policy.decide(CONFIG, (GPU, CPU), POOLS, budgets.UNLIMITED, switched.state, obs)

    assert next_with(0).rate_per_hour == pytest.approx(gpu_rate + 8 * 0.1785)
    done = next_with(switched.replicas)
    assert done.rate_per_hour == pytest.approx(gpu_rate) and done.state.draining is None
    assert policy.PolicyState.from_status(switched.state.to_status()).draining == ("onnx-int8", 16)
