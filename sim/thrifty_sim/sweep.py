"""`make bench-cost-sweep`: the binding monthly cap over several seeds and budgets, not just one.

The benchmark's monthly-cap scenario is one seed at one budget; this replays the same kind of load
(48 h of diurnal load at 300 req/s, the day before as burn-in) for each seed and each budget, given
as a share of the O1 oracle's cost, and prints Thrifty's SLO attainment against the feasible budget
oracle's (O2), with and without the burn-in day. Run as
`python -m thrifty_sim.sweep [--seeds 3,4,5] [--shares 0.6,0.8,0.95]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import catalog, experiment, generator, oracle, scaler, simulate
from .bench import say

SLO_MS = 50.0


def _list_of(kind: type[float] | type[int], what: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = []
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"must be comma-separated {what}; got {text!r}")
        return values

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per (seed, budget) and the range of Thrifty's share of O2's attainment.

    Args:
        argv: Arguments without the program name.

    Returns:
        1 if Thrifty overran a budget, else 0.
    """
    ap = argparse.ArgumentParser(prog="bench-cost-sweep")
    seeds = _list_of(int, "positive whole numbers")
    shares = _list_of(float, "positive numbers")
    ap.add_argument("--seeds", type=seeds, default=[3, 4, 5], help="comma-separated generator seeds")
    ap.add_argument(
        "--shares", type=shares, default=[0.6, 0.8, 0.95], help="monthly caps as shares of O1's cost"
    )
    ap.add_argument("--mean-rps", type=float, default=300.0)
    ap.add_argument("--days", type=float, default=2.0, help="length of the measured load")
    args = ap.parse_args(argv)
    pools = catalog.load_pools(None)
    capacity = catalog.load_capacity(None, pools)
    ratios: dict[str, list[float]] = {"burn-in": [], "cold": []}
    overruns = 0
    say("seed  share   O2 SLO  thrifty (burn-in)   thrifty (cold)")
    for seed in args.seeds:
        counts = generator.diurnal(args.days, args.mean_rps, 2.5, seed=seed)
        day_before = generator.diurnal(1.0, args.mean_rps, 2.5, seed=seed + 1000)
        o1 = oracle.cheapest(counts, capacity.variants, pools, SLO_MS)
        for share in args.shares:
            budget = experiment.share_of_cost_budget(share, o1.total_cost)
            cfg = simulate.SimConfig(slo_ms=SLO_MS, budget=budget)
            o2 = oracle.best_within_budget(counts, capacity.variants, pools, SLO_MS, budget)
            cells = []
            for kind, burn_in in (("burn-in", day_before), ("cold", None)):
                controller = scaler.Thrifty(
                    capacity.variants,
                    pools,
                    cfg,
                    initial_rate=experiment.start_rate(counts, burn_in),
                    period_h=len(counts) / 3600,
                    burn_in_s=0.0 if burn_in is None else float(len(burn_in)),
                )
                r = simulate.run(controller, counts, capacity.variants, pools, cfg, burn_in=burn_in)
                overruns += r.budget_overrun > 0
                ratio = r.slo_attainment / o2.slo_attainment
                ratios[kind].append(ratio)
                cells.append(f"{100 * r.slo_attainment:6.2f}% ({100 * ratio:5.1f}%)")
            say(f"{seed:4d}  {share:5.2f}  {100 * o2.slo_attainment:6.2f}%  {cells[0]}  {cells[1]}")
    for kind, values in ratios.items():
        below = sum(1 for v in values if v < 0.95)
        say(
            f"{kind}: {100 * min(values):.1f}-{100 * max(values):.1f}% of O2's SLO attainment, "
            f"{below} of {len(values)} below 95%"
        )
    say(f"runs that overran the budget: {overruns}")
    return 1 if overruns else 0


if __name__ == "__main__":
    sys.exit(main())
