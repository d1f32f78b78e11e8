"""Adapter from the pool catalogue and a spec's resource requests to the pure cost model (`cost.pricing`)."""

from __future__ import annotations

from decimal import Decimal

from thrifty_api import optimized_model as models
from thrifty_api import pools, quantity

from .cost import pricing as cost_pricing

_GIB = Decimal(1024**3)
# A replica's requests when the spec leaves them out (the CRD defaults `requests` as a whole, not its fields).
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"


def pool_price(pool: pools.Pool) -> cost_pricing.PoolPrice:
    """The cost model's view of a catalogue pool."""
    return cost_pricing.PoolPrice(
        name=pool.name,
        accelerator=pool.accelerator.product if pool.accelerator else "none",
        cpu=float(quantity.parse(pool.allocatable.cpu)),
        memory_gib=float(quantity.parse(pool.allocatable.memory) / _GIB),
        gpu=pool.allocatable.gpu if pool.accelerator else 0,
        price_per_hour=float(pool.price_per_node_hour),
    )


def replica_request(pool: pools.Pool, cpu: str | None, memory: str | None) -> cost_pricing.ReplicaRequest:
    """One Triton replica's requests on `pool`; GPU pools give each replica one whole GPU."""
    return cost_pricing.ReplicaRequest(
        cpu=float(quantity.parse(cpu or DEFAULT_CPU)),
        memory_gib=float(quantity.parse(memory or DEFAULT_MEMORY) / _GIB),
        gpu=1 if pool.accelerator else 0,
    )


def replica_price(pool: pools.Pool, cpu: str | None, memory: str | None) -> Decimal:
    """Hourly price of one replica, apportioned from the node price the way OpenCost does."""
    share = cost_pricing.opencost_share_per_hour(pool_price(pool), replica_request(pool, cpu, memory))
    return Decimal(str(round(share, 6)))


def spec_replica_price(pool: pools.Pool, spec: models.OptimizedModelSpec) -> Decimal:
    """Hourly price of one of the spec's replicas on `pool` (the planner's `PriceOf`)."""
    requests = spec.serving.resources.requests
    return replica_price(pool, requests.cpu, requests.memory)
