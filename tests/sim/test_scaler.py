"""The simulator's Thrifty runs the operator's timer pass: status written and read back, spend accounted by
the operator, the memo carried between passes."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from thrifty_api import optimized_model as models
from thrifty_operator import status_io
from thrifty_operator.cost import budgets, pricing
from thrifty_sim import catalog, families, scaler, simulate


def _run(
    counts: np.ndarray, budget: budgets.Budget, burn_in: np.ndarray | None = None
) -> tuple[scaler.Thrifty, simulate.RunResult]:
    pools = catalog.load_pools(None)
    capacity = catalog.load_capacity(None, pools)
    cfg = simulate.SimConfig(slo_ms=50, budget=budget)
    controller = scaler.Thrifty(
        capacity.variants,
        pools,
        cfg,
        initial_rate=float(counts[:300].mean()),
        period_h=len(counts) / 3600,
        burn_in_s=0 if burn_in is None else len(burn_in),
    )
    return controller, simulate.run(controller, counts, capacity.variants, pools, cfg, burn_in=burn_in)


def test_the_operator_accounts_what_the_simulator_bills_across_variant_switches() -> None:
    # On-off load at x20 switches between CPU and GPU fleets, some keeping the old one while the new starts.
    family = families.FAMILIES["on-off"]
    counts = family.counts(6 * 3600, 3, 20.0)
    burn_in = family.counts(3600, 1003, 20.0)
    budget = budgets.Budget(per_month=50.0)
    controller, result = _run(counts, budget, burn_in)
    stored = status_io.read(controller.stored)
    assert stored.cost is not None and stored.cost.spend is not None
    # The annotation set at time 0: the burn-in's accounted spend plus the period's cap.
    month_budget = float(controller.month_budget or "nan")
    end = scaler.MONTH_END - datetime.timedelta(seconds=1)
    spend = pricing.SpendState.from_status(stored.cost.spend.model_dump(by_alias=True), end)
    accounted = pricing.accrue(spend, end, spend.rate_per_hour).month_to_date - (month_budget - 50.0)
    assert result.scaling_actions > 4
    assert accounted == pytest.approx(result.total_cost, abs=5e-4)  # the last second, rounding
    assert result.budget_overrun == 0


def test_status_is_written_as_the_handler_writes_it() -> None:
    # A steady day: cost and scaling at most every 15 minutes, plus the passes where the fleet moved.
    counts = families.FAMILIES["slow-ramp"].counts(6 * 3600, 0, 5.0)
    controller, result = _run(counts, budgets.UNLIMITED)
    assert controller.status_writes <= 6 * 4 + 2 * result.scaling_actions + 2
    stored = status_io.read(controller.stored)
    assert stored.scaling is not None and stored.scaling.state
    assert stored.scaling.replicas >= 1
    assert models.OptimizedModelStatus.model_validate(status_io.dump(stored)) == stored
