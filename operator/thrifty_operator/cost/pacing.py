"""Monthly budget pacing: spend the month's money where it buys the most time within the SLO.

A monthly cap that cannot pay for the whole month's demand must give something up. Pacing evenly (the
same rate every hour) gives up a part of every busy hour, so every peak misses its latency target. The
share of time windows within the SLO is highest when the cheapest hours to serve are met first and the
dearest hours (the daily peaks) are given up whole: that is the budget oracle's plan (cost.md §5.3,
O2), and what this module does online, with a forecast instead of the future.

* **Profile.** `DemandProfile` keeps, for each 15-minute slot of the UTC day, the billed rate the
  policy wanted there (its unconstrained choice), an exponentially weighted average over days.
* **Forecast.** For the rest of the month the profile repeats, each slot smoothed with its neighbours
  (`DemandProfile.slot_forecast`); the rest of today is scaled by today's level against the profile
  (`DemandProfile.level`); a slot never observed is forecast at the rate wanted now.
* **Threshold.** Meeting a slot costs `(need - floor) * duration` on top of the floor
  (`min_replicas` of the cheapest variant), which is reserved for every hour left. Slots are met
  cheapest first while the money lasts; the threshold is the need of the dearest slot still met.
* **Now.** At a slot's first decision its forecast is judged against the threshold, once for the whole
  slot: within it, the policy may spend up to the hard cap; above it, the slot is given up and the
  policy runs the floor, keeping the money for cheaper hours.
* **Hard cap (zero overrun).** A fleet chosen now runs at least `commitment_h` (until the next decision
  can stop it, plus the billing minimum); spending `rate` for that time must still leave the floor for
  every hour after: `floor * hours_left + (rate - floor) * commitment_h <= remaining`. Forecast errors
  can therefore cost SLO windows, never budget.

Before a day of history the unseen slots are forecast at the current need, so the month starts close
to spending as needed and the threshold falls as the real peaks are seen.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

SLOT_S = 900
SLOTS_PER_DAY = 86_400 // SLOT_S
# Weight of a finished slot in the level after each further slot: about the last 2.5 hours count.
LEVEL_DECAY = 0.9
LEVEL_LIMITS = (0.5, 2.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemandProfile:
    """The billed rate wanted per 15-minute slot of the UTC day.

    Attributes:
        needs: One value per slot of the day (`None` where never observed).
        slot: Absolute index (`now // SLOT_S`) of the slot being accumulated; -1 before any.
        total: Sum of the needs observed in that slot so far.
        count: Number of them.
        given_up: The pacing's verdict on that slot, made once at its first decision (None: not yet).
        seen: Decayed sum of the needs of the recently finished slots (for `level`).
        expected: Decayed sum of what the profile forecast for those slots.
    """

    needs: tuple[float | None, ...] = (None,) * SLOTS_PER_DAY
    slot: int = -1
    total: float = 0.0
    count: int = 0
    given_up: bool | None = None
    seen: float = 0.0
    expected: float = 0.0

    def observe(self, now: float, need: float, day_weight: float = 0.5) -> DemandProfile:
        """Add one observation; a finished slot's mean joins its slot of the day.

        Args:
            now: Seconds since the epoch (UTC; any epoch at midnight works).
            need: Billed rate per hour wanted now.
            day_weight: Weight of the newest day in a slot's average.

        Returns:
            The updated profile.
        """
        index = int(now // SLOT_S)
        profile = self
        if index != self.slot and self.count:
            mean = self.total / self.count
            expected = self.slot_forecast(self.slot % SLOTS_PER_DAY)
            seen, exp = self.seen, self.expected
            if expected is not None:
                seen, exp = LEVEL_DECAY * seen + mean, LEVEL_DECAY * exp + expected
            profile = dataclasses.replace(self, needs=self._folded(day_weight), seen=seen, expected=exp)
        if index != self.slot:
            return dataclasses.replace(profile, slot=index, total=need, count=1, given_up=None)
        return dataclasses.replace(profile, total=self.total + need, count=self.count + 1)

    def forecast(self, now: float) -> float | None:
        """The profile's need for the slot of the day containing `now` (None if never observed)."""
        return self.slot_forecast(int(now // SLOT_S) % SLOTS_PER_DAY)

    def level(self) -> float:
        """How today runs against the profile: recent needs over their forecasts (1 without data).

        Days differ in level (a busy Monday, a launch); within a day the level persists, so the
        rest of today is forecast at the profile times this ratio.
        """
        if self.expected <= 0:
            return 1.0
        return min(LEVEL_LIMITS[1], max(LEVEL_LIMITS[0], self.seen / self.expected))

    def slot_forecast(self, of_day: int) -> float | None:
        """The median of a slot's need and its two neighbours' (its own where a neighbour was never
        observed; None if it never was).

        The daily curve is smooth and bursts are not: a burst that filled one slot last time does not
        recur there, so one slot's outlier must not make it look like the dearest of the day.
        """
        own = self.needs[of_day]
        before = self.needs[(of_day - 1) % SLOTS_PER_DAY]
        after = self.needs[(of_day + 1) % SLOTS_PER_DAY]
        if own is None or before is None or after is None:
            return own
        return sorted((before, own, after))[1]

    def _folded(self, day_weight: float) -> tuple[float | None, ...]:
        mean = self.total / self.count
        of_day = self.slot % SLOTS_PER_DAY
        old = self.needs[of_day]
        value = mean if old is None else (1 - day_weight) * old + day_weight * mean
        return (*self.needs[:of_day], value, *self.needs[of_day + 1 :])

    def to_status(self) -> dict[str, Any]:
        """Plain JSON-able dict for the CR's status."""
        return {
            "needs": [None if n is None else round(n, 4) for n in self.needs],
            "slot": self.slot,
            "total": round(self.total, 4),
            "count": self.count,
            "givenUp": self.given_up,
            "seen": round(self.seen, 4),
            "expected": round(self.expected, 4),
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> DemandProfile:
        """Rebuild from `to_status()` output; anything malformed gives an empty profile."""
        if not raw:
            return cls()
        try:
            needs = tuple(None if n is None else float(n) for n in raw.get("needs", ()))
            if len(needs) != SLOTS_PER_DAY:
                return cls()
            return cls(
                needs=needs,
                slot=int(raw.get("slot", -1)),
                total=float(raw.get("total", 0.0)),
                count=int(raw.get("count", 0)),
                given_up=None if raw.get("givenUp") is None else bool(raw["givenUp"]),
                seen=float(raw.get("seen", 0.0)),
                expected=float(raw.get("expected", 0.0)),
            )
        except (TypeError, ValueError):
            return cls()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Allowance:
    """What the monthly cap allows now.

    Attributes:
        rate_per_hour: Highest billed rate allowed now.
        hard_cap_per_hour: The zero-overrun bound alone.
        threshold_per_hour: Need of the dearest slot the money still meets (`math.inf`: all of them).
        skipped: True when this slot is given up (its need is above the threshold).
    """

    rate_per_hour: float
    hard_cap_per_hour: float
    threshold_per_hour: float
    skipped: bool


def _future_slots(
    profile: DemandProfile, now: float, hours_left: float, need_now: float
) -> list[tuple[float, float]]:
    """(forecast need, hours) for the rest of the period; the first entry is the current slot's.

    The rest of today is forecast at the profile times today's `level`, later days at the profile.
    """
    left_s = max(0.0, hours_left * 3600)
    into_slot = now % SLOT_S
    current = min(left_s, SLOT_S - into_slot)
    level = profile.level()
    own = profile.forecast(now)
    out = [(need_now if own is None else own * level, current / 3600)]
    rest = left_s - current
    if rest <= 0:
        return out
    first = (int(now // SLOT_S) + 1) % SLOTS_PER_DAY
    full_days, tail_s = divmod(rest, 86_400)
    for k in range(SLOTS_PER_DAY):
        of_day = (first + k) % SLOTS_PER_DAY
        seconds = full_days * SLOT_S + min(SLOT_S, max(0.0, tail_s - k * SLOT_S))
        if seconds <= 0:
            continue
        forecast = profile.slot_forecast(of_day)
        if forecast is None:
            out.append((need_now, seconds / 3600))
            continue
        # Its next occurrence is today while the day has not wrapped around (slot 0 is midnight).
        today = min(seconds, SLOT_S) if of_day >= first else 0.0
        if today:
            out.append((forecast * level, today / 3600))
        if seconds > today:
            out.append((forecast, (seconds - today) / 3600))
    return out


def threshold(
    slots: Sequence[tuple[float, float]], money: float, floor: float, ceiling: float = math.inf
) -> float:
    """Need of the dearest slot still met when slots are met cheapest first.

    Args:
        slots: (need per hour, hours) pairs.
        money: Budget beyond the floor's reserve for the whole period.
        floor: Rate paid in every slot anyway.
        ceiling: Slots needing more cannot be met at all (an hourly cap) and cost only the floor.

    Returns:
        The threshold; `math.inf` when every slot that can be met is paid for, -inf when none is.
    """
    level = -math.inf
    for need, hours in sorted(slots):
        if need > ceiling:
            return level
        extra = max(0.0, need - floor) * hours
        if extra > money:
            return level
        money -= extra
        level = need
    return math.inf


def monthly_allowance(
    *,
    remaining: float,
    hours_left: float,
    floor_per_hour: float,
    need_per_hour: float,
    profile: DemandProfile,
    now: float,
    commitment_h: float,
    ceiling_per_hour: float = math.inf,
) -> tuple[Allowance, DemandProfile]:
    """The rate the monthly cap allows now (see the module docstring).

    Args:
        remaining: Budget left in the month.
        hours_left: Hours until the month ends (> 0).
        floor_per_hour: Rate of the floor fleet (`min_replicas` of the cheapest variant).
        need_per_hour: Billed rate the policy wants now without the budget.
        profile: Demand profile (with the current observation already added).
        now: Seconds since the epoch.
        commitment_h: Hours a fleet chosen now is paid for at least.
        ceiling_per_hour: An hourly cap: slots needing more cannot be met and are given up.

    Returns:
        The allowance, and the profile with the verdict on the current slot.
    """
    hours_left = max(hours_left, 1e-6)
    spare = remaining - floor_per_hour * hours_left
    hard = floor_per_hour + max(0.0, spare) / max(commitment_h, 1e-6)
    if spare <= 0:
        allowance = Allowance(
            rate_per_hour=max(0.0, remaining) / hours_left,
            hard_cap_per_hour=hard,
            threshold_per_hour=-math.inf,
            skipped=True,
        )
        return allowance, profile
    slots = _future_slots(profile, now, hours_left, need_per_hour)
    level = threshold(slots, spare, floor_per_hour, ceiling_per_hour)
    # Judged once per slot, on its forecast: re-judging every decision would flap, since giving a
    # slot up saves money and so raises the threshold again.
    skipped = profile.given_up if profile.given_up is not None else slots[0][0] > level
    allowance = Allowance(
        rate_per_hour=floor_per_hour if skipped else hard,
        hard_cap_per_hour=hard,
        threshold_per_hour=level,
        skipped=skipped,
    )
    return allowance, dataclasses.replace(profile, given_up=skipped)
