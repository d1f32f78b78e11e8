"""Pool catalogue (YAML) and per-replica capacity model (converter report.json), with defaults.

Pool catalogue YAML::

    currency: USD
    pools:
      - {name: gpu-t4, accelerator: nvidia-tesla-t4, cpu: 4, memoryGiB: 16, gpu: 1,
         pricePerHour: 0.526, startupSeconds: 120}

Capacity report.json: the converter's report (`thrifty_converters.report`, schema 1.0), read as
plain JSON so that the operator does not depend on the converters. Used keys::

    {"selected": {"variant": "tensorrt-fp16", "reason": "..."},
     "variants": [{"name": "tensorrt-fp16", "device": "gpu", "status": "ok",
                   "throughput_per_s": 600, "latency_ms": {"p50": 6, "p99": 14}}]}

Variants whose `status` is not "ok" or that lack a throughput or latency are skipped. `selected` may
also be a plain name. Optional per-variant keys for the simulator: `pool` (else the first pool of the
variant's device kind) and `resources` (`cpu`, `memory_gib`, `gpu`; else 3 CPU/12 GiB/1 GPU on GPU,
2 CPU/3.5 GiB on CPU).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from ..cost import policy, pricing

# On-demand us-east-1 prices from cost.md §3.2 (SkyPilot catalogue). Start-up: pod scheduling, image
# pull and Triton model load on a ready node; GPU images are larger and TensorRT engines load slower.
# Placeholders until measured (cost.md §5.1 suggests a grid of 30/120/300 s).
DEFAULT_POOLS_YAML = """
currency: USD
pools:
  - {name: gpu-t4, accelerator: nvidia-tesla-t4, cpu: 4, memoryGiB: 16, gpu: 1, pricePerHour: 0.526,
     startupSeconds: 120}
  - {name: gpu-a10g, accelerator: nvidia-a10g, cpu: 4, memoryGiB: 16, gpu: 1, pricePerHour: 1.006,
     startupSeconds: 120}
  - {name: cpu-c7i, accelerator: none, cpu: 4, memoryGiB: 8, gpu: 0, pricePerHour: 0.1785,
     startupSeconds: 60}
"""

# Synthetic placeholders (no profile measured yet) with the shape of a small CNN/encoder: the GPU
# variant is cheaper per request at high load, CPU INT8 at low load (MArk's finding).
DEFAULT_REPORT: dict[str, Any] = {
    "selected": {"variant": "tensorrt-fp16", "reason": "placeholder profile"},
    "variants": [
        {
            "name": "tensorrt-fp16",
            "device": "gpu",
            "throughput_per_s": 600,
            "latency_ms": {"p50": 6, "p99": 14},
        },
        {"name": "onnx-int8", "device": "cpu", "throughput_per_s": 70, "latency_ms": {"p50": 12, "p99": 28}},
        {"name": "onnx-fp32", "device": "cpu", "throughput_per_s": 30, "latency_ms": {"p50": 25, "p99": 60}},
    ],
}

_DEFAULT_RESOURCES = {
    "gpu": pricing.ReplicaRequest(cpu=3, memory_gib=12, gpu=1),
    "cpu": pricing.ReplicaRequest(cpu=2, memory_gib=3.5),
}


class CatalogError(ValueError):
    """A pool catalogue or capacity report that cannot be used."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CapacityModel:
    """Variants with per-replica capacity, and the one the converter selected (used by baselines)."""

    variants: tuple[policy.Variant, ...]
    selected: str

    def variant(self, name: str) -> policy.Variant:
        """Return the variant called `name`."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def parse_pools(text: str) -> dict[str, pricing.PoolPrice]:
    """Parse a pool catalogue YAML document.

    Args:
        text: YAML text.

    Returns:
        Pools by name, in file order.

    Raises:
        CatalogError: If the document is malformed.
    """
    try:
        doc = yaml.safe_load(text)
        pools = {}
        for p in doc["pools"]:
            pool = pricing.PoolPrice(
                name=str(p["name"]),
                accelerator=str(p.get("accelerator", "none")),
                cpu=float(p["cpu"]),
                memory_gib=float(p["memoryGiB"]),
                gpu=int(p.get("gpu", 0)),
                price_per_hour=float(p["pricePerHour"]),
                startup_s=float(p.get("startupSeconds", 120)),
            )
            pools[pool.name] = pool
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise CatalogError(f"pool catalogue: {e}") from e
    if not pools:
        raise CatalogError("pool catalogue: no pools")
    return pools


def load_pools(path: Path | None) -> dict[str, pricing.PoolPrice]:
    """Load the pool catalogue from `path`, or the default one when None."""
    return parse_pools(DEFAULT_POOLS_YAML if path is None else path.read_text())


def parse_capacity(doc: dict[str, Any], pools: dict[str, pricing.PoolPrice]) -> CapacityModel:
    """Build the capacity model from a converter report.

    Args:
        doc: Parsed report.json.
        pools: The pool catalogue, to place variants without an explicit pool.

    Returns:
        The capacity model.

    Raises:
        CatalogError: If the report is malformed or a variant fits no pool.
    """
    variants = []
    try:
        for raw in doc["variants"]:
            latency = raw.get("latency_ms") or {}
            usable = (
                raw.get("status", "ok") == "ok"
                and raw.get("throughput_per_s")
                and latency.get("p50") is not None
                and latency.get("p99") is not None
            )
            if not usable:
                continue
            device = str(raw.get("device", "gpu"))
            pool_name = raw.get("pool") or next(
                (p.name for p in pools.values() if (p.gpu > 0) == (device == "gpu")), None
            )
            if pool_name not in pools:
                raise CatalogError(f"variant {raw.get('name')!r}: no {device} pool in the catalogue")
            res = raw.get("resources")
            request = (
                pricing.ReplicaRequest(
                    cpu=float(res["cpu"]), memory_gib=float(res["memory_gib"]), gpu=int(res.get("gpu", 0))
                )
                if res
                else _DEFAULT_RESOURCES["gpu" if device == "gpu" else "cpu"]
            )
            variants.append(
                policy.Variant(
                    name=str(raw["name"]),
                    pool=str(pool_name),
                    request=request,
                    throughput_per_s=float(raw["throughput_per_s"]),
                    latency_p50_ms=float(latency["p50"]),
                    latency_p99_ms=float(latency["p99"]),
                )
            )
        chosen = doc.get("selected")
        selected = chosen.get("variant") if isinstance(chosen, dict) else chosen
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CatalogError(f"capacity report: {e}") from e
    if not variants:
        raise CatalogError("capacity report: no variant with status ok, a throughput and a latency")
    if selected is None:
        selected = variants[0].name
    for v in variants:
        if pricing.replicas_per_node(pools[v.pool], v.request) == 0:
            raise CatalogError(f"variant {v.name!r} does not fit on a node of pool {v.pool!r}")
    if selected not in {v.name for v in variants}:
        raise CatalogError(f"capacity report: selected variant {selected!r} is not among the usable variants")
    return CapacityModel(variants=tuple(variants), selected=str(selected))


def load_capacity(path: Path | None, pools: dict[str, pricing.PoolPrice]) -> CapacityModel:
    """Load the capacity model from a report.json, or the default one when None."""
    if path is None:
        return parse_capacity(DEFAULT_REPORT, pools)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CatalogError(f"capacity report {path}: {e}") from e
    return parse_capacity(doc, pools)
