"""Monthly pacing: the demand profile, the threshold and the allowance, state in and state out."""

import dataclasses
import json
import math

import pytest

from thrifty_operator.cost import pacing

DAY = 86_400.0
NIGHT, PEAK = 0.2, 1.0  # billed rate per hour needed at night and at the peak
FLOOR = 0.1


def _day_profile() -> pacing.DemandProfile:
    """A profile learned over one day: PEAK from 12:00 to 18:00 UTC, NIGHT otherwise."""
    profile = pacing.DemandProfile()
    for t in range(0, int(DAY) + 1, 60):
        hour = (t % DAY) / 3600
        profile = profile.observe(float(t), PEAK if 12 <= hour < 18 else NIGHT)
    return profile


def test_profile_folds_each_finished_slot_into_its_slot_of_the_day() -> None:
    profile = pacing.DemandProfile()
    for t in range(0, 900, 15):
        profile = profile.observe(float(t), 1.0 if t < 450 else 3.0)
    assert profile.needs[0] is None  # the slot is still being accumulated
    profile = profile.observe(900.0, 5.0)
    assert profile.needs[0] == pytest.approx(2.0)  # the mean of the finished slot
    # The same slot a day later moves halfway (day weight 0.5) to the new day's mean.
    profile = profile.observe(DAY, 4.0).observe(DAY + 900, 0.0)
    assert profile.needs[0] == pytest.approx(3.0)
    assert profile.needs[1] == pytest.approx(5.0)
    assert profile.forecast(DAY + 100) == pytest.approx(3.0)


def test_profile_round_trips_through_status_and_rejects_garbage() -> None:
    profile = _day_profile()
    raw = json.loads(json.dumps(profile.to_status(), allow_nan=False))
    back = pacing.DemandProfile.from_status(raw)
    assert back.to_status() == raw
    assert back.needs == pytest.approx(profile.needs)
    assert pacing.DemandProfile.from_status({"needs": [1.0, 2.0]}) == pacing.DemandProfile()
    assert pacing.DemandProfile.from_status({"needs": ["x"] * 96}) == pacing.DemandProfile()
    assert pacing.DemandProfile.from_status(None) == pacing.DemandProfile()


def test_threshold_meets_the_cheapest_slots_first() -> None:
    slots = [(PEAK, 6.0), (NIGHT, 18.0)]
    # Money for the nights' extra (0.1 * 18 = 1.8) but not also the peak's (0.9 * 6 = 5.4).
    assert pacing.threshold(slots, 2.0, FLOOR) == NIGHT
    assert pacing.threshold(slots, 7.2, FLOOR) == math.inf
    assert pacing.threshold(slots, 1.0, FLOOR) == -math.inf
    # A slot above an hourly ceiling cannot be met, however much money is left.
    assert pacing.threshold(slots, 100.0, FLOOR, ceiling=0.5) == NIGHT


def test_allowance_gives_the_peak_up_and_keeps_money_for_the_nights() -> None:
    profile = _day_profile()
    hours_left = 48.0
    # 48 h from 14:00: 36 night hours cost 3.6 above the floor, 12 peak hours 10.8; 3.7 pays the nights.
    remaining = FLOOR * hours_left + 3.7
    peak_now = 2 * DAY + 14 * 3600.0
    observed = profile.observe(peak_now, PEAK)
    peak, judged = pacing.monthly_allowance(
        remaining=remaining,
        hours_left=hours_left,
        floor_per_hour=FLOOR,
        need_per_hour=PEAK,
        profile=observed,
        now=peak_now,
        commitment_h=120 / 3600,
    )
    assert peak.skipped
    assert peak.rate_per_hour == FLOOR
    assert peak.threshold_per_hour == pytest.approx(NIGHT)
    assert judged.given_up is True
    night_now = 2 * DAY + 3 * 3600.0
    night, _ = pacing.monthly_allowance(
        remaining=remaining,
        hours_left=hours_left,
        floor_per_hour=FLOOR,
        need_per_hour=NIGHT,
        profile=profile.observe(night_now, NIGHT),
        now=night_now,
        commitment_h=120 / 3600,
    )
    assert not night.skipped
    # The hard cap: running it for the commitment time still leaves the floor for every hour left.
    spare = remaining - FLOOR * hours_left
    assert (night.rate_per_hour - FLOOR) * 120 / 3600 == pytest.approx(spare)


def test_verdict_holds_for_the_whole_slot() -> None:
    now = 2 * DAY + 14 * 3600.0
    profile = _day_profile().observe(now, PEAK)
    args = {"remaining": 8.5, "hours_left": 48.0, "floor_per_hour": FLOOR, "commitment_h": 1 / 30}
    first, judged = pacing.monthly_allowance(need_per_hour=PEAK, profile=profile, now=now, **args)
    assert first.skipped
    # Later in the same slot the need dips and money looks plentiful: the verdict stands.
    later = judged.observe(now + 60, NIGHT)
    again, _ = pacing.monthly_allowance(
        need_per_hour=NIGHT, profile=later, now=now + 60, **(args | {"remaining": 50.0})
    )
    assert again.skipped
    # A new slot is judged afresh.
    fresh = later.observe(now + 900, NIGHT)
    assert fresh.given_up is None


def test_allowance_without_money_for_the_floor_paces_what_is_left() -> None:
    a, _ = pacing.monthly_allowance(
        remaining=1.0,
        hours_left=20.0,
        floor_per_hour=FLOOR,
        need_per_hour=PEAK,
        profile=pacing.DemandProfile(),
        now=0.0,
        commitment_h=1 / 30,
    )
    assert a.skipped
    assert a.rate_per_hour == pytest.approx(0.05)


def test_unseen_slots_are_forecast_at_the_current_need() -> None:
    # Without history every slot costs what now costs: the month is paid as long as money lasts.
    a, _ = pacing.monthly_allowance(
        remaining=FLOOR * 10 + 0.5,
        hours_left=10.0,
        floor_per_hour=FLOOR,
        need_per_hour=PEAK,
        profile=pacing.DemandProfile().observe(0.0, PEAK),
        now=0.0,
        commitment_h=1 / 30,
    )
    assert not a.skipped
    assert a.threshold_per_hour == PEAK


@pytest.mark.parametrize(
    ("now", "hours_left"), [(0.0, 48.0), (1234.5, 10.3), (86_000.0, 0.1), (100.0, 700.0)]
)
def test_forecast_slots_cover_exactly_the_hours_left(now: float, hours_left: float) -> None:
    slots = pacing._future_slots(_day_profile(), now, hours_left, PEAK)
    assert sum(hours for _, hours in slots) == pytest.approx(hours_left)
    assert len(slots) <= 2 * pacing.SLOTS_PER_DAY + 1  # each slot of the day: today's, later days'


def test_one_slots_burst_does_not_make_it_the_dearest_of_the_day() -> None:
    profile = _day_profile()
    burst = 2.0 * 3600  # 02:00-02:15 had a burst yesterday
    needs = list(profile.needs)
    needs[int(burst // pacing.SLOT_S)] = 5 * PEAK
    spiky = dataclasses.replace(profile, needs=tuple(needs))
    assert spiky.forecast(burst) == pytest.approx(NIGHT)
    # A plateau of several slots is kept: that is the daily curve, not a burst.
    assert spiky.forecast(13 * 3600.0) == pytest.approx(PEAK)
    assert spiky.forecast(12 * 3600.0) == pytest.approx(PEAK)  # its first slot (night before it)


def test_a_busy_day_forecasts_the_rest_of_today_higher() -> None:
    profile = _day_profile()
    assert profile.level() == 1.0  # the first day had nothing to be compared with
    # The next day runs 30 % above the profile from midnight to 10:00.
    for t in range(int(DAY), int(DAY + 10 * 3600) + 1, 60):
        profile = profile.observe(float(t), 1.3 * NIGHT)
    assert profile.level() == pytest.approx(1.3, rel=0.01)
    now = DAY + 10 * 3600.0
    slots = pacing._future_slots(profile, now, 30.0, NIGHT)  # until 16:00 tomorrow

    def hours_at(need: float) -> float:
        return sum(h for n, h in slots if n == pytest.approx(need, rel=0.01))

    assert slots[0][0] == pytest.approx(1.3 * NIGHT, rel=0.01)  # this slot is today's
    assert hours_at(1.3 * PEAK) == pytest.approx(6.0)  # today's peak, 12:00-18:00, scaled
    assert hours_at(PEAK) == pytest.approx(4.0)  # tomorrow's, 12:00-16:00, at the profile
    back = pacing.DemandProfile.from_status(json.loads(json.dumps(profile.to_status())))
    assert back.level() == pytest.approx(profile.level(), rel=1e-3)
