"""Adapter from the pool catalogue and a spec's resource requests to the pure cost model (`cost.pricing`)."""

from __future__ import annotations

import re
from decimal import Decimal

from thrifty_api import pools

from .cost import pricing as cost_pricing

_GIB = Decimal(1024**3)


_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2Gi") as a Decimal (the suffixes resource requests use).

    Kept here rather than imported from the kubernetes client so the pure core never imports the client.
    """
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a resource quantity: {value!r}")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]


def pool_price(pool: pools.Pool) -> cost_pricing.PoolPrice:
    """The cost model's view of a catalogue pool."""
    return cost_pricing.PoolPrice(
        name=pool.name,
        accelerator=pool.accelerator.product if pool.accelerator else "none",
        cpu=float(parse_quantity(pool.allocatable.cpu)),
        memory_gib=float(parse_quantity(pool.allocatable.memory) / _GIB),
        gpu=pool.allocatable.gpu if pool.accelerator else 0,
        price_per_hour=float(pool.price_per_node_hour),
    )


def replica_request(pool: pools.Pool, cpu: str | None, memory: str | None) -> cost_pricing.ReplicaRequest:
    """One Triton replica's requests on `pool`; GPU pools give each replica one whole GPU."""
    return cost_pricing.ReplicaRequest(
        cpu=float(parse_quantity(cpu or "1")),
        memory_gib=float(parse_quantity(memory or "2Gi") / _GIB),
        gpu=1 if pool.accelerator else 0,
    )


def replica_price(pool: pools.Pool, cpu: str | None, memory: str | None) -> Decimal:
    """Hourly price of one replica, apportioned from the node price the way OpenCost does."""
    share = cost_pricing.opencost_share_per_hour(pool_price(pool), replica_request(pool, cpu, memory))
    return Decimal(str(round(share, 6)))
