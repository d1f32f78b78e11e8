"""Request traces: CSV with a timestamp column to per-second arrival counts.

Format: UTF-8 (a byte-order mark is accepted), LF or CRLF line ends, a header row and one row per
request with a timestamp column (`TIMESTAMP`, `time`, `ts` or `arrival_time`, any case). A row may
instead stand for several requests at its timestamp with a `count` or `requests` column (whole
numbers, 0 or more). Every row has the header's number of fields; blank lines are skipped. Timestamps
are all ISO 8601 datetimes (a timezone-less one is UTC) or all numbers, sorted (equal ones are fine).
Numbers are in `time_unit`: seconds, milliseconds or microseconds; `auto` reads a first timestamp of
at least 1e8 as seconds, milliseconds or microseconds since the epoch by its magnitude (1e8-1e11 s,
1e11-1e14 ms, 1e14-1e17 us) and smaller ones as seconds from any origin.

Idle gaps: the simulator steps through every second, so a gap between consecutive timestamps longer
than `MAX_GAP_S` (an hour) is shortened to `MAX_GAP_S`: by then every policy has scaled to its floor,
and the hours left out would only add the floor's cost and windows without requests (which count
neither for nor against the SLO). Reading is O(rows) in time and memory, and the simulated period is
the trace's span after shortening, at most `MAX_SPAN_S` (31 days). Every problem is a `TraceError`
with a one-line message that names the line.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

_TIME_COLUMNS = ("timestamp", "time", "ts", "arrival_time")
_COUNT_COLUMNS = ("count", "requests")
_FRACTION = re.compile(r"(\.\d{6})\d+")

# Units of a numeric timestamp per second.
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
# `auto`: a first timestamp of at least this is an epoch time; its magnitude picks the unit.
_EPOCH_MIN = 1e8
_EPOCH_RANGES = (("s", 1e11), ("ms", 1e14), ("us", 1e17))

MIN_SPAN_S = 60
MAX_GAP_S = 3600.0
MAX_SPAN_S = 31 * 86_400
# Most requests one row may stand for, and the most per second after `rate_scale`.
MAX_ROW_COUNT = 10**9
MAX_RATE_PER_S = 1e9


class TraceError(ValueError):
    """A trace that cannot be replayed; the message is one line for the CLI."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trace:
    """A trace as read.

    Attributes:
        arrivals: Seconds since the first row, sorted, idle gaps shortened.
        weights: Requests per row (a `count` column), or None for one request per row.
        unit: Unit numeric timestamps were read in; None for ISO 8601 datetimes.
        unit_reason: How `auto` chose `unit` (None when the unit was given or the times are datetimes).
        gaps_shortened: Gaps longer than `MAX_GAP_S` shortened to it.
        idle_removed_s: Seconds those gaps lost.
    """

    arrivals: npt.NDArray[np.float64]
    weights: npt.NDArray[np.int64] | None = None
    unit: str | None = None
    unit_reason: str | None = None
    gaps_shortened: int = 0
    idle_removed_s: float = 0.0


def _clip(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _parse_iso(value: str) -> float:
    # Azure's traces carry 7 fractional digits; datetime takes at most 6.
    t = datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


def _parse_time(raw: str, where: str) -> tuple[float, bool]:
    """A timestamp: seconds for an ISO 8601 datetime, the number itself otherwise; and which it was."""
    try:
        return float(raw), True
    except ValueError:
        pass
    try:
        return _parse_iso(raw), False
    except (ValueError, OverflowError):
        raise TraceError(
            f"{where}: unusable timestamp {_clip(raw)} (expected an ISO 8601 datetime or a number)"
        ) from None


def _parse_count(value: str, where: str) -> int:
    try:
        return _checked_count(int(value), value, where)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        raise TraceError(f"{where}: request count {_clip(value)} is not a number") from None
    if not math.isfinite(number):
        raise TraceError(f"{where}: request count {_clip(value)} is not finite")
    if not number.is_integer():
        raise TraceError(f"{where}: request count {_clip(value)} is not a whole number")
    return _checked_count(int(number), value, where)


def _checked_count(n: int, value: str, where: str) -> int:
    if n < 0:
        raise TraceError(f"{where}: request count {_clip(value)} is negative")
    if n > MAX_ROW_COUNT:
        raise TraceError(f"{where}: request count {_clip(value)} is more than {_sci(MAX_ROW_COUNT)}")
    return n


def _columns(header: list[str], path: Path) -> tuple[int, int | None, str]:
    lowered = [h.strip().lower() for h in header]
    layout = ",".join(h.strip() for h in header)
    if len(layout) > 120:
        layout = layout[:120] + "..."
    column = next((lowered.index(c) for c in _TIME_COLUMNS if c in lowered), None)
    if column is None:
        raise TraceError(
            f"{path}: no timestamp column (expected one of {', '.join(_TIME_COLUMNS)}; "
            f"the header is {layout!r})"
        )
    count = next((lowered.index(c) for c in _COUNT_COLUMNS if c in lowered), None)
    return column, count, layout


def _read_rows(path: Path) -> tuple[list[float], list[int] | None, bool]:
    """Timestamps (seconds for datetimes, raw numbers otherwise), counts, and whether they are numbers."""
    times: list[float] = []
    counts: list[int] | None = None
    numeric: bool | None = None
    first_line = prev_line = line = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next((row for row in reader if any(h.strip() for h in row)), None)
            if header is None:
                raise TraceError(f"{path}: empty trace (no header row)")
            column, count_column, layout = _columns(header, path)
            name = header[column].strip()
            counts = None if count_column is None else []
            for row in reader:
                line = reader.line_num
                where = f"{path}:{line}"
                if len(row) <= 1 and not "".join(row).strip():
                    continue  # blank line
                if len(row) != len(header):
                    raise TraceError(
                        f"{where}: {len(row)} field{'s' if len(row) != 1 else ''}, expected "
                        f"{len(header)} ({layout})"
                    )
                raw = row[column].strip()
                if not raw:
                    raise TraceError(f"{where}: no timestamp in column {name}")
                value, is_number = _parse_time(raw, where)
                if numeric is None:
                    numeric, first_line = is_number, line
                elif is_number != numeric:
                    kinds = ("an ISO 8601 datetime", "a number")
                    raise TraceError(
                        f"{where}: timestamp {_clip(raw)} is {kinds[is_number]}, but line {first_line}'s "
                        f"is {kinds[numeric]}; use one kind throughout"
                    )
                if not math.isfinite(value):
                    raise TraceError(f"{where}: timestamp {_clip(raw)} is not finite")
                if times and value < times[-1]:
                    raise TraceError(
                        f"{where}: timestamp {_clip(raw)} is earlier than line {prev_line}'s; the trace "
                        "must be sorted by time"
                    )
                if counts is not None and count_column is not None:
                    counts.append(_parse_count(row[count_column].strip(), where))
                times.append(value)
                prev_line = line
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text ({e.reason}) after line {line}") from e
    except csv.Error as e:
        raise TraceError(f"{path}:{line + 1}: malformed CSV: {e}") from e
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from e
    return times, counts, bool(numeric)


def _sci(power_of_ten: float) -> str:
    return f"1e{round(math.log10(power_of_ten))}"


def _unit_for(first: float, time_unit: str, path: Path) -> tuple[str, str | None]:
    if time_unit != "auto":
        return time_unit, None
    magnitude = abs(first)
    if magnitude < _EPOCH_MIN:
        return "s", f"seconds from any origin (the first timestamp, {first:g}, is below {_sci(_EPOCH_MIN)})"
    low = _EPOCH_MIN
    for unit, below in _EPOCH_RANGES:
        if magnitude < below:
            return unit, (
                f"{_UNIT_NAMES[unit]} since the epoch (the first timestamp, {first:.4g}, is in "
                f"{_sci(low)}-{_sci(below)})"
            )
        low = below
    raise TraceError(
        f"{path}: timestamps of {first:.4g} are too large for seconds, milliseconds or microseconds since "
        "the epoch (nanoseconds?); convert them or pass --time-unit"
    )


def read(path: Path, time_unit: str = "auto") -> Trace:
    """Read a CSV trace (see the module's docstring for the format).

    Args:
        path: CSV file.
        time_unit: `s`, `ms`, `us` or `auto`, for numeric timestamps.

    Returns:
        The trace, timed in seconds from its first row, with idle gaps shortened.

    Raises:
        TraceError: If the file cannot be read or a row is unusable (the message names its line).
    """
    if time_unit != "auto" and time_unit not in TIME_UNITS:
        raise TraceError(f"time unit {time_unit!r}: choose from auto, {', '.join(TIME_UNITS)}")
    times, counts, numeric = _read_rows(path)
    if len(times) < 2:
        raise TraceError(
            f"{path}: {len(times)} timestamped row{'s' if len(times) != 1 else ''}; at least 2 needed"
        )
    if not math.isfinite(times[-1] - times[0]):
        raise TraceError(
            f"{path}: timestamps from {times[0]:g} to {times[-1]:g} span more than a float holds"
        )
    arr = np.asarray(times, dtype=np.float64)
    unit, reason = _unit_for(float(arr[0]), time_unit, path) if numeric else (None, None)
    arr -= arr[0]
    if unit is not None and unit != "s":
        arr /= TIME_UNITS[unit]
    if arr[-1] < MIN_SPAN_S:
        read_as = f" (timestamps read as {_UNIT_NAMES[unit]})" if unit else ""
        raise TraceError(
            f"{path}: trace spans {arr[-1]:.3g} s{read_as}; at least {MIN_SPAN_S} s of timestamps are needed"
        )
    # Shorten idle gaps; `arr` stays bit for bit what it was when none is long. Rebuilt from the gaps
    # rather than by subtracting what they lose, which a timestamp of 1e19 would round away.
    gaps = np.diff(arr)
    long_gaps = gaps > MAX_GAP_S
    shortened = int(np.count_nonzero(long_gaps))
    removed = 0.0
    if shortened:
        removed = float((gaps[long_gaps] - MAX_GAP_S).sum())
        arr = np.concatenate(([0.0], np.cumsum(np.minimum(gaps, MAX_GAP_S))))
    if arr[-1] > MAX_SPAN_S:
        after = f" after shortening idle gaps to {MAX_GAP_S:.0f} s" if shortened else ""
        raise TraceError(
            f"{path}: trace spans {arr[-1]:.0f} s{after}; at most {MAX_SPAN_S} s (31 days) can be simulated"
        )
    weights = None if counts is None else np.asarray(counts, dtype=np.int64)
    return Trace(
        arrivals=arr,
        weights=weights,
        unit=unit,
        unit_reason=reason,
        gaps_shortened=shortened,
        idle_removed_s=removed,
    )


def load_arrivals(path: Path, time_unit: str = "auto") -> npt.NDArray[np.float64]:
    """Read request arrival times from a CSV trace of one row per request.

    Args:
        path: CSV file (see the module's docstring for the format).
        time_unit: `s`, `ms`, `us` or `auto`, for numeric timestamps.

    Returns:
        Sorted arrival times in seconds since the first request, idle gaps shortened.

    Raises:
        TraceError: If the file is unusable, or has a `count` column (use `read`).
    """
    t = read(path, time_unit)
    if t.weights is not None:
        raise TraceError(f"{path}: a trace with a request count column; read it with trace.read")
    return t.arrivals


def per_second_counts(
    arrivals: npt.NDArray[np.float64],
    rate_scale: float = 1.0,
    seed: int = 0,
    smooth_s: int = 10,
    weights: npt.NDArray[np.int64] | None = None,
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
        weights: Requests at each arrival time (None: one each).

    Returns:
        Requests arriving in each second.

    Raises:
        TraceError: If the scaled load exceeds `MAX_RATE_PER_S` in some second.
    """
    if weights is None:
        counts = np.bincount(arrivals.astype(np.int64)).astype(np.int64)
    else:
        counts = np.bincount(arrivals.astype(np.int64), weights=weights.astype(np.float64)).astype(np.int64)
    if rate_scale == 1.0:
        peak = float(counts.max()) if len(counts) else 0.0
        if peak > MAX_RATE_PER_S:
            raise TraceError(
                f"the trace has {peak:.3g} requests in one second; at most {_sci(MAX_RATE_PER_S)} "
                "can be simulated"
            )
        return counts
    kernel = np.ones(smooth_s) / smooth_s
    # Divide by the kernel's coverage so that the first and last seconds are not diluted.
    coverage = np.convolve(np.ones(len(counts)), kernel, mode="same")
    rate = np.convolve(counts.astype(np.float64), kernel, mode="same") / coverage
    peak = float(rate.max()) * rate_scale if len(rate) else 0.0
    if peak > MAX_RATE_PER_S:
        raise TraceError(
            f"rate scale {rate_scale:g} makes the trace's busiest 10 s {peak:.3g} requests/s; "
            f"at most {_sci(MAX_RATE_PER_S)} can be simulated"
        )
    rng = np.random.default_rng(seed)
    return rng.poisson(rate * rate_scale).astype(np.int64)
