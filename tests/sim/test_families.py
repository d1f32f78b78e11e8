"""Traffic families (`thrifty_sim.families`) and the robust benchmark (`thrifty_sim.robust`).

Property tests: any seed and any valid parameters give a finite, non-negative, deterministic series whose
documented shape holds. Then a smoke run of the benchmark on one short cell, and its bad flags.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty_sim import families, robust

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(min_value=0, max_value=2**32)
HOUR = 3600
DAY = families.DAY_S


def pair(low: float, high: float) -> st.SearchStrategy[tuple[float, float]]:
    return st.tuples(st.floats(low, high), st.floats(low, high)).map(lambda p: (min(p), max(p)))


SIGMA = st.floats(0, 0.3)
FAMILY_PARAMS: dict[str, st.SearchStrategy[families.Family]] = {
    "diurnal-weekly": st.builds(
        families.DiurnalWeekly,
        mean_rps=st.floats(0, 1000),
        peak_to_mean=st.floats(1, 10),
        trough_hour=st.floats(0, 6),
        peak_hour=st.floats(12, 23),
        weekday_levels=st.tuples(*[st.floats(0.1, 3)] * 7),
        day_jitter=st.floats(0, 0.5),
        start_weekday=st.none() | st.integers(0, 6),
        noise_sigma=SIGMA,
    ),
    "on-off": st.builds(
        families.OnOff,
        on_rps=st.floats(0, 1000),
        off_rps=st.floats(0, 10),
        mean_on_minutes=st.floats(1, 120),
        mean_off_minutes=st.floats(1, 120),
        noise_sigma=SIGMA,
    ),
    "markov-bursts": st.builds(
        families.MarkovBursts,
        base_rps=st.floats(0, 1000),
        burst_factor=pair(1, 20),
        mean_calm_minutes=st.floats(1, 120),
        mean_burst_minutes=st.floats(0.1, 30),
        noise_sigma=SIGMA,
    ),
    "flash-crowd": st.builds(
        families.FlashCrowd,
        base_rps=st.floats(0.1, 1000),
        peak_factor=pair(10, 50),
        rise_s=pair(1, 59),
        hold_minutes=pair(2, 30),
        decay_minutes=st.floats(0.5, 30),
        crowds_per_day=st.floats(0.5, 4),
        noise_sigma=SIGMA,
    ),
    "announced-sale": st.builds(
        families.AnnouncedSale,
        base_rps=st.floats(0.1, 1000),
        start_hour=st.floats(1, 20),
        ramp_s=pair(1, 600),
        sale_factor=pair(2, 20),
        sale_hours=st.floats(0.25, 3),
        cooldown_minutes=st.floats(1, 60),
        noise_sigma=SIGMA,
    ),
    "heavy-tailed": st.builds(families.HeavyTailed, mean_rps=st.floats(0.1, 50), alpha=st.floats(1.1, 3)),
    "slow-ramp": st.builds(
        families.SlowRamp,
        base_rps=st.floats(0, 1000),
        peak_factor=st.floats(1, 20),
        start_hour=st.floats(2, 6),
        start_jitter_hours=st.floats(0, 2),
        ramp_up_hours=st.floats(0.25, 5),
        plateau_hours=st.floats(0, 3),
        ramp_down_hours=st.floats(0.25, 5),
        noise_sigma=SIGMA,
    ),
    "long-idle": st.builds(
        families.LongIdle,
        open_rps=st.floats(0, 1000),
        open_hour=st.floats(6, 10),
        close_hour=st.floats(16, 21),
        ramp_minutes=st.floats(1, 60),
        open_jitter_minutes=st.floats(0, 30),
        noise_sigma=SIGMA,
    ),
}


def test_every_family_has_a_strategy_and_defaults() -> None:
    assert set(FAMILY_PARAMS) == set(families.FAMILIES)
    assert list(robust.LOADS) == [*families.FAMILIES, robust.TRACE]


@PROPERTY
@given(data=st.data(), name=st.sampled_from(sorted(families.FAMILIES)), seed=SEEDS)
def test_any_parameters_give_finite_non_negative_deterministic_counts(
    data: st.DataObject, name: str, seed: int
) -> None:
    family = data.draw(FAMILY_PARAMS[name])
    scale = data.draw(st.sampled_from([0.5, 1.0, 20.0]))
    rate = family.rate(DAY, seed)
    assert rate.shape == (DAY,) and np.isfinite(rate).all() and (rate >= 0).all()
    counts = family.counts(DAY, seed, scale)
    assert counts.dtype == np.int64 and counts.shape == (DAY,) and (counts >= 0).all()
    assert np.array_equal(counts, family.counts(DAY, seed, scale))
    assert np.array_equal(rate, family.rate(DAY, seed))


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_defaults_are_a_small_shop_and_seeds_differ(name: str) -> None:
    family = families.FAMILIES[name]
    a, b = family.counts(DAY, 1), family.counts(DAY, 2)
    assert 2 <= a.mean() <= 10, a.mean()  # about 5 req/s at scale 1, as the Azure trace at x1
    assert not np.array_equal(a, b)


@PROPERTY
@given(family=FAMILY_PARAMS["flash-crowd"], seed=SEEDS)
def test_flash_crowd_reaches_10_to_50x_within_a_minute_and_lasts_minutes(
    family: families.FlashCrowd, seed: int
) -> None:
    shape = family.shape(DAY, seed) / family.base_rps
    onset = int(np.argmax(shape > 1 + 1e-9))
    assert onset > 0
    first_minute = shape[onset : onset + 60]
    assert 10 * (1 - 1e-9) <= first_minute.max() <= 50 * (1 + 1e-9)
    assert np.count_nonzero(shape[onset:] >= 10 * (1 - 1e-9)) >= 2 * 60


@PROPERTY
@given(family=FAMILY_PARAMS["announced-sale"], seed=SEEDS)
def test_announced_sale_is_flat_before_its_window_and_ramps_steeply(
    family: families.AnnouncedSale, seed: int
) -> None:
    shape = family.shape(DAY, seed)
    start = int(family.start_hour * HOUR)
    assert np.all(shape[:start] == family.base_rps)
    # The window opens at a fractional second; the ramp is over one second after its longest end.
    ramp_end = math.ceil(family.start_hour * HOUR + family.ramp_s[1]) + 1
    assert shape[ramp_end] >= family.sale_factor[0] * family.base_rps * (1 - 1e-9)


@PROPERTY
@given(family=FAMILY_PARAMS["long-idle"], seed=SEEDS)
def test_long_idle_has_hours_without_any_request(family: families.LongIdle, seed: int) -> None:
    counts = family.counts(DAY, seed, 80.0)
    # The night before opening: at least open_hour - jitter hours of exact zeros.
    quiet = int((family.open_hour - family.open_jitter_minutes / 60) * HOUR)
    assert quiet >= 5 * HOUR and not counts[:quiet].any()


@PROPERTY
@given(family=FAMILY_PARAMS["slow-ramp"], seed=SEEDS)
def test_slow_ramp_rises_and_falls_without_steps(family: families.SlowRamp, seed: int) -> None:
    shape = family.shape(DAY, seed)
    assert shape.max() == pytest.approx(family.base_rps * family.peak_factor, rel=2e-3)
    assert shape[0] == shape[-1] == pytest.approx(family.base_rps)
    steepest = (
        family.base_rps
        * (family.peak_factor - 1)
        / (min(family.ramp_up_hours, family.ramp_down_hours) * HOUR)
    )
    assert np.abs(np.diff(shape)).max() <= steepest * (1 + 1e-6) + 1e-12


def test_weekly_family_has_a_busier_sunday_and_a_daily_peak_in_the_evening() -> None:
    family = families.DiurnalWeekly(noise_sigma=0.0, day_jitter=0.0, start_weekday=0)
    shape = family.shape(families.WEEK_S, 0).reshape(7, DAY)
    assert shape[6].mean() > shape[0].mean() > shape[5].mean()
    assert 20 <= np.argmax(shape[0]) / HOUR <= 21
    assert 3.5 <= np.argmin(shape[0]) / HOUR <= 4.5
    assert shape[0].max() / shape[0].mean() == pytest.approx(2.5, rel=1e-3)


def test_heavy_tailed_gaps_are_burstier_than_poisson() -> None:
    counts = families.HeavyTailed().counts(DAY, 3)
    poisson = np.random.default_rng(3).poisson(counts.mean(), DAY)
    per_minute = counts.reshape(-1, 60).sum(axis=1)
    assert per_minute.var() > 5 * poisson.reshape(-1, 60).sum(axis=1).var()
    assert counts.mean() == pytest.approx(5.0, rel=0.25)


@pytest.mark.parametrize(
    "make",
    [
        lambda: families.FlashCrowd(rise_s=(10, 90)),
        lambda: families.FlashCrowd(peak_factor=(30, 10)),
        lambda: families.DiurnalWeekly(peak_to_mean=float("nan")),
        lambda: families.OnOff(on_rps=-1),
        lambda: families.HeavyTailed(alpha=1.0),
        lambda: families.LongIdle(open_hour=23),
        lambda: families.SlowRamp(noise_sigma=float("inf")),
    ],
)
def test_invalid_parameters_are_refused(make: Callable[[], families.Family]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        make()


def test_bad_seed_scale_or_length_is_refused() -> None:
    f = families.FlashCrowd()
    calls: list[Callable[[], object]] = [
        lambda: f.counts(0, 1),
        lambda: f.counts(60, -1),
        lambda: f.counts(60, 1, float("nan")),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def test_plots_are_written_per_family(tmp_path: Path) -> None:
    written = families.write_plots(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"traffic-{n}.png" for n in families.FAMILIES)
    assert all(p.stat().st_size > 10_000 for p in written)


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = robust.main(list(argv))
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def strict_load(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_robust_bench_smoke_prints_the_row_and_writes_sane_json(tmp_path: Path) -> None:
    argv = ["--families", "flash-crowd", "--seeds", "1", "--scales", "5", "--hours", "2", "--jobs", "1"]
    rc, out, err = run([*argv, "--out", str(tmp_path)])
    assert rc == 0, err
    rows = [line for line in out.splitlines() if line.startswith("flash-crowd ")]
    assert len(rows) == len(robust.METRICS), out
    doc = strict_load(tmp_path / "results.json")
    assert (tmp_path / "heatmap.png").stat().st_size > 10_000
    (row,) = doc["matrix"]
    assert (row["load"], row["scale"], row["seeds"]) == ("flash-crowd", 5.0, 1)
    oracle = row["policies"]["oracle"]
    assert oracle["slo_mean"] == 1.0 and oracle["cost_ratio_mean"] == 1.0
    for name in robust.POLICIES:
        stats = row["policies"][name]
        assert 0 <= stats["slo_worst"] <= stats["slo_mean"] <= 1
        assert 0.5 <= stats["cost_ratio_mean"] <= 10
        assert stats["overrun_mean"] >= 0 and stats["actions_worst"] >= 0
    assert doc["runs"][0]["policies"]["thrifty"]["overrun"] == 0.0


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "two"], "--seeds"),
        (["--scales", "1,nan"], "--scales"),
        (["--scales", "inf"], "--scales"),
        (["--scales", "-5"], "--scales"),
        (["--scales", ""], "--scales"),
        (["--hours", "nan"], "--hours"),
        (["--hours", "-1"], "--hours"),
        (["--hours", "1e9"], "--hours"),
        (["--families", "flash-crowd,black-friday"], "black-friday"),
        (["--jobs", "0"], "--jobs"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], word: str, tmp_path: Path) -> None:
    rc, out, err = run([*argv, "--out", str(tmp_path / "out")])
    assert rc == 2, err
    assert err.startswith("bench-cost-robust: error: ") and err.count("\n") == 1, err
    assert word in err and "Traceback" not in err and not out
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    rc, _, err = run(["--out", str(path)])
    assert rc == 2 and err.count("\n") == 1 and "not a directory" in err
