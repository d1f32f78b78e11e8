"""One benchmark scenario: all policies on one load, with the results as JSON-friendly dicts."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from thrifty_operator.cost import budgets, policy, pricing

from . import baselines, oracle, scaler, simulate
from .catalog import CapacityModel

POLICIES = ("thrifty", "static-peak", "hpa", "keda", "oracle")
HOURS_PER_MONTH = 730.0
# Utilisation targets an HPA user might pick; 0.7 is the `hpa` baseline's.
HPA_TARGETS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def period_budget(per_hour: float | None, per_month: float | None, seconds: int) -> budgets.Budget:
    """The budget for a simulated period: the monthly cap pro-rated by `seconds / 730 h`."""
    month = None if per_month is None else per_month * seconds / 3600 / HOURS_PER_MONTH
    return budgets.Budget(per_hour=per_hour, per_month=month)


def share_of_cost_budget(share: float, cost: float, per_hour: float | None = None) -> budgets.Budget:
    """A period cap of `share` times `cost` (an oracle's cost for the same period), already pro-rated."""
    return budgets.Budget(per_hour=per_hour, per_month=share * cost)


def run_all(
    counts: npt.NDArray[np.int64],
    capacity: CapacityModel,
    pools: Mapping[str, pricing.PoolPrice],
    cfg: simulate.SimConfig,
    policies: Sequence[str] = POLICIES,
    burn_in: npt.NDArray[np.int64] | None = None,
    hpa_target: float = 0.7,
) -> dict[str, Any]:
    """Run the policies on one load.

    Args:
        counts: Requests per second.
        capacity: Variants and the selected one.
        pools: Pool catalogue.
        cfg: Simulation settings (budget already pro-rated to the period).
        policies: Names from `POLICIES`.
        burn_in: Load every dynamic policy replays first, unmeasured (`simulate.run`): the day
            before a multi-day load, or the head of a short trace; None starts them cold, sized for
            the mean rate of the first 5 minutes.
        hpa_target: Utilisation target of the `hpa` baseline.

    Returns:
        {"policies": {name: metrics}, "load": {...}} with per-minute series for the plot.
    """
    variants = capacity.variants
    selected = capacity.variant(capacity.selected)
    n = len(counts)
    period_h = n / 3600
    w = cfg.window_s
    minutes = n // w
    per_minute = counts[: minutes * w].reshape(minutes, w).mean(axis=1)
    # Dynamic policies start sized for the mean rate of the first 5 minutes of what they replay first.
    initial_rate = start_rate(counts, burn_in)
    results: dict[str, Any] = {}
    o1 = oracle.cheapest(
        counts, variants, pools, cfg.slo_ms, w, cfg.min_window_requests, cfg.min_replicas, cfg.max_replicas
    )

    cap = baselines.budget_max_replicas(
        pools[selected.pool], selected, cfg.budget, period_h, cfg.max_replicas
    )
    keda_start = _hpa_start(initial_rate, selected, cap, 0.7)  # its threshold: 70 % of a replica
    for name in policies:
        controller: simulate.Controller
        if name == "thrifty":
            controller = scaler.Thrifty(
                variants,
                pools,
                cfg,
                initial_rate=initial_rate,
                period_h=period_h,
                burn_in_s=0.0 if burn_in is None else float(len(burn_in)),
            )
        elif name == "static-peak":
            # Cheapest variant for the peak window's need, capped by the budget.
            best: tuple[float, str, int] | None = None
            for v in variants:
                needs = oracle.window_needs(
                    counts, v, cfg.slo_ms, w, cfg.min_window_requests, cfg.min_replicas
                )
                if (needs < 0).any():
                    continue
                k = min(
                    int(needs.max()),
                    baselines.budget_max_replicas(pools[v.pool], v, cfg.budget, period_h, cfg.max_replicas),
                )
                rate = pricing.fleet_price_per_hour(pools[v.pool], v.request, k)
                if best is None or rate < best[0]:
                    best = (rate, v.name, k)
            if best is None:
                continue
            controller = baselines.StaticPeak(best[1], best[2])
        elif name == "hpa":
            controller = baselines.HpaLike(
                selected, cfg, cap, _hpa_start(initial_rate, selected, cap, hpa_target), target=hpa_target
            )
        elif name == "keda":
            controller = baselines.KedaLike(selected, cfg, cap, keda_start)
        elif name == "oracle":
            results["oracle"] = _plan_dict(o1, w)
            if not cfg.budget.unlimited:
                for key, solve in (
                    ("oracle-budget", oracle.best_within_budget),
                    ("oracle-budget-bound", oracle.budget_upper_bound),
                ):
                    plan = solve(
                        counts,
                        variants,
                        pools,
                        cfg.slo_ms,
                        cfg.budget,
                        w,
                        cfg.min_window_requests,
                        cfg.min_replicas,
                        cfg.max_replicas,
                    )
                    results[key] = _plan_dict(plan, w)
            continue
        else:
            raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
        r = simulate.run(controller, counts, variants, pools, cfg, burn_in=burn_in)
        results[name] = dataclasses.asdict(r)
    return {
        "policies": results,
        "load": {
            "seconds": n,
            "requests": int(counts.sum()),
            "mean_rps": float(counts.mean()),
            # A load without requests is flat: 1, not 0/0.
            "peak_to_mean_per_minute": (
                float(per_minute.max() / per_minute.mean()) if minutes and per_minute.mean() > 0 else 1.0
            ),
            "rps_per_minute": [float(x) for x in per_minute],
        },
        "oracle_cost": o1.total_cost,
    }


def start_rate(counts: npt.NDArray[np.int64], burn_in: npt.NDArray[np.int64] | None) -> float:
    """The rate dynamic policies start sized for: the mean of the first 5 minutes they replay."""
    first = counts if burn_in is None else burn_in
    return float(first[:300].mean()) if len(first) else 0.0


def _hpa_start(rate: float, v: policy.Variant, cap: int, target: float) -> int:
    return max(1, min(cap, math.ceil(rate / (target * v.throughput_per_s))))


def hpa_sweep(
    counts: npt.NDArray[np.int64],
    capacity: CapacityModel,
    pools: Mapping[str, pricing.PoolPrice],
    cfg: simulate.SimConfig,
    targets: Sequence[float] = HPA_TARGETS,
    burn_in: npt.NDArray[np.int64] | None = None,
) -> list[dict[str, Any]]:
    """The HPA baseline at several utilisation targets, so that it can be compared at equal SLO.

    Args:
        counts: Requests per second.
        capacity: Variants and the selected one (the HPA's).
        pools: Pool catalogue.
        cfg: Simulation settings.
        targets: Utilisation targets in (0, 1].
        burn_in: As for `run_all`.

    Returns:
        Per target: `target`, `total_cost`, `slo_attainment`, `scaling_actions`.
    """
    selected = capacity.variant(capacity.selected)
    cap = baselines.budget_max_replicas(
        pools[selected.pool], selected, cfg.budget, len(counts) / 3600, cfg.max_replicas
    )
    rate = start_rate(counts, burn_in)
    out = []
    for t in targets:
        controller = baselines.HpaLike(
            selected, cfg, cap, _hpa_start(rate, selected, cap, t), target=t, name=f"hpa-{t:g}"
        )
        r = simulate.run(controller, counts, capacity.variants, pools, cfg, burn_in=burn_in)
        out.append(
            {
                "target": t,
                "total_cost": r.total_cost,
                "slo_attainment": r.slo_attainment,
                "scaling_actions": r.scaling_actions,
            }
        )
    return out


def _plan_dict(plan: oracle.Plan, window_s: int) -> dict[str, Any]:
    return {
        "policy": plan.name,
        "total_cost": plan.total_cost,
        "budget_overrun": 0.0,
        "budget_overrun_windows": 0,
        "slo_attainment": plan.slo_attainment,
        "request_slo_share": plan.request_slo_share,
        "scaling_actions": plan.scaling_actions,
        "replicas_per_minute": [float(r) for r in plan.replicas],
        "variants_per_minute": list(plan.variant),
    }


NULL_NOTE = (
    "null stands for a number that is not finite (NaN: undefined, such as 0/0; Infinity: unbounded); "
    "`values` lists each by its path and what it was"
)
_MAX_LISTED_NULLS = 20


def strict_json(doc: dict[str, Any]) -> str:
    """`doc` as strict JSON (RFC 8259: no NaN or Infinity), indented by 1.

    Every non-finite number is written as null; then `doc` gets a key `null_values`, {"note": what null
    means, "values": {path: "nan" | "inf" | "-inf"} (the first 20), "count": how many}. Without any,
    the text is `json.dumps(doc, indent=1)`.

    Args:
        doc: A JSON-friendly document (dicts, lists, strings, numbers, booleans, None).

    Returns:
        The JSON text.
    """
    found: dict[str, str] = {}
    count = 0

    def clean(value: Any, path: str) -> Any:
        nonlocal count
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            count += 1
            if len(found) < _MAX_LISTED_NULLS:
                found[path or "(document)"] = repr(float(value))
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    cleaned = clean(doc, "")
    if count:
        cleaned["null_values"] = {"note": NULL_NOTE, "values": found, "count": count}
    return json.dumps(cleaned, indent=1, allow_nan=False)
