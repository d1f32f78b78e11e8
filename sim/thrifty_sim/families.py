"""Seeded traffic families: the load shapes of a shop, for testing the policy on traffic it was not tuned on.

Each family is a frozen dataclass of documented parameters with e-commerce defaults. At scale 1 every
family is a small shop of about 5 requests/s on average (the rate of the Azure LLM trace at x1), so the
robust benchmark's rate scales 1, 5, 20 and 80 mean the same for the trace and the families.

* `shape(seconds, seed)`: the family's rate without minute-level noise, requests/s per second (what the
  property tests check the documented shape on).
* `rate(seconds, seed)`: `shape` times log-normal minute-level noise with mean 1.
* `counts(seconds, seed, scale)`: requests arriving in each second, Poisson(`scale * rate`): the
  per-second series `simulate.run` consumes (`HeavyTailed` draws its arrivals instead).

Time 0 is midnight UTC on a Monday. The same parameters and seed give the same series, bit for bit;
every rate is finite and at least 0. Invalid parameters raise `ValueError` when the dataclass is built.
Run `python -m thrifty_sim.families --plot DIR` to draw one PNG per family (`traffic-<name>.png`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from . import generator, trace

HOUR_S = 3600
DAY_S = generator.DAY_S
WEEK_S = 7 * DAY_S
MAX_SCALE = 1e6
Rates = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite_at_least(value: float, low: float, name: str) -> None:
    _check(math.isfinite(value) and value >= low, f"{name} must be a finite number >= {low:g}; got {value!r}")


def _range(pair: tuple[float, float], low: float, high: float, name: str) -> None:
    lo, hi = pair
    _check(
        all(math.isfinite(x) for x in pair) and low <= lo <= hi <= high,
        f"{name} must be (low, high) with {low:g} <= low <= high <= {high:g}; got {pair!r}",
    )


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Separate streams, so that the shape of a seed does not change with the noise or the scale.
    _check(seed >= 0, f"seed must be 0 or more; got {seed}")
    return np.random.default_rng([seed, stream])


def _check_seconds(seconds: int) -> None:
    _check(
        1 <= seconds <= trace.MAX_SPAN_S,
        f"seconds must be from 1 to {trace.MAX_SPAN_S} (31 days); got {seconds}",
    )


def _hours(seconds: int) -> Rates:
    """Hour of the day of each second."""
    return (np.arange(seconds, dtype=np.float64) % DAY_S) / HOUR_S


def _daily_curve(hours: Rates, peak_to_mean: float, trough_hour: float, peak_hour: float) -> Rates:
    """A daily curve with mean 1 over a day, lowest at `trough_hour` and highest at `peak_hour`.

    `exp(k sin(theta))` with theta rising from -pi/2 at the trough to pi/2 at the peak and on to 3pi/2 at the
    next trough, each half at its own speed: shops rise slowly through the day and fall fast after the
    evening peak. Either half sweeps sin's values evenly, so the day's mean is I0(k), as unwarped.
    """
    k = generator._shape_for(peak_to_mean)  # k with exp(k) / I0(k) = peak/mean
    rise = (peak_hour - trough_hour) % 24
    d = (hours - trough_hour) % 24
    theta = np.where(
        d < rise, -math.pi / 2 + math.pi * d / rise, math.pi / 2 + math.pi * (d - rise) / (24 - rise)
    )
    curve: Rates = np.exp(k * np.sin(theta)) / float(np.i0(k))
    return curve


def _envelope(t: Rates, start: float, rise_s: float, hold_s: float, decay_s: float) -> Rates:
    """0 before `start`, a linear rise to 1 over `rise_s`, 1 for `hold_s`, then exp(-t / `decay_s`)."""
    up = np.clip((t - start) / rise_s, 0.0, 1.0)
    after = t - (start + rise_s + hold_s)
    down = np.exp(-np.maximum(after, 0.0) / decay_s)
    out: Rates = np.where(t < start, 0.0, up * down)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Family:
    """What every family shares.

    Attributes:
        noise_sigma: Sigma of the log-normal minute-level noise on the shape (0: none).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # Length of the plot in docs/img: a day, or a week where the family's shape is weekly.
    plot_seconds: ClassVar[int] = DAY_S

    noise_sigma: float = 0.05

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        _check(
            math.isfinite(self.noise_sigma) and 0 <= self.noise_sigma <= 1,
            f"noise_sigma must be in [0, 1]; got {self.noise_sigma!r}",
        )

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        raise NotImplementedError

    def shape(self, seconds: int, seed: int) -> Rates:
        """The rate without minute-level noise, requests/s for each second from midnight on a Monday."""
        _check_seconds(seconds)
        return self._shape(seconds, _rng(seed, 0))

    def rate(self, seconds: int, seed: int) -> Rates:
        """The shape times log-normal minute-level noise of mean 1: requests/s for each second."""
        base = self.shape(seconds, seed)
        rng = _rng(seed, 1)
        minutes = -(-seconds // 60)
        s = self.noise_sigma
        noise = np.exp(rng.normal(-s * s / 2, s, size=minutes))
        out: Rates = base * np.repeat(noise, 60)[:seconds]
        return out

    def counts(self, seconds: int, seed: int, scale: float = 1.0) -> Counts:
        """Requests arriving in each second: Poisson(`scale` * rate).

        Args:
            seconds: Length of the series.
            seed: Seed; the same seed gives the same series.
            scale: Rate multiplier, in (0, 1e6].

        Returns:
            Requests per second.
        """
        _check(math.isfinite(scale) and 0 < scale <= MAX_SCALE, f"scale must be in (0, 1e6]; got {scale!r}")
        lam = scale * self.rate(seconds, seed)
        out: Counts = _rng(seed, 2).poisson(lam).astype(np.int64)
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiurnalWeekly(Family):
    """Everyday shop traffic: a daily cycle on a weekly one.

    Quiet nights (lowest at `trough_hour`), a slow climb through the working day and the evening peak
    after dinner (`peak_hour`), with a weekly rhythm: Friday and Saturday are calmer, Sunday evening is
    the busiest of the week. Each day's level varies by up to `day_jitter`.

    Attributes:
        mean_rps: Mean over the week, requests/s.
        peak_to_mean: Daily peak over the daily mean (>= 1).
        trough_hour: Hour of the night's lowest rate.
        peak_hour: Hour of the evening peak.
        weekday_levels: Level of each day, Monday first (normalized to mean 1).
        day_jitter: Each day's level is multiplied by U(1 - jitter, 1 + jitter).
        start_weekday: Weekday of time 0 (0 Monday); None lets the seed pick it, so that runs shorter
            than a week see weekdays and weekends across seeds.
    """

    name: ClassVar[str] = "diurnal-weekly"
    summary: ClassVar[str] = "everyday traffic: quiet nights, evening peak, calmer Fri/Sat, busy Sunday"
    plot_seconds: ClassVar[int] = WEEK_S

    mean_rps: float = 5.0
    peak_to_mean: float = 2.5
    trough_hour: float = 4.0
    peak_hour: float = 20.5
    weekday_levels: tuple[float, ...] = (1.0, 0.98, 0.97, 0.97, 0.9, 0.85, 1.15)
    day_jitter: float = 0.05
    start_weekday: int | None = None

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.mean_rps, 0, "mean_rps")
        _check(
            math.isfinite(self.peak_to_mean) and 1 <= self.peak_to_mean <= 10,
            f"peak_to_mean must be in [1, 10]; got {self.peak_to_mean!r}",
        )
        for name, hour in (("trough_hour", self.trough_hour), ("peak_hour", self.peak_hour)):
            _check(math.isfinite(hour) and 0 <= hour < 24, f"{name} must be in [0, 24); got {hour!r}")
        _check(
            abs((self.peak_hour - self.trough_hour) % 24) >= 1
            and (self.peak_hour - self.trough_hour) % 24 <= 23,
            "peak_hour must be at least an hour from trough_hour",
        )
        levels = self.weekday_levels
        _check(
            len(levels) == 7 and all(math.isfinite(x) and 0 < x <= 10 for x in levels),
            f"weekday_levels must be 7 numbers in (0, 10]; got {levels!r}",
        )
        _check(
            math.isfinite(self.day_jitter) and 0 <= self.day_jitter < 1,
            f"day_jitter must be in [0, 1); got {self.day_jitter!r}",
        )
        _check(
            self.start_weekday is None or 0 <= self.start_weekday <= 6,
            f"start_weekday must be 0-6 or None; got {self.start_weekday!r}",
        )

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        start = int(rng.integers(0, 7)) if self.start_weekday is None else self.start_weekday
        days = -(-seconds // DAY_S)
        levels = np.asarray(self.weekday_levels) / float(np.mean(self.weekday_levels))
        day_level = levels[(start + np.arange(days)) % 7]
        day_level = day_level * rng.uniform(1 - self.day_jitter, 1 + self.day_jitter, size=days)
        curve = _daily_curve(_hours(seconds), self.peak_to_mean, self.trough_hour, self.peak_hour)
        out: Rates = self.mean_rps * curve * np.repeat(day_level, DAY_S)[:seconds]
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnOff(Family):
    """Traffic that switches between busy and nearly silent: a marketplace partner or price-comparison
    crawler that syncs the catalogue in sessions, or a B2B customer's ordering system sending batches.

    On and off periods last exponential times; the switch is a step (no ramp).

    Attributes:
        on_rps: Rate while on, requests/s.
        off_rps: Rate while off.
        mean_on_minutes: Mean length of an on period.
        mean_off_minutes: Mean length of an off period.
    """

    name: ClassVar[str] = "on-off"
    summary: ClassVar[str] = "partner feed syncs / B2B batches: busy sessions, near-silent gaps"

    on_rps: float = 12.0
    off_rps: float = 0.3
    mean_on_minutes: float = 20.0
    mean_off_minutes: float = 40.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.on_rps, 0, "on_rps")
        _finite_at_least(self.off_rps, 0, "off_rps")
        _finite_at_least(self.mean_on_minutes, 1, "mean_on_minutes")
        _finite_at_least(self.mean_off_minutes, 1, "mean_off_minutes")

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        out = np.full(seconds, self.off_rps)
        # Start in the stationary mix of the two states.
        on = bool(rng.random() < self.mean_on_minutes / (self.mean_on_minutes + self.mean_off_minutes))
        t = 0
        while t < seconds:
            mean = self.mean_on_minutes if on else self.mean_off_minutes
            length = max(1, round(rng.exponential(mean * 60)))
            if on:
                out[t : t + length] = self.on_rps
            t += length
            on = not on
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarkovBursts(Family):
    """A steady base with bursts: push notifications, e-mail campaigns landing, bots and scrapers.

    A two-state Markov-modulated Poisson process: calm periods of exponential length (mean
    `mean_calm_minutes`), then a burst of exponential length (mean `mean_burst_minutes`) that multiplies
    the rate by a factor drawn from U(`burst_factor`).

    Attributes:
        base_rps: Rate while calm, requests/s.
        burst_factor: Range of a burst's multiplier.
        mean_calm_minutes: Mean time between bursts.
        mean_burst_minutes: Mean burst length.
    """

    name: ClassVar[str] = "markov-bursts"
    summary: ClassVar[str] = "push/e-mail campaigns and bot bursts (3-8x for minutes) on a steady base"

    base_rps: float = 4.0
    burst_factor: tuple[float, float] = (3.0, 8.0)
    mean_calm_minutes: float = 25.0
    mean_burst_minutes: float = 4.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.base_rps, 0, "base_rps")
        _range(self.burst_factor, 1, 100, "burst_factor")
        _finite_at_least(self.mean_calm_minutes, 1, "mean_calm_minutes")
        _finite_at_least(self.mean_burst_minutes, 1 / 60, "mean_burst_minutes")

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        out = np.full(seconds, self.base_rps)
        t = round(rng.exponential(self.mean_calm_minutes * 60))
        while t < seconds:
            length = max(1, round(rng.exponential(self.mean_burst_minutes * 60)))
            out[t : t + length] *= rng.uniform(*self.burst_factor)
            t += length + max(1, round(rng.exponential(self.mean_calm_minutes * 60)))
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlashCrowd(Family):
    """A flash crowd: an influencer's post, a TV spot or a viral product link.

    On a flat base the rate rises linearly to `peak_factor` times the base within `rise_s` (under a
    minute), holds there for `hold_minutes`, then decays exponentially back (time constant
    `decay_minutes`). One crowd per `1 / crowds_per_day` days (at least one per series), each at a
    seeded time in the first 10-60 % of its share of the series; the ranges are drawn per crowd.

    Attributes:
        base_rps: Rate outside crowds, requests/s.
        peak_factor: Range of the crowd's peak over the base (10-50x).
        rise_s: Range of the rise time, seconds (under 60).
        hold_minutes: Range of the time at the peak.
        decay_minutes: Time constant of the return to the base.
        crowds_per_day: Crowds per day of series.
    """

    name: ClassVar[str] = "flash-crowd"
    summary: ClassVar[str] = "influencer post / TV spot: 10-50x the base in under a minute, for minutes"

    base_rps: float = 5.0
    peak_factor: tuple[float, float] = (10.0, 50.0)
    rise_s: tuple[float, float] = (15.0, 55.0)
    hold_minutes: tuple[float, float] = (3.0, 12.0)
    decay_minutes: float = 6.0
    crowds_per_day: float = 1.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.base_rps, 0, "base_rps")
        _range(self.peak_factor, 1, 100, "peak_factor")
        _range(self.rise_s, 1, 59, "rise_s")
        _range(self.hold_minutes, 1, 120, "hold_minutes")
        _finite_at_least(self.decay_minutes, 0.1, "decay_minutes")
        _check(
            math.isfinite(self.crowds_per_day) and 0 < self.crowds_per_day <= 24,
            f"crowds_per_day must be in (0, 24]; got {self.crowds_per_day!r}",
        )

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        t = np.arange(seconds, dtype=np.float64)
        factor = np.ones(seconds)
        crowds = max(1, round(seconds / DAY_S * self.crowds_per_day))
        share = seconds / crowds
        for i in range(crowds):
            start = i * share + rng.uniform(0.1, 0.6) * share
            peak = rng.uniform(*self.peak_factor)
            rise = rng.uniform(*self.rise_s)
            hold = rng.uniform(*self.hold_minutes) * 60
            factor = np.maximum(
                factor, 1 + (peak - 1) * _envelope(t, start, rise, hold, self.decay_minutes * 60)
            )
        out: Rates = self.base_rps * factor
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnnouncedSale(Family):
    """An announced sale: Black Friday doors opening, a drop at a published time, a live-shopping show.

    Flat at the base until `start_hour` (the shop knows the window in advance), a steep ramp to the
    sale's level within `ramp_s`, that level for `sale_hours`, then an exponential return to the base
    (time constant `cooldown_minutes`). The level and the ramp are drawn per seed from their ranges;
    the window is the same for every seed.

    Attributes:
        base_rps: Rate outside the sale, requests/s.
        start_hour: Hour from time 0 at which the sale opens.
        ramp_s: Range of the ramp's length, seconds.
        sale_factor: Range of the sale's level over the base.
        sale_hours: Length of the sale window.
        cooldown_minutes: Time constant of the return to the base.
    """

    name: ClassVar[str] = "announced-sale"
    summary: ClassVar[str] = "Black Friday / a published drop: known window, 6-12x within minutes"

    base_rps: float = 4.0
    start_hour: float = 12.0
    ramp_s: tuple[float, float] = (60.0, 180.0)
    sale_factor: tuple[float, float] = (6.0, 12.0)
    sale_hours: float = 2.0
    cooldown_minutes: float = 30.0
    noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.base_rps, 0, "base_rps")
        _check(
            math.isfinite(self.start_hour) and 0 <= self.start_hour <= 31 * 24,
            f"start_hour must be in [0, 744]; got {self.start_hour!r}",
        )
        _range(self.ramp_s, 1, 3600, "ramp_s")
        _range(self.sale_factor, 1, 100, "sale_factor")
        _finite_at_least(self.sale_hours, 1 / 60, "sale_hours")
        _finite_at_least(self.cooldown_minutes, 0.1, "cooldown_minutes")

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        t = np.arange(seconds, dtype=np.float64)
        level = rng.uniform(*self.sale_factor)
        ramp = rng.uniform(*self.ramp_s)
        hold = max(0.0, self.sale_hours * HOUR_S - ramp)
        env = _envelope(t, self.start_hour * HOUR_S, ramp, hold, self.cooldown_minutes * 60)
        out: Rates = self.base_rps * (1 + (level - 1) * env)
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeavyTailed(Family):
    """Heavy-tailed inter-arrivals: API clients, apps and bots whose think times are Pareto-distributed.

    A renewal process whose gaps between requests are Lomax (Pareto II) with tail index `alpha` and mean
    `1 / (scale * mean_rps)`: long silences and dense clusters at every time scale (the self-similar
    burstiness of web traffic that Poisson load lacks). The counts are drawn from the arrivals, not from
    the rate; `shape` and `rate` are the constant mean. Arrivals within a second are simulated together.

    Attributes:
        mean_rps: Mean rate at scale 1, requests/s.
        alpha: Tail index of the gaps (1 < alpha; below 2 their variance is infinite).
    """

    name: ClassVar[str] = "heavy-tailed"
    summary: ClassVar[str] = "API clients and bots with Pareto think times: silences and clusters"
    noise_sigma: float = 0.0

    mean_rps: float = 5.0
    alpha: float = 1.4

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _check(
            math.isfinite(self.mean_rps) and 0 < self.mean_rps <= 1e5,
            f"mean_rps must be in (0, 1e5]; got {self.mean_rps!r}",
        )
        _check(
            math.isfinite(self.alpha) and 1.05 <= self.alpha <= 3,
            f"alpha must be in [1.05, 3]; got {self.alpha!r}",
        )

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        return np.full(seconds, self.mean_rps)

    def counts(self, seconds: int, seed: int, scale: float = 1.0) -> Counts:
        """Requests arriving in each second of the renewal process at `scale` times the mean rate."""
        _check_seconds(seconds)
        _check(math.isfinite(scale) and 0 < scale <= MAX_SCALE, f"scale must be in (0, 1e6]; got {scale!r}")
        rng = _rng(seed, 2)
        # numpy's pareto(a) is Lomax with mean 1 / (a - 1).
        gap_scale = (self.alpha - 1) / (scale * self.mean_rps)
        out = np.zeros(seconds, dtype=np.int64)
        chunk = 1 << 20
        t = float(rng.pareto(self.alpha)) * gap_scale  # the first arrival after one gap
        while t < seconds:
            times = t + np.concatenate(([0.0], np.cumsum(rng.pareto(self.alpha, chunk - 1) * gap_scale)))
            inside = times[times < seconds]
            out += np.bincount(inside.astype(np.int64), minlength=seconds)
            t = float(times[-1]) + float(rng.pareto(self.alpha)) * gap_scale
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlowRamp(Family):
    """A campaign launch: newsletter, ads and influencer posts building through a day, a plateau, then
    the campaign ending; or a product going viral slowly.

    Flat at the base, a linear ramp to `peak_factor` times the base over `ramp_up_hours`, a plateau of
    `plateau_hours` and a linear ramp back over `ramp_down_hours`. The start is `start_hour` moved by
    U(-`start_jitter_hours`, +`start_jitter_hours`) per seed.

    Attributes:
        base_rps: Rate before and after, requests/s.
        peak_factor: Plateau over the base.
        start_hour: Hour from time 0 at which the ramp starts.
        start_jitter_hours: Range of the seeded shift of the start.
        ramp_up_hours: Length of the rise.
        plateau_hours: Length of the plateau.
        ramp_down_hours: Length of the fall.
    """

    name: ClassVar[str] = "slow-ramp"
    summary: ClassVar[str] = "campaign launch: 4x over 5 h, a 3-h plateau, back down over 6 h"

    base_rps: float = 2.5
    peak_factor: float = 4.0
    start_hour: float = 6.0
    start_jitter_hours: float = 1.0
    ramp_up_hours: float = 5.0
    plateau_hours: float = 3.0
    ramp_down_hours: float = 6.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.base_rps, 0, "base_rps")
        _check(
            math.isfinite(self.peak_factor) and 1 <= self.peak_factor <= 100,
            f"peak_factor must be in [1, 100]; got {self.peak_factor!r}",
        )
        _check(
            math.isfinite(self.start_hour) and 0 <= self.start_hour <= 31 * 24,
            f"start_hour must be in [0, 744]; got {self.start_hour!r}",
        )
        _check(
            math.isfinite(self.start_jitter_hours) and 0 <= self.start_jitter_hours <= self.start_hour,
            f"start_jitter_hours must be in [0, start_hour]; got {self.start_jitter_hours!r}",
        )
        _finite_at_least(self.ramp_up_hours, 0.25, "ramp_up_hours")
        _finite_at_least(self.plateau_hours, 0, "plateau_hours")
        _finite_at_least(self.ramp_down_hours, 0.25, "ramp_down_hours")

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        t = np.arange(seconds, dtype=np.float64) / HOUR_S
        start = self.start_hour + rng.uniform(-self.start_jitter_hours, self.start_jitter_hours)
        top = start + self.ramp_up_hours
        end = top + self.plateau_hours
        up = np.clip((t - start) / self.ramp_up_hours, 0, 1)
        down = np.clip(1 - (t - end) / self.ramp_down_hours, 0, 1)
        out: Rates = self.base_rps * (1 + (self.peak_factor - 1) * np.minimum(up, down))
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class LongIdle(Family):
    """Business hours only: a B2B wholesale catalogue or a regional shop's internal search. Nights have
    no request at all (where a scale-to-zero autoscaler saves money and pays a cold start in the morning).

    Zero until `open_hour` (moved by up to `open_jitter_minutes` per seed), a linear ramp over
    `ramp_minutes` to `open_rps`, flat until `close_hour`, a ramp down to zero; every day.

    Attributes:
        open_rps: Rate while open, requests/s.
        open_hour: Hour of the day the ramp up starts.
        close_hour: Hour of the day the ramp down starts.
        ramp_minutes: Length of either ramp.
        open_jitter_minutes: Range of the seeded shift of the opening and closing each day.
    """

    name: ClassVar[str] = "long-idle"
    summary: ClassVar[str] = "B2B catalogue: business hours 08-22, nights with no request at all"

    open_rps: float = 7.0
    open_hour: float = 8.0
    close_hour: float = 22.0
    ramp_minutes: float = 30.0
    open_jitter_minutes: float = 20.0

    def __post_init__(self) -> None:
        """Refuse parameters the family cannot generate."""
        super().__post_init__()
        _finite_at_least(self.open_rps, 0, "open_rps")
        _finite_at_least(self.ramp_minutes, 1, "ramp_minutes")
        _finite_at_least(self.open_jitter_minutes, 0, "open_jitter_minutes")
        margin = self.open_jitter_minutes / 60
        _check(
            math.isfinite(self.open_hour)
            and math.isfinite(self.close_hour)
            and margin <= self.open_hour
            and self.open_hour + self.ramp_minutes / 60 <= self.close_hour
            and self.close_hour + (self.ramp_minutes + self.open_jitter_minutes) / 60 <= 24,
            "need open_jitter <= open_hour, open_hour + ramp <= close_hour and "
            "close_hour + ramp + jitter <= 24; "
            f"got open_hour {self.open_hour!r}, close_hour {self.close_hour!r}",
        )

    def _shape(self, seconds: int, rng: np.random.Generator) -> Rates:
        days = -(-seconds // DAY_S)
        jitter = self.open_jitter_minutes / 60
        shift = np.repeat(rng.uniform(-jitter, jitter, size=days), DAY_S)[:seconds]
        h = _hours(seconds) - shift
        ramp = self.ramp_minutes / 60
        up = np.clip((h - self.open_hour) / ramp, 0, 1)
        down = np.clip(1 - (h - self.close_hour) / ramp, 0, 1)
        out: Rates = self.open_rps * np.minimum(up, down)
        return out


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        DiurnalWeekly(),
        OnOff(),
        MarkovBursts(),
        FlashCrowd(),
        AnnouncedSale(),
        HeavyTailed(),
        SlowRamp(),
        LongIdle(),
    )
}


def write_plots(out: Path, seed: int = 0) -> list[Path]:
    """Draw one PNG per family (`traffic-<name>.png`): a day, or a week for the weekly family.

    Args:
        out: Folder (created).
        seed: Seed of every family.

    Returns:
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for family in FAMILIES.values():
        n = family.plot_seconds
        fam = family
        if isinstance(family, DiurnalWeekly):
            fam = dataclasses.replace(family, start_weekday=0)  # a week from Monday
        counts = fam.counts(n, seed)
        per_minute = counts[: n // 60 * 60].reshape(-1, 60).mean(axis=1)
        hours = np.arange(len(per_minute)) / 60
        fig, ax = plt.subplots(figsize=(10, 3.2))
        ax.plot(hours, per_minute, color="0.55", linewidth=0.6, label="requests/s (1-min mean, scale 1)")
        shape = fam.shape(n, seed)[: len(per_minute) * 60].reshape(-1, 60).mean(axis=1)
        ax.plot(hours, shape, color="tab:blue", linewidth=1.0, label="shape")
        ax.set_title(f"{family.name}: {family.summary} (seed {seed})", fontsize=10)
        ax.set_xlabel("hours from Monday 00:00" if n > DAY_S else "hour of the day")
        ax.set_ylabel("requests/s")
        ax.set_xlim(0, n / HOUR_S)
        ax.set_xticks(np.arange(0, n / HOUR_S + 1, 24 if n > DAY_S else 2))
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = out / f"traffic-{family.name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m thrifty_sim.families --plot DIR [--seed N]`: regenerate the family plots."""
    ap = argparse.ArgumentParser(prog="thrifty_sim.families", description=__doc__.splitlines()[0])
    ap.add_argument("--plot", type=Path, required=True, help="folder for traffic-<family>.png")
    ap.add_argument("--seed", type=int, default=0, help="seed of every family (default 0)")
    args = ap.parse_args(argv)
    if args.seed < 0:
        ap.error(f"argument --seed: must be 0 or more; got {args.seed}")
    for path in write_plots(args.plot, args.seed):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
