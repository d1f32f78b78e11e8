"""Seeded multi-day diurnal load with bursts, for the load shapes a 1-hour trace lacks."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

DAY_S = 86_400


def _shape_for(peak_to_mean: float) -> float:
    """Concentration k of `exp(k sin)` whose peak/mean is `peak_to_mean` (bisection)."""
    lo, hi = 0.0, 20.0
    grid = np.sin(np.linspace(0, 2 * math.pi, 4096, endpoint=False))
    for _ in range(60):
        k = (lo + hi) / 2
        ratio = math.exp(k) / float(np.exp(k * grid).mean())
        lo, hi = (k, hi) if ratio < peak_to_mean else (lo, k)
    return (lo + hi) / 2


def diurnal(
    days: float,
    mean_rps: float,
    peak_to_mean: float = 2.5,
    bursts_per_day: float = 6.0,
    burst_multiplier: tuple[float, float] = (1.3, 1.8),
    burst_minutes: float = 10.0,
    seed: int = 0,
) -> npt.NDArray[np.int64]:
    """Generate per-second request counts.

    Rate: `mean_rps * exp(k sin(2 pi t / day)) / I0(k)`, k chosen so that the diurnal peak/mean is
    `peak_to_mean` (bursts add to it), times a day-to-day level in [0.9, 1.1] and minute-level
    log-normal noise (sigma 0.05); bursts arrive as a Poisson process (a two-state MMPP), last an
    exponential time with mean `burst_minutes` and multiply the rate by U(burst_multiplier).
    Counts per second are Poisson draws of the rate.

    Args:
        days: Length in days.
        mean_rps: Mean of the diurnal curve, requests/s.
        peak_to_mean: Diurnal peak over mean (>= 1).
        bursts_per_day: Expected bursts per day.
        burst_multiplier: Range of the burst factor.
        burst_minutes: Mean burst length.
        seed: Seed; the same seed gives the same load.

    Returns:
        Requests arriving in each second.
    """
    rng = np.random.default_rng(seed)
    n = round(days * DAY_S)
    t = np.arange(n, dtype=np.float64)
    k = _shape_for(max(1.0, peak_to_mean))
    # Phase puts the trough at 04:00 and the peak at 16:00.
    curve = np.exp(k * np.sin(2 * math.pi * (t / DAY_S - 10 / 24)))
    curve /= float(np.exp(k * np.sin(np.linspace(0, 2 * math.pi, 4096, endpoint=False))).mean())
    level = rng.uniform(0.9, 1.1, size=math.ceil(days) + 1)[(t // DAY_S).astype(np.int64)]
    minutes = math.ceil(n / 60) + 1
    noise = np.exp(rng.normal(0.0, 0.05, size=minutes))[(t // 60).astype(np.int64)]
    rate = mean_rps * curve * level * noise
    burst = np.ones(n)
    for _ in range(rng.poisson(bursts_per_day * days)):
        start = int(rng.integers(0, n))
        length = int(rng.exponential(burst_minutes * 60))
        burst[start : start + length] *= rng.uniform(*burst_multiplier)
    counts: npt.NDArray[np.int64] = rng.poisson(rate * burst).astype(np.int64)
    return counts
