"""Ranges of the numeric options, checked before any work; each check raises `OptionError` with one line.

The command line hands the raw text (so `nan`, `inf`, `1e12` and `abc` all get the same kind of answer);
`pipeline.Options` and `reprofile.run` hand numbers. Bounds follow the OptimizedModel CRD where it has one.
"""

from __future__ import annotations

import math

from thrifty_api import variants as catalogue

from . import errors

MAX_BATCH_SIZE = 1024  # the CRD's spec.optimization.maxBatchSize maximum
MAX_LATENCY_BUDGET_MS = 600_000.0  # the CRD's latencyTargetMs maximum (10 minutes)
MAX_PROFILE_SECONDS = 600.0  # per runner and batch size
MAX_PRICE_PER_HOUR = 1_000_000.0  # dollars; any real node costs far less
MAX_METRIC_DROP = 1.0  # a fraction: 0.01 is 1 %, 1 accepts any drop
# `--variants none`: export (and DIR/model.onnx) only, for a model whose variants are all built elsewhere.
NO_VARIANTS = "none"
# Variants that cannot be built without a calibration set, so asking for them without one is a mistake.
NEEDS_CALIBRATION = ("onnx-int8-static",)

Number = str | int | float


def _parse(value: Number) -> int | float | None:
    """`value` as a number; None when it is not one (text that does not parse, or a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _shown(value: Number) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def whole(flag: str, value: Number, low: int, high: int) -> int:
    """`value` as an int in [low, high]; `8`, `8.0` and `1e1` are whole numbers, `nan` and `2.5` are not."""
    number = _parse(value)
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or not low <= number <= high:
        raise errors.OptionError(f"{flag} must be a whole number from {low} to {high}, got {_shown(value)}")
    return number


def finite(
    flag: str, value: Number, *, low: float, high: float, low_open: bool = False, unit: str = ""
) -> float:
    """`value` as a finite float in [low, high] (or (low, high] with `low_open`); NaN and Inf never pass."""
    number = _parse(value)
    try:
        as_float = math.nan if number is None else float(number)
    except OverflowError:  # an int beyond float range
        as_float = math.inf
    above_low = low < as_float if low_open else low <= as_float
    if not (math.isfinite(as_float) and above_low and as_float <= high):
        left = "greater than" if low_open else "at least"
        suffix = f" {unit}" if unit else ""
        raise errors.OptionError(
            f"{flag} must be a finite number {left} {low:g} and at most {high:g}{suffix}, got {_shown(value)}"
        )
    return as_float + 0.0  # -0.0 becomes 0.0


def price_per_hour(value: Number) -> float:
    return finite("--price-per-hour", value, low=0.0, high=MAX_PRICE_PER_HOUR, unit="dollars")


def max_metric_drop(value: Number) -> float:
    try:
        return finite("--max-metric-drop", value, low=0.0, high=MAX_METRIC_DROP)
    except errors.OptionError as e:
        raise errors.OptionError(f"{e} (a fraction: 0.01 tolerates a 1 % relative drop)") from None


def max_batch_size(value: Number) -> int:
    return whole("--max-batch-size", value, 1, MAX_BATCH_SIZE)


def profile_seconds(value: Number) -> float:
    return finite(
        "--profile-seconds", value, low=0.0, high=MAX_PROFILE_SECONDS, low_open=True, unit="seconds"
    )


def latency_budget_ms(value: Number | None) -> float | None:
    if value is None:
        return None
    return finite("--latency-budget-ms", value, low=0.0, high=MAX_LATENCY_BUDGET_MS, low_open=True, unit="ms")


def variant_list(text: str) -> tuple[str, ...]:
    """`--variants`: comma-separated known names (duplicates dropped), or `none` for export only."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    choices = f"choose from {', '.join(catalogue.ALL)} (or {NO_VARIANTS} to export only)"
    if not names:
        raise errors.OptionError(f"--variants is empty; {choices}")
    if names == [NO_VARIANTS]:
        return ()
    unknown = sorted(set(names) - set(catalogue.ALL))
    if unknown:
        raise errors.OptionError(f"unknown variants {unknown} in --variants; {choices}")
    return tuple(dict.fromkeys(names))


def calibration_given(names: tuple[str, ...], calibration: object | None) -> None:
    """Requested variants that need `--calibration` must have it."""
    missing = [n for n in names if n in NEEDS_CALIBRATION]
    if missing and calibration is None:
        raise errors.OptionError(
            f"--variants {', '.join(missing)} needs --calibration CALIB.npz "
            "(static INT8 takes its activation ranges from it)"
        )
