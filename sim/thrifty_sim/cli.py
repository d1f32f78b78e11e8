"""`thrifty-sim`: replay a trace (or generated load) against Thrifty's policy and baselines."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import catalog, experiment, generator, simulate, trace


def _seconds(text: str) -> int:
    """A whole number of seconds, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, 0 or more; got {text!r}")
    return int(text)


def _share(text: str) -> float:
    """A utilisation target in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1]; got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="thrifty-sim",
        description="Replay request load against Thrifty's scaling policy and baseline autoscalers.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--trace", type=Path, help="CSV trace with a timestamp column (e.g. the Azure LLM trace)"
    )
    src.add_argument("--generate", action="store_true", help="use the seeded diurnal generator instead")
    p.add_argument("--out", type=Path, required=True, help="directory for results.json and plot.png")
    p.add_argument("--budget-per-hour", type=float, help="hourly cap (catalogue currency)")
    p.add_argument(
        "--budget-per-month", type=float, help="monthly cap; pro-rated to the load's length (730 h)"
    )
    p.add_argument("--slo-ms", type=float, default=50.0, help="p99 latency target (default 50)")
    p.add_argument(
        "--pools",
        type=Path,
        help="pool catalogue YAML in the operator's format (thrifty_api.pools, as the chart's `pools` value; "
        "default: built-in us-east-1 prices)",
    )
    p.add_argument("--capacity", type=Path, help="converter report.json (default: built-in placeholders)")
    p.add_argument("--policies", default=",".join(experiment.POLICIES), help="comma-separated policies")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator and of trace scaling")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the trace's request rate")
    p.add_argument("--days", type=float, default=2.0, help="generator: length in days")
    p.add_argument("--mean-rps", type=float, default=300.0, help="generator: mean requests/s")
    p.add_argument("--peak-to-mean", type=float, default=2.5, help="generator: diurnal peak/mean")
    p.add_argument(
        "--burn-in",
        type=_seconds,
        help="seconds replayed first and not measured, so dynamic policies start from their steady "
        "state: the trace's head (default 900), or generated load of another seed ending at midnight "
        "(default 86400); 0 starts them cold",
    )
    p.add_argument(
        "--hpa-target",
        type=_share,
        default=0.7,
        help="utilisation target of the hpa baseline (default 0.7)",
    )
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=100)
    return p


def format_table(result: dict[str, Any]) -> str:
    """Render the per-policy metrics as a fixed-width table.

    Args:
        result: The output of `experiment.run_all`.

    Returns:
        The table text.
    """
    oracle_cost = result["oracle_cost"]
    lines = [
        f"{'policy':<19} {'cost':>10} {'x oracle':>9} {'overrun':>9} {'over.win':>8} "
        f"{'SLO att.':>9} {'req.<=SLO':>9} {'actions':>8}",
    ]
    for name, r in result["policies"].items():
        ratio = r["total_cost"] / oracle_cost if oracle_cost else float("nan")
        lines.append(
            f"{name:<19} {r['total_cost']:>10.3f} {ratio:>9.2f} {r['budget_overrun']:>9.3f} "
            f"{r['budget_overrun_windows']:>8d} {100 * r['slo_attainment']:>8.2f}% "
            f"{100 * r.get('request_slo_share', float('nan')):>8.2f}% {r['scaling_actions']:>8d}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` when None.

    Returns:
        Exit status: 0 on success, 2 on unusable input.
    """
    args = _parser().parse_args(argv)
    try:
        pools = catalog.load_pools(args.pools)
        capacity = catalog.load_capacity(args.capacity, pools)
        if args.trace is not None:
            counts = trace.per_second_counts(trace.load_arrivals(args.trace), args.rate_scale, args.seed)
            source = f"trace {args.trace.name} x{args.rate_scale:g}"
            burn_in = counts[: 900 if args.burn_in is None else args.burn_in]
        else:
            counts = generator.diurnal(args.days, args.mean_rps, args.peak_to_mean, seed=args.seed)
            source = (
                f"generated diurnal load, {args.days:g} days, mean {args.mean_rps:g} req/s, seed {args.seed}"
            )
            seconds = 86_400 if args.burn_in is None else args.burn_in
            # Generated from midnight; its last `seconds` end at midnight, where the measured load starts.
            days_before = -(-seconds // 86_400)
            before = generator.diurnal(days_before, args.mean_rps, args.peak_to_mean, seed=args.seed + 1000)
            burn_in = before[len(before) - seconds :] if seconds else before[:0]
    except (trace.TraceError, catalog.CatalogError, OSError) as e:
        print(f"thrifty-sim: error: {e}", file=sys.stderr)
        return 2
    budget = experiment.period_budget(args.budget_per_hour, args.budget_per_month, len(counts))
    cfg = simulate.SimConfig(
        slo_ms=args.slo_ms, budget=budget, min_replicas=args.min_replicas, max_replicas=args.max_replicas
    )
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(experiment.POLICIES))
    if unknown:
        print(
            f"thrifty-sim: error: unknown policies {unknown}; choose from {list(experiment.POLICIES)}",
            file=sys.stderr,
        )
        return 2
    result = experiment.run_all(
        counts,
        capacity,
        pools,
        cfg,
        policies,
        burn_in=burn_in if len(burn_in) else None,
        hpa_target=args.hpa_target,
    )
    result["source"] = source
    result["slo_ms"] = args.slo_ms
    result["budget"] = {"per_hour": budget.per_hour, "per_period": budget.per_month}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    from .plot import write_plot

    write_plot(result, args.out / "plot.png", source, budget.per_month)
    print(f"{source}; p99 SLO {args.slo_ms:g} ms; budget {budget}")
    print(format_table(result))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'plot.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
