"""Request traces: CSV with a timestamp column to per-second arrival counts."""

from __future__ import annotations

import csv
import datetime
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

_TIME_COLUMNS = ("timestamp", "time", "ts", "arrival_time")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class TraceError(ValueError):
    """A trace that cannot be replayed; the message is one line for the CLI."""


def _parse_time(value: str) -> float:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    # Azure's traces carry 7 fractional digits; datetime takes at most 6.
    value = _FRACTION.sub(r"\1", value)
    t = datetime.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


def load_arrivals(path: Path) -> npt.NDArray[np.float64]:
    """Read request arrival times from a CSV trace.

    Args:
        path: CSV file with a header and a timestamp column (`TIMESTAMP`, `time`, `ts` or
            `arrival_time`; ISO 8601 datetimes or numeric seconds).

    Returns:
        Sorted arrival times in seconds since the first request.

    Raises:
        TraceError: If the file lacks a timestamp column or usable timestamps.
    """
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise TraceError(f"{path}: empty trace")
            lowered = [h.strip().lower() for h in header]
            column = next((lowered.index(c) for c in _TIME_COLUMNS if c in lowered), None)
            if column is None:
                raise TraceError(f"{path}: no timestamp column (expected one of {', '.join(_TIME_COLUMNS)})")
            times = []
            for line, row in enumerate(reader, start=2):
                if len(row) <= column or not row[column].strip():
                    continue
                try:
                    times.append(_parse_time(row[column]))
                except ValueError as e:
                    raise TraceError(f"{path}:{line}: unusable timestamp {row[column][:40]!r}") from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TraceError(f"{path}: cannot read trace: {e}") from e
    if len(times) < 2:
        raise TraceError(f"{path}: fewer than 2 timestamped requests")
    arr = np.sort(np.asarray(times, dtype=np.float64))
    arr -= arr[0]
    if arr[-1] < 60:
        raise TraceError(f"{path}: trace spans {arr[-1]:.0f} s; at least 60 s of timestamps are needed")
    return arr


def per_second_counts(
    arrivals: npt.NDArray[np.float64], rate_scale: float = 1.0, seed: int = 0, smooth_s: int = 10
) -> npt.NDArray[np.int64]:
    """Turn arrival times into requests per second, optionally scaled up.

    Scale 1 replays the timestamps exactly. Multiplying counts would scale the Poisson noise of a
    5-req/s trace into unrealistically violent bursts, so a scaled trace draws each second from
    Poisson(scale * r(t)), with r(t) the trace's rate averaged over `smooth_s` seconds: the trace's
    bursts longer than `smooth_s` are kept, shorter noise is that of a busier service.

    Args:
        arrivals: Arrival times in seconds from 0.
        rate_scale: Load multiplier (> 0).
        seed: Seed of the Poisson draw.
        smooth_s: Averaging window of r(t) in seconds.

    Returns:
        Requests arriving in each second.
    """
    counts = np.bincount(arrivals.astype(np.int64)).astype(np.int64)
    if rate_scale == 1.0:
        return counts
    kernel = np.ones(smooth_s) / smooth_s
    # Divide by the kernel's coverage so that the first and last seconds are not diluted.
    coverage = np.convolve(np.ones(len(counts)), kernel, mode="same")
    rate = np.convolve(counts.astype(np.float64), kernel, mode="same") / coverage
    rng = np.random.default_rng(seed)
    return rng.poisson(rate * rate_scale).astype(np.int64)
