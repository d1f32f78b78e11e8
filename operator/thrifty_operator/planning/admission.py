"""What admission cannot know: checks of an admitted spec against the pool catalogue (and the rules an older
object, or a cluster without the CRD's CEL rules, may lack), each failure a reason and a message that says
what to change."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from thrifty_api import optimized_model as models
from thrifty_api import pools, quantity

from .. import pool_pricing

Problem = tuple[str, str]
"""Reason and message of the Ready=False condition."""

_MIN_CPU = Decimal("0.001")  # Kubernetes counts CPU in millicores


def _request_problem(cpu: str, memory: str) -> Problem | None:
    try:
        cores, size = quantity.parse(cpu), quantity.parse(memory)
    except ValueError as err:
        return "InvalidResources", f"spec.serving.resources.requests: {err}"
    if not cores.is_finite() or cores < _MIN_CPU:
        return "InvalidResources", f"spec.serving.resources.requests.cpu must be at least 1m, not {cpu}"
    if not size.is_finite() or size < 1:
        return "InvalidResources", f"spec.serving.resources.requests.memory must be at least 1, not {memory}"
    return None


def check(spec: models.OptimizedModelSpec, serving_pools: Sequence[pools.Pool]) -> Problem | None:
    """Why an admitted spec cannot be served, or None when it can."""
    serving = spec.serving
    if serving.min_replicas > serving.max_replicas:
        return "InvalidSpec", (
            f"spec.serving.minReplicas ({serving.min_replicas}) must be less than or equal to "
            f"spec.serving.maxReplicas ({serving.max_replicas})"
        )
    requests = serving.resources.requests
    cpu, memory = requests.cpu or pool_pricing.DEFAULT_CPU, requests.memory or pool_pricing.DEFAULT_MEMORY
    problem = _request_problem(cpu, memory)
    if problem:
        return problem
    cores, gib = float(quantity.parse(cpu)), float(quantity.parse(memory)) / 2**30
    misfits = []
    for pool in serving_pools:
        node = pool_pricing.pool_price(pool)
        if cores > node.cpu + 1e-9 or gib > node.memory_gib + 1e-9:
            misfits.append(f"{pool.name} ({node.cpu:g} cores, {node.memory_gib:.2f} GiB per node)")
        elif pool.is_gpu and node.gpu < 1:
            misfits.append(f"{pool.name} (its nodes have no GPU)")
    if misfits:
        return "RequestsDoNotFit", (
            f"a replica's requests (cpu {cpu}, memory {memory}) fit no node of pool {'; '.join(misfits)}: "
            "lower spec.serving.resources.requests or choose other pools"
        )
    return None
