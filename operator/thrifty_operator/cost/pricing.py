"""Per-replica prices from a pool catalogue and month-to-date spend accounting.

Two prices exist per replica (cost.md §3.1):

* the OpenCost share: a node's hourly price split into per-core, per-GiB and per-GPU rates with
  OpenCost's fixed ratios, times the replica's requests;
* the billed price: whole nodes, because the cloud bills a node whether or not it is full. Budgets are
  enforced on this conservative number so idle capacity cannot leak out of a budget.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import math
from collections.abc import Mapping

# OpenCost `GetNodeCost` ratios used when a node has one price and no per-resource prices.
CPU_TO_RAM_RATIO = 7.4607
GPU_TO_RAM_RATIO = 224.215

_HOUR_S = 3600.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoolPrice:
    """One node pool of the catalogue.

    Attributes:
        name: Pool name, e.g. "gpu-t4".
        accelerator: "none" for CPU pools, else the GPU product, e.g. "nvidia-tesla-t4".
        cpu: Allocatable cores per node.
        memory_gib: Allocatable memory per node in GiB.
        gpu: GPUs per node.
        price_per_hour: Price of one node per hour, in the catalogue's currency.
        startup_s: Seconds from a scale-up decision until a replica serves (node, image pull, model load).
    """

    name: str
    accelerator: str
    cpu: float
    memory_gib: float
    gpu: int
    price_per_hour: float
    startup_s: float = 120.0

    def __post_init__(self) -> None:
        if self.cpu <= 0 or self.memory_gib <= 0 or self.gpu < 0 or self.price_per_hour < 0:
            raise ValueError(f"pool {self.name!r}: capacities must be positive and the price non-negative")
        if (self.accelerator == "none") != (self.gpu == 0):
            raise ValueError(f"pool {self.name!r}: accelerator must be 'none' exactly when gpu is 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplicaRequest:
    """Resources one model replica requests."""

    cpu: float
    memory_gib: float
    gpu: int = 0

    def __post_init__(self) -> None:
        if self.cpu <= 0 or self.memory_gib <= 0 or self.gpu < 0:
            raise ValueError("replica requests must be positive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceRates:
    """Hourly price of one core, one GiB and one GPU on a pool."""

    cpu: float
    memory_gib: float
    gpu: float


def resource_rates(pool: PoolPrice) -> ResourceRates:
    """Split a node's hourly price into resource rates the way OpenCost does.

    `ram_multiple = gpus * 224.215 + vcpus * 7.4607 + ram_gib`; `ram = price / ram_multiple`,
    `cpu = ram * 7.4607`, `gpu = ram * 224.215`, so the rates times the node's allocatable
    resources add up to the node price.

    Args:
        pool: The pool whose node price is split.

    Returns:
        Hourly rates per core, GiB and GPU.
    """
    ram_multiple = pool.gpu * GPU_TO_RAM_RATIO + pool.cpu * CPU_TO_RAM_RATIO + pool.memory_gib
    ram = pool.price_per_hour / ram_multiple
    return ResourceRates(cpu=ram * CPU_TO_RAM_RATIO, memory_gib=ram, gpu=ram * GPU_TO_RAM_RATIO)


def opencost_share_per_hour(pool: PoolPrice, request: ReplicaRequest) -> float:
    """Price one replica as OpenCost allocates it: requests times the pool's resource rates.

    Args:
        pool: Pool the replica runs on.
        request: The replica's requests (OpenCost uses max(request, usage); requests bound usage here).

    Returns:
        The replica's hourly share, excluding the node's idle remainder.
    """
    rates = resource_rates(pool)
    return request.cpu * rates.cpu + request.memory_gib * rates.memory_gib + request.gpu * rates.gpu


def replicas_per_node(pool: PoolPrice, request: ReplicaRequest) -> int:
    """Count how many replicas fit on one node of the pool (0 when none fits).

    Args:
        pool: Node pool.
        request: Replica requests.

    Returns:
        The number of replicas the scarcest resource allows.
    """
    fits = [
        math.floor(pool.cpu / request.cpu + 1e-9),
        math.floor(pool.memory_gib / request.memory_gib + 1e-9),
    ]
    if request.gpu:
        fits.append(pool.gpu // request.gpu)
    return max(0, min(fits))


def fleet_price_per_hour(pool: PoolPrice, request: ReplicaRequest, replicas: int) -> float:
    """Billed hourly price of `replicas` replicas packed onto whole nodes of the pool.

    Args:
        pool: Node pool.
        request: Replica requests.
        replicas: Number of replicas (>= 0).

    Returns:
        `ceil(replicas / replicas_per_node) * node price`.

    Raises:
        ValueError: If a replica does not fit on a node of the pool.
    """
    if replicas <= 0:
        return 0.0
    per_node = replicas_per_node(pool, request)
    if per_node == 0:
        raise ValueError(f"a replica of {request} does not fit on a node of pool {pool.name!r}")
    return math.ceil(replicas / per_node) * pool.price_per_hour


# --- Month-to-date accounting ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpendState:
    """Spend accounted so far; the operator keeps it in status so it survives restarts.

    Attributes:
        month: Calendar month the spend belongs to, "YYYY-MM" (UTC).
        month_to_date: Spend in `month` up to `accounted_at`.
        accounted_at: Instant up to which spend has been added (timezone-aware, UTC).
        rate_per_hour: Billed rate in effect since `accounted_at`.
    """

    month: str
    month_to_date: float
    accounted_at: datetime.datetime
    rate_per_hour: float

    def to_status(self) -> dict[str, str]:
        """Strings for the CR's status (api-conventions: no floats in the API)."""
        return {
            "month": self.month,
            "monthToDate": f"{self.month_to_date:.6f}",
            "accountedAt": self.accounted_at.astimezone(datetime.UTC).isoformat(),
            "ratePerHour": f"{self.rate_per_hour:.6f}",
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, str] | None, now: datetime.datetime) -> SpendState:
        """Rebuild from `to_status()` output; a missing or malformed status starts afresh at `now`.

        Starting afresh forgets spend, so the operator should report it (condition or Event).
        """
        try:
            if raw:
                return cls(
                    month=str(raw["month"]),
                    month_to_date=float(raw["monthToDate"]),
                    accounted_at=datetime.datetime.fromisoformat(raw["accountedAt"]).astimezone(datetime.UTC),
                    rate_per_hour=float(raw["ratePerHour"]),
                )
        except (KeyError, TypeError, ValueError):
            pass
        return new_spend_state(now, 0.0)


def _month_key(t: datetime.datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}"


def month_start(t: datetime.datetime) -> datetime.datetime:
    """Return the first instant of the UTC calendar month containing `t`."""
    t = t.astimezone(datetime.UTC)
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_end(t: datetime.datetime) -> datetime.datetime:
    """Return the first instant of the UTC calendar month after the one containing `t`."""
    start = month_start(t)
    days = calendar.monthrange(start.year, start.month)[1]
    return start + datetime.timedelta(days=days)


def hours_left_in_month(now: datetime.datetime) -> float:
    """Return the hours from `now` to the end of its UTC calendar month."""
    return (month_end(now) - now.astimezone(datetime.UTC)).total_seconds() / _HOUR_S


def new_spend_state(now: datetime.datetime, rate_per_hour: float) -> SpendState:
    """Start accounting at `now` with nothing spent yet.

    Args:
        now: Timezone-aware current time.
        rate_per_hour: Billed rate from now on.

    Returns:
        A fresh state for the month containing `now`.
    """
    now = now.astimezone(datetime.UTC)
    return SpendState(month=_month_key(now), month_to_date=0.0, accounted_at=now, rate_per_hour=rate_per_hour)


def accrue(state: SpendState, now: datetime.datetime, rate_per_hour: float) -> SpendState:
    """Add the spend since the last accounting and switch to a new rate.

    The previous rate is assumed to have run until `now`, also across operator downtime: the replicas
    kept running while nobody watched, so this overestimates rather than underestimates. Spend after a
    month boundary goes to the new month, and a clock that went backwards adds nothing.

    Args:
        state: The previously accounted state.
        now: Timezone-aware current time.
        rate_per_hour: Billed rate from `now` on.

    Returns:
        The new state; `state` is not modified.
    """
    now = now.astimezone(datetime.UTC)
    if now <= state.accounted_at:
        return dataclasses.replace(state, rate_per_hour=rate_per_hour)
    month = state.month
    spent = state.month_to_date
    t = state.accounted_at
    while True:
        boundary = month_end(t)
        until = min(now, boundary)
        if _month_key(t) == month:
            spent += state.rate_per_hour * (until - t).total_seconds() / _HOUR_S
        else:
            # The stored state is from an older month than `t`: everything here is new-month spend.
            month, spent = _month_key(t), state.rate_per_hour * (until - t).total_seconds() / _HOUR_S
        if until >= now:
            break
        t = boundary
        month, spent = _month_key(t), 0.0
    return SpendState(month=month, month_to_date=spent, accounted_at=now, rate_per_hour=rate_per_hour)


def projected_month_end(state: SpendState, now: datetime.datetime | None = None) -> float:
    """Project month-end spend if the current rate holds until the month ends.

    Args:
        state: Accounted state (ideally `accrue`d up to `now`).
        now: Time to project from; defaults to `state.accounted_at`.

    Returns:
        Month-to-date spend plus the current rate times the hours left.
    """
    current = accrue(state, now, state.rate_per_hour) if now is not None else state
    return current.month_to_date + current.rate_per_hour * hours_left_in_month(current.accounted_at)
