"""Latency and throughput per batch size, bounded in time, measured side by side.

All runners being compared (the PyTorch baseline and every passing variant) are measured in
round-robin windows: on a shared machine the load changes from minute to minute, and only
interleaving gives each runner the same conditions. After a warm-up, rounds continue until the last
three windows of every runner agree on throughput within 10 % (stable) or the time cap is hit
(reported as not stable). p50/p99 and throughput come from all measured windows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

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
    """Profile one runner at each batch size with inputs from `feed_for(batch)`."""
    return side_by_side({"only": runner}, feed_for, batch_sizes, max_seconds_per_batch=max_seconds_per_batch)[
        "only"
    ]


def side_by_side(
    runners: Mapping[str, Runner],
    feed_for: Callable[[int], dict[str, Array]],
    batch_sizes: Sequence[int],
    *,
    max_seconds_per_batch: float = 4.0,
) -> dict[str, list[BatchProfile]]:
    """Profile several runners in interleaved windows; `max_seconds_per_batch` is per runner."""
    result: dict[str, list[BatchProfile]] = {name: [] for name in runners}
    # Short caps (tests, quick profiles) shrink the warm-up and windows with them.
    warmup = min(WARMUP_SECONDS, max_seconds_per_batch / 8)
    window_seconds = min(WINDOW_SECONDS, max_seconds_per_batch / 8)
    for batch in batch_sizes:
        feed = feed_for(batch)
        for runner in runners.values():
            _window(runner, feed, warmup, minimum=1)
        windows: dict[str, list[list[float]]] = {name: [] for name in runners}
        deadline = time.perf_counter() + max_seconds_per_batch * len(runners)
        while True:
            for name, runner in runners.items():
                windows[name].append(_window(runner, feed, window_seconds, minimum=MIN_ITERATIONS_PER_WINDOW))
            if all(_stable(w[-STABLE_WINDOWS:]) for w in windows.values()) or time.perf_counter() > deadline:
                break
        for name, ws in windows.items():
            result[name].append(_summary(ws, batch))
    return result


def _window(runner: Runner, feed: dict[str, Array], seconds: float, *, minimum: int) -> list[float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < minimum:
        t0 = time.perf_counter()
        runner(feed)
        times.append(time.perf_counter() - t0)
    return times


def _summary(windows: list[list[float]], batch: int) -> BatchProfile:
    kept = np.array([t for w in windows for t in w])
    return BatchProfile(
        batch_size=batch,
        p50_ms=float(np.percentile(kept, 50) * 1e3),
        p99_ms=float(np.percentile(kept, 99) * 1e3),
        throughput_per_s=float(batch * len(kept) / kept.sum()),
        stable=_stable(windows[-STABLE_WINDOWS:]),
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
