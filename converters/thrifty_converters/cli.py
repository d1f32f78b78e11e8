"""`thrifty-convert`: optimize a model into verified, profiled, Triton-ready variants.

Errors in what the user gave (a usage mistake, an option out of range, a file that does not fit the model)
print one line and exit 2, before any heavy work where they can be found up front; a bug or a broken stage
exits 1. No traceback reaches the terminal unless THRIFTY_DEBUG=1. With `--summary-file` (what the
operator's Jobs pass: their termination-message path) both commands also write the compact Job summary of
`summarize.py`, or `{"v":1,"error":...}` before exiting non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from thrifty_api import job_summary, report, variants

from . import checks, errors, pipeline, signals, signature, summarize

EXIT_USER = 2
EXIT_INTERNAL = 1
SUMMARY_FLAG = "--summary-file"
# A node-pool name as the operator's catalogue has it; it becomes a folder name.
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Option values that start with a minus: `--price-per-hour -1e5` and `-inf` are values (out of range), not
# unknown options (argparse alone only takes `-1` and `-1.5`).
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*(e[-+]?\d+)?|\.\d+(e[-+]?\d+)?|inf(inity)?|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line `OptionError`s (the usage text stays behind `--help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise errors.OptionError(f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="thrifty-convert", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    o = sub.add_parser("optimize", help="convert, check, profile and select variants of MODEL")
    o.add_argument("model", type=Path, help="TorchScript file, torch.export .pt2 or .onnx")
    o.add_argument("--inputs", type=Path, help="example inputs (.npz, one array per input)")
    o.add_argument(
        "--signature",
        help="JSON {inputs: [{name, dtype, shape}], outputs: [...]} (shape without batch, -1 dynamic); "
        "names the ONNX inputs and outputs and generates example inputs when --inputs is absent",
    )
    o.add_argument("--out", type=Path, required=True, help="output folder")
    o.add_argument("--calibration", type=Path, help="calibration inputs for static INT8 (.npz)")
    o.add_argument("--eval", type=Path, help="evaluation inputs plus a 'labels' array (.npz)")
    o.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    o.add_argument(
        "--variants",
        help="comma-separated variant names, or 'none' to export only (default: all; "
        "onnx-int8-static needs --calibration)",
    )
    o.add_argument("--latency-budget-ms", metavar="MS", help="p99 latency limit per request, > 0")
    o.add_argument(
        "--max-batch-size", metavar="N", default=8, help=f"1 to {checks.MAX_BATCH_SIZE} (default 8)"
    )
    o.add_argument(
        "--price-per-hour", metavar="USD", default=1.0, help="node price in dollars per hour, >= 0"
    )
    o.add_argument(
        "--max-metric-drop",
        metavar="FRACTION",
        default=0.01,
        help="tolerated relative accuracy drop, 0 to 1 (default 0.01: 1 %%)",
    )
    o.add_argument(
        "--profile-seconds",
        metavar="S",
        default=4.0,
        help=f"time cap per variant and batch size, > 0 and at most {checks.MAX_PROFILE_SECONDS:g}",
    )
    o.add_argument(SUMMARY_FLAG, type=Path, help="also write the compact JSON summary (or error) here")
    pr = sub.add_parser("profile", help="re-profile the variants of an optimize output on this machine")
    pr.add_argument("dir", type=Path, help="folder written by `optimize`")
    pr.add_argument("--pool", help="node pool measured: the profile goes to DIR/pools/POOL/profile.json")
    pr.add_argument("--max-batch-size", metavar="N", help="largest batch measured (default: optimize's)")
    pr.add_argument("--latency-budget-ms", metavar="MS")
    pr.add_argument("--price-per-hour", metavar="USD", default=1.0)
    pr.add_argument("--profile-seconds", metavar="S", default=4.0)
    pr.add_argument(SUMMARY_FLAG, type=Path, help="also write the compact JSON summary (or error) here")
    return p


class _Plain:
    """One line per event: what logs and CI get."""

    def __call__(self, text: str) -> None:
        print(f"thrifty-convert: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _progress(tty: bool) -> Iterator[pipeline.Progress]:
    if not tty:
        yield _Plain()
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=False
    ) as bar:
        task = bar.add_task("starting", total=None)

        def say(text: str) -> None:
            if text.endswith(": running") or text.endswith(": parity") or text.endswith(": profile"):
                bar.update(task, description=text)
            else:
                bar.console.print(text)

        yield say
        bar.update(task, description="done")


def _optimize(args: argparse.Namespace) -> int:
    # Every option is checked here, before the model or any input file is opened.
    budget = checks.latency_budget_ms(args.latency_budget_ms)
    batch = checks.max_batch_size(args.max_batch_size)
    price = checks.price_per_hour(args.price_per_hour)
    drop = checks.max_metric_drop(args.max_metric_drop)
    seconds = checks.profile_seconds(args.profile_seconds)
    if args.variants is None:  # the default: all, those without their inputs report why they were skipped
        wanted: tuple[str, ...] = variants.ALL
    else:
        wanted = checks.variant_list(args.variants)
        checks.calibration_given(wanted, args.calibration)
    opts = pipeline.Options(
        model=args.model,
        inputs=args.inputs,
        signature=signature.parse(args.signature) if args.signature is not None else None,
        out=args.out,
        calibration=args.calibration,
        eval=args.eval,
        target=args.target,
        variants=wanted,
        latency_budget_ms=budget,
        max_batch_size=batch,
        price_per_hour=price,
        max_metric_drop=drop,
        profile_seconds=seconds,
    )
    with _progress(sys.stderr.isatty()) as say:
        result = pipeline.optimize_model(opts, say)
    _write_summary(args.summary_file, summarize.from_report(result))
    _summary(result)
    print(f"report: {args.out / 'report.json'}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from . import reprofile

    budget = checks.latency_budget_ms(args.latency_budget_ms)
    batch = checks.max_batch_size(args.max_batch_size) if args.max_batch_size is not None else None
    price = checks.price_per_hour(args.price_per_hour)
    seconds = checks.profile_seconds(args.profile_seconds)
    if args.pool is not None and not _POOL_NAME.match(args.pool):
        raise errors.OptionError(f"--pool {args.pool!r} is not a valid pool name (lower-case DNS label)")
    with _progress(sys.stderr.isatty()) as say:
        result = reprofile.run(args.dir, budget, price, seconds, say, pool=args.pool, max_batch_size=batch)
    _write_summary(args.summary_file, summarize.from_report(result))
    _summary(result)
    return 0


def _summary(result: report.Report) -> None:
    base = result.baseline
    print(f"{'variant':<22}{'status':<34}{'p50 ms':>9}{'p99 ms':>9}{'items/s':>10}{'speedup':>9}")
    print(
        f"{base.name:<22}{'baseline':<34}{_f(base.latency_ms.p50)}{_f(base.latency_ms.p99)}"
        f"{_f(base.throughput_per_s, 10, 1)}{'1.00x':>9}"
    )
    for v in result.variants:
        speed = f"{v.speedup_vs_baseline:.2f}x" if v.speedup_vs_baseline else "-"
        print(
            f"{v.name:<22}{v.status[:33]:<34}{_f(v.latency_ms.p50)}{_f(v.latency_ms.p99)}"
            f"{_f(v.throughput_per_s, 10, 1)}{speed:>9}"
        )
    print(f"selected: {result.selected.variant} ({result.selected.reason})")


def _f(x: float | None, width: int = 9, digits: int = 2) -> str:
    return f"{x:>{width}.{digits}f}" if x is not None else f"{'-':>{width}}"


def _write_summary(path: Path | None, data: job_summary.JobSummary) -> None:
    if path is None:
        return
    try:
        summarize.write(path, data)
    except OSError as e:
        raise errors.OutputDirError(f"cannot write the summary to {path}: {e.strerror or e}") from e


def _summary_path(argv: Sequence[str]) -> Path | None:
    """`--summary-file` from raw arguments, for failures before (or while) argparse reads them."""
    for i, arg in enumerate(argv):
        if arg == SUMMARY_FLAG and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith(SUMMARY_FLAG + "="):
            return Path(arg.split("=", 1)[1])
    return None


def _fail(argv: Sequence[str], message: str, status: int) -> int:
    """Report a failure on stderr (one line) and in the summary file, and return the exit status."""
    print(f"thrifty-convert: {message}".splitlines()[0], file=sys.stderr)
    path = _summary_path(argv)
    if path is not None:
        with contextlib.suppress(OSError):  # nothing more to report it with
            summarize.write(path, job_summary.failure(message.removeprefix("error: ")))
    return status


def _quiet_storage_cleanup() -> None:
    """A full file system also fails the close of files left open (torch's zip writers, at exit): that is
    reported once already, not as a traceback per file."""
    default = sys.unraisablehook
    if getattr(default, "thrifty_storage", False):
        return

    def hook(unraisable: Any) -> None:
        if unraisable.exc_value is None or errors.storage_cause(unraisable.exc_value) is None:
            default(unraisable)

    hook.thrifty_storage = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `thrifty-convert`; returns the exit status."""
    raw = list(sys.argv[1:] if argv is None else argv)
    signals.exit_on_sigterm()
    _quiet_storage_cleanup()
    try:
        args = _parser().parse_args(raw)  # --help prints and raises SystemExit(0)
    except errors.UserInputError as e:
        return _fail(raw, f"error: {e}", EXIT_USER)
    # Exporters and quantizers log at WARNING by default; the stage statuses carry what matters.
    logging.basicConfig(level=logging.ERROR)
    try:
        if args.command == "optimize":
            return _optimize(args)
        return _profile(args)
    except errors.UserInputError as e:
        return _fail(raw, f"error: {e}", EXIT_USER)
    except Exception as e:  # last resort: one line, details only when asked for
        try:
            errors.raise_if_storage(e)
        except errors.StorageError as full:
            return _fail(raw, f"error: {full}", EXIT_USER)
        if os.environ.get("THRIFTY_DEBUG") == "1":
            _fail(raw, f"internal error: {type(e).__name__}: {e}", EXIT_INTERNAL)
            raise
        return _fail(raw, f"internal error: {type(e).__name__}: {e}", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
