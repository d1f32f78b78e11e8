"""Latency and throughput of one runner per batch size, bounded in time.

Each batch size gets a warm-up, then measurement windows until the last three agree on throughput
within 10 % (stable) or the time cap is hit (reported as not stable). p50/p99 come from those windows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from .examples import Array
from .runtimes import Runner

WARMUP_SECONDS = 0.3
WINDOW_SECONDS = 0.3
STABLE_WINDOWS = 3
STABLE_SPREAD = 0.10
MIN_ITERATIONS_PER_WINDOW = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchProfile:
    """Measurements at one batch size (single stream, one request at a time)."""

    batch_size: int
    p50_ms: float
    p99_ms: float
    throughput_per_s: float
    stable: bool
    iterations: int


def profile(
    runner: Runner,
    feed_for: Callable[[int], dict[str, Array]],
    batch_sizes: Sequence[int],
    *,
    max_seconds_per_batch: float = 4.0,
) -> list[BatchProfile]:
    """Profile `runner` at each batch size with inputs from `feed_for(batch)`."""
    return [_one(runner, feed_for(b), b, max_seconds_per_batch) for b in batch_sizes]


def _one(runner: Runner, feed: dict[str, Array], batch: int, cap: float) -> BatchProfile:
    started = time.perf_counter()
    runner(feed)
    while time.perf_counter() - started < WARMUP_SECONDS:
        runner(feed)
    windows: list[list[float]] = []
    deadline = time.perf_counter() + cap
    stable = False
    while True:
        window: list[float] = []
        window_end = time.perf_counter() + WINDOW_SECONDS
        while time.perf_counter() < window_end or len(window) < MIN_ITERATIONS_PER_WINDOW:
            t0 = time.perf_counter()
            runner(feed)
            window.append(time.perf_counter() - t0)
        windows.append(window)
        stable = _stable(windows[-STABLE_WINDOWS:])
        if stable or time.perf_counter() > deadline:
            break
    kept = np.array([t for w in windows[-STABLE_WINDOWS:] for t in w])
    return BatchProfile(
        batch_size=batch,
        p50_ms=float(np.percentile(kept, 50) * 1e3),
        p99_ms=float(np.percentile(kept, 99) * 1e3),
        throughput_per_s=float(batch * len(kept) / kept.sum()),
        stable=stable,
        iterations=int(kept.size),
    )


def _stable(windows: list[list[float]]) -> bool:
    if len(windows) < STABLE_WINDOWS:
        return False
    rates = [len(w) / sum(w) for w in windows]
    return max(rates) <= min(rates) * (1 + STABLE_SPREAD)


def best_within_budget(profiles: Sequence[BatchProfile], budget_ms: float | None) -> BatchProfile | None:
    """Highest-throughput batch size whose p99 meets the budget (any, without a budget)."""
    feasible = [p for p in profiles if budget_ms is None or p.p99_ms <= budget_ms]
    return max(feasible, key=lambda p: p.throughput_per_s, default=None)
