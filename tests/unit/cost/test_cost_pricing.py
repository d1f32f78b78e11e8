"""Pricing and month-to-date accounting: state in, state out."""

import datetime

import pytest

from thrifty_operator.cost import pricing

UTC = datetime.UTC
G4DN = pricing.PoolPrice(
    name="gpu-t4", accelerator="nvidia-tesla-t4", cpu=4, memory_gib=16, gpu=1, price_per_hour=0.526
)
C7I = pricing.PoolPrice(name="cpu-c7i", accelerator="none", cpu=4, memory_gib=8, gpu=0, price_per_hour=0.1785)


def test_resource_rates_match_opencost_worked_example_for_g4dn() -> None:
    rates = pricing.resource_rates(G4DN)
    # cost.md §3.1 worked example: CPU 0.01453, RAM 0.001948, GPU 0.4367 per hour.
    assert rates.cpu == pytest.approx(0.01453, abs=1e-5)
    assert rates.memory_gib == pytest.approx(0.001948, abs=1e-6)
    assert rates.gpu == pytest.approx(0.4367, abs=1e-4)
    share = pricing.opencost_share_per_hour(G4DN, pricing.ReplicaRequest(cpu=2, memory_gib=8, gpu=1))
    assert share == pytest.approx(0.4814, abs=1e-4)


def test_resource_rates_add_up_to_the_node_price() -> None:
    rates = pricing.resource_rates(C7I)
    assert rates.cpu * 4 + rates.memory_gib * 8 == pytest.approx(0.1785)


def test_fleet_price_bills_whole_nodes_when_replicas_share_a_node() -> None:
    request = pricing.ReplicaRequest(cpu=2, memory_gib=3.5)
    assert pricing.replicas_per_node(C7I, request) == 2
    assert pricing.fleet_price_per_hour(C7I, request, 0) == 0
    assert pricing.fleet_price_per_hour(C7I, request, 1) == pytest.approx(0.1785)
    assert pricing.fleet_price_per_hour(C7I, request, 3) == pytest.approx(2 * 0.1785)


def test_fleet_price_raises_when_a_replica_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        pricing.fleet_price_per_hour(C7I, pricing.ReplicaRequest(cpu=2, memory_gib=4, gpu=1), 1)


def test_pool_rejects_gpu_count_inconsistent_with_accelerator() -> None:
    with pytest.raises(ValueError, match="accelerator"):
        pricing.PoolPrice(name="x", accelerator="none", cpu=4, memory_gib=16, gpu=1, price_per_hour=1)


def test_accrue_adds_previous_rate_times_elapsed_time() -> None:
    t0 = datetime.datetime(2026, 11, 10, 12, tzinfo=UTC)
    state = pricing.new_spend_state(t0, rate_per_hour=2.0)
    state = pricing.accrue(state, t0 + datetime.timedelta(minutes=90), rate_per_hour=1.0)
    assert state.month_to_date == pytest.approx(3.0)
    assert state.rate_per_hour == 1.0
    # A restart that reads the stored state back continues from it.
    state = pricing.accrue(state, t0 + datetime.timedelta(hours=2, minutes=30), rate_per_hour=1.0)
    assert state.month_to_date == pytest.approx(4.0)


def test_accrue_starts_a_new_month_at_the_boundary() -> None:
    t0 = datetime.datetime(2026, 11, 30, 23, tzinfo=UTC)
    state = pricing.accrue(pricing.new_spend_state(t0, 1.0), t0 + datetime.timedelta(hours=3), 1.0)
    assert state.month == "2026-12"
    assert state.month_to_date == pytest.approx(2.0)


def test_accrue_spanning_several_months_keeps_only_the_current_months_spend() -> None:
    t0 = datetime.datetime(2026, 10, 31, 23, tzinfo=UTC)
    now = datetime.datetime(2026, 12, 1, 1, tzinfo=UTC)
    state = pricing.accrue(pricing.new_spend_state(t0, 1.0), now, 0.0)
    assert (state.month, state.month_to_date) == ("2026-12", pytest.approx(1.0))


def test_accrue_ignores_a_clock_that_went_backwards() -> None:
    t0 = datetime.datetime(2026, 11, 10, tzinfo=UTC)
    state = pricing.accrue(pricing.new_spend_state(t0, 1.0), t0 + datetime.timedelta(hours=1), 1.0)
    again = pricing.accrue(state, t0, 5.0)
    assert again.month_to_date == state.month_to_date
    assert again.rate_per_hour == 5.0


def test_projected_month_end_adds_current_rate_over_remaining_hours() -> None:
    now = datetime.datetime(2026, 11, 30, 0, tzinfo=UTC)
    state = pricing.SpendState(month="2026-11", month_to_date=100.0, accounted_at=now, rate_per_hour=0.5)
    assert pricing.hours_left_in_month(now) == pytest.approx(24.0)
    assert pricing.projected_month_end(state) == pytest.approx(112.0)
    assert pricing.projected_month_end(state, now + datetime.timedelta(hours=12)) == pytest.approx(112.0)


def test_spend_state_round_trips_through_status_strings() -> None:
    now = datetime.datetime(2026, 11, 10, 12, 30, tzinfo=UTC)
    state = pricing.SpendState(
        month="2026-11", month_to_date=12.345678, accounted_at=now, rate_per_hour=0.526
    )
    raw = state.to_status()
    assert all(isinstance(v, str) for v in raw.values())
    assert pricing.SpendState.from_status(raw, now) == state


def test_spend_state_from_malformed_status_starts_afresh() -> None:
    now = datetime.datetime(2026, 11, 10, tzinfo=UTC)
    fresh = pricing.SpendState.from_status({"month": "2026-11", "monthToDate": "lots"}, now)
    assert (fresh.month, fresh.month_to_date, fresh.accounted_at) == ("2026-11", 0.0, now)
    assert pricing.SpendState.from_status(None, now).month_to_date == 0.0
