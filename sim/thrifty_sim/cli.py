"""`thrifty-sim`: replay a trace (or generated load) against Thrifty's policy and baselines.

Every mistake in the input (a flag out of range, an unusable trace row, catalogue or report, an
`--out` that cannot be a results folder) is one line on stderr, `thrifty-sim: error: ...`, and exit
status 2, found before the simulation runs. Notes on how the input was read (the time unit `auto`
picked, idle gaps shortened) are lines `thrifty-sim: note: ...` on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from . import catalog, experiment, generator, simulate, trace

PROG = "thrifty-sim"
# The operator's limits (thrifty_api.optimized_model.Serving, thrifty_operator.cost.budgets).
MAX_REPLICAS = 1000
MAX_BUDGET = 1e9
MAX_DAYS = trace.MAX_SPAN_S / generator.DAY_S
MIN_DAYS = 0.0007  # 60.48 s: the generator rounds to whole seconds, at least the 60 a trace needs
# Characters Python's str.splitlines() breaks at.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def one_line(text: str) -> str:
    """`text` with every line break escaped, so that it prints as one line."""
    return text.translate({ord(c): c.encode("unicode_escape").decode() for c in _LINE_BREAKS})


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def _path(text: str) -> Path:
    """A file system path (no NUL character, which no file name can hold)."""
    if "\0" in text or not text:
        raise argparse.ArgumentTypeError(f"must be a non-empty path without NUL characters; got {text!r}")
    return Path(text)


def _seconds(text: str) -> int:
    """A whole number of seconds, 0 to 31 days."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= trace.MAX_SPAN_S:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of seconds, 0 or more and at most {trace.MAX_SPAN_S} (31 days); "
            f"got {text!r}"
        )
    return value


def _share(text: str) -> float:
    """A utilisation target in (0, 1], at least 1 % (the HPA's targets are whole percentages)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.01 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], at least 0.01; got {text!r}")
    return value


def _number(low: float, high: float, what: str, *, low_open: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] ((low, high] when `low_open`); `what` says so in words."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (low < value if low_open else low <= value) and value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}")
        return value

    return parse


def _whole(low: int, high: int, what: str) -> Callable[[str], int]:
    """A whole number in [low, high]; `what` says so in words."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Replay request load against Thrifty's scaling policy and baseline autoscalers.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--trace",
        type=_path,
        help="CSV trace with a timestamp column, one row per request or a `count` column (e.g. the Azure "
        "LLM trace); idle gaps over an hour are shortened to an hour",
    )
    src.add_argument("--generate", action="store_true", help="use the seeded diurnal generator instead")
    p.add_argument(
        "--time-unit",
        choices=("auto", *trace.TIME_UNITS),
        default="auto",
        help="unit of numeric trace timestamps (default auto: epoch seconds, ms or us by magnitude, "
        "else seconds; said on stderr)",
    )
    p.add_argument(
        "--out",
        type=_path,
        required=True,
        help="directory for results.json and plot.png (created; an existing one is reused, the two "
        "files overwritten)",
    )
    budget = _number(0, MAX_BUDGET, "a number from 0 to 1e9 (the operator's largest budget)")
    p.add_argument("--budget-per-hour", type=budget, help="hourly cap (catalogue currency)")
    p.add_argument(
        "--budget-per-month", type=budget, help="monthly cap; pro-rated to the load's length (730 h)"
    )
    p.add_argument(
        "--slo-ms",
        # The operator's spec bounds its latencyTargetMs so; Thrifty runs through the operator's path.
        type=_number(0, 600_000, "a number of milliseconds > 0, at most 600000", low_open=True),
        default=50.0,
        help="p99 latency target (default 50)",
    )
    p.add_argument(
        "--pools",
        type=_path,
        help="pool catalogue YAML in the operator's format (thrifty_api.pools, as the chart's `pools` value; "
        "default: built-in us-east-1 prices)",
    )
    p.add_argument("--capacity", type=_path, help="converter report.json (default: built-in placeholders)")
    p.add_argument("--policies", default=",".join(experiment.POLICIES), help="comma-separated policies")
    p.add_argument(
        "--seed",
        type=_whole(0, 2**63 - 1, "a whole number, 0 or more"),
        default=0,
        help="seed of the generator and of trace scaling",
    )
    p.add_argument(
        "--rate-scale",
        type=_number(0, 1e6, "a number > 0, at most 1e6", low_open=True),
        default=1.0,
        help="multiply the trace's request rate",
    )
    p.add_argument(
        "--days",
        type=_number(MIN_DAYS, MAX_DAYS, f"a number of days from {MIN_DAYS:g} (about 60 s) to {MAX_DAYS:g}"),
        default=2.0,
        help="generator: length in days",
    )
    p.add_argument(
        "--mean-rps",
        type=_number(0, 1e6, "a number of requests/s from 0 to 1e6"),
        default=300.0,
        help="generator: mean requests/s",
    )
    p.add_argument(
        "--peak-to-mean",
        type=_number(1, 10, "a number from 1 to 10"),
        default=2.5,
        help="generator: diurnal peak/mean (1-10)",
    )
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
    p.add_argument(
        "--min-replicas",
        type=_whole(0, MAX_REPLICAS, f"a whole number from 0 to {MAX_REPLICAS}"),
        default=1,
        help="floor of every policy (0-1000, default 1)",
    )
    p.add_argument(
        "--max-replicas",
        type=_whole(1, MAX_REPLICAS, f"a whole number from 1 to {MAX_REPLICAS}"),
        default=100,
        help="ceiling of every policy (1-1000, default 100)",
    )
    return p


def _policies(text: str) -> tuple[list[str], str | None]:
    """The policies named in `--policies`, or why they cannot be used."""
    policies = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(experiment.POLICIES))
    if unknown:
        return (
            policies,
            f"argument --policies: unknown {unknown}; choose from {', '.join(experiment.POLICIES)}",
        )
    if not policies:
        return policies, f"argument --policies: none given; choose from {', '.join(experiment.POLICIES)}"
    return list(dict.fromkeys(policies)), None


def _out_problem(out: Path) -> str | None:
    """Why `out` cannot become the results folder, or None: checked before the run."""
    if out.exists() and not out.is_dir():
        return f"argument --out: {out} exists and is not a directory"
    for name in ("results.json", "plot.png"):
        target = out / name
        if target.exists() and not target.is_file():
            return f"argument --out: {target} exists and is not a file"
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"argument --out: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK) or (out.is_dir() and not os.access(out, os.W_OK | os.X_OK)):
        return f"argument --out: {existing if not out.is_dir() else out} is not writable"
    return None


def _error(message: str) -> int:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return 2


def _note(message: str) -> None:
    print(f"{PROG}: note: {one_line(message)}", file=sys.stderr)


def _load(
    args: argparse.Namespace,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], str, dict[str, Any] | None, list[str]]:
    """The measured load, the burn-in, a description, how a trace was read, and notes for stderr."""
    if args.trace is None:
        counts = generator.diurnal(args.days, args.mean_rps, args.peak_to_mean, seed=args.seed)
        source = f"generated diurnal load, {args.days:g} days, mean {args.mean_rps:g} req/s, seed {args.seed}"
        seconds = 86_400 if args.burn_in is None else args.burn_in
        # Generated from midnight; its last `seconds` end at midnight, where the measured load starts.
        days_before = -(-seconds // 86_400)
        before = generator.diurnal(days_before, args.mean_rps, args.peak_to_mean, seed=args.seed + 1000)
        burn_in = before[len(before) - seconds :] if seconds else before[:0]
        return counts, burn_in, source, None, []
    t = trace.read(args.trace, args.time_unit)
    notes = []
    if t.unit_reason is not None:
        notes.append(f"--time-unit auto: timestamps read as {t.unit_reason}; --time-unit overrides")
    if t.gaps_shortened:
        notes.append(
            f"{t.gaps_shortened} idle gap{'s' if t.gaps_shortened != 1 else ''} longer than "
            f"{trace.MAX_GAP_S:.0f} s shortened to {trace.MAX_GAP_S:.0f} s ({t.idle_removed_s:.0f} s "
            f"without requests left out); the simulated period is {t.arrivals[-1]:.0f} s"
        )
    counts = trace.per_second_counts(t.arrivals, args.rate_scale, args.seed, weights=t.weights)
    source = f"trace {args.trace.name} x{args.rate_scale:g}"
    burn_in = counts[: 900 if args.burn_in is None else args.burn_in]
    how = {
        "time_unit": t.unit,
        "idle_gaps_shortened": t.gaps_shortened,
        "idle_seconds_left_out": t.idle_removed_s,
    }
    return counts, burn_in, source, how, notes


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
        Exit status: 0 on success, 2 on unusable input (flag errors exit 2 through argparse).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.min_replicas > args.max_replicas:
        parser.error(
            f"argument --min-replicas: {args.min_replicas} is more than --max-replicas {args.max_replicas}"
        )
    policies, problem = _policies(args.policies)
    try:
        problem = problem or _out_problem(args.out)
    except OSError as e:
        problem = f"argument --out: {args.out}: {e.strerror or e}"
    if problem:
        parser.error(problem)
    try:
        pools = catalog.load_pools(args.pools)
        capacity = catalog.load_capacity(args.capacity, pools)
        counts, burn_in, source, how, notes = _load(args)
    except (trace.TraceError, catalog.CatalogError) as e:
        return _error(str(e))
    except OSError as e:  # --pools or --capacity unreadable
        return _error(f"{e.filename}: {e.strerror or e}" if e.filename else str(e))
    for note in notes:  # only once the input is known to be usable: an error stays the one line
        _note(note)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _error(f"argument --out: cannot create {args.out}: {e.strerror or e}")
    budget = experiment.period_budget(args.budget_per_hour, args.budget_per_month, len(counts))
    cfg = simulate.SimConfig(
        slo_ms=args.slo_ms, budget=budget, min_replicas=args.min_replicas, max_replicas=args.max_replicas
    )
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
    if how is not None:
        result["trace"] = how
    result["slo_ms"] = args.slo_ms
    result["budget"] = {"per_hour": budget.per_hour, "per_period": budget.per_month}
    from .plot import write_plot

    try:
        (args.out / "results.json").write_text(experiment.strict_json(result))
        write_plot(result, args.out / "plot.png", source, budget.per_month)
    except OSError as e:
        return _error(f"argument --out: cannot write {e.filename or args.out}: {e.strerror or e}")
    print(f"{source}; p99 SLO {args.slo_ms:g} ms; budget {budget}")
    print(format_table(result))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'plot.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
