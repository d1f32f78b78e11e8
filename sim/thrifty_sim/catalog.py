"""Pool catalogue and per-replica capacity model (converter report.json), with defaults.

Pool catalogue: the contract's format (`thrifty_api.pools`), the one the operator reads from the Helm
chart's `pools` value (see config/pools.local.yaml). The simulator uses each pool's allocatable
resources, `pricePerNodeHour` and the optional `startupSeconds` (cold start; 120 s when absent)::

    currency: USD
    pools:
      - name: gpu-t4
        nodeSelector: {node.kubernetes.io/instance-type: g4dn.xlarge}
        accelerator: {product: Tesla-T4}
        allocatable: {cpu: "4", memory: 16Gi, gpu: 1}
        pricePerNodeHour: "0.526"
        startupSeconds: 120

Capacity report.json: the converter's report (`thrifty_api.report`, schema 1.0), read as plain JSON
rather than validated by `thrifty_api.report.Report`: the simulator also takes the trimmed reports in
thrifty_sim/data/capacity (no `machine.hostname`, `options` or `stages`, which the model requires), a
plain name as `selected`, and per-variant keys the converter's report does not have (`pool`,
`resources`), which the model's `extra="forbid"` would reject. Used keys::

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
import math
from importlib.resources.abc import Traversable
from typing import Any

import pydantic
import yaml

from thrifty_api import pools as contract
from thrifty_operator import pool_pricing
from thrifty_operator.cost import policy, pricing

# On-demand us-east-1 prices from cost.md §3.2 (SkyPilot catalogue): g4dn.xlarge, g5.xlarge, c7i.xlarge.
# Start-up: pod scheduling, image pull and Triton model load on a ready node; GPU images are larger and
# TensorRT engines load slower. Placeholders until measured (cost.md §5.1 suggests a grid of 30/120/300 s).
DEFAULT_POOLS_YAML = """
currency: USD
pools:
  - name: gpu-t4
    nodeSelector: {node.kubernetes.io/instance-type: g4dn.xlarge}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    accelerator: {product: Tesla-T4, resource: nvidia.com/gpu, count: 1}
    allocatable: {cpu: "4", memory: 16Gi, gpu: 1}
    pricePerNodeHour: "0.526"
    startupSeconds: 120
  - name: gpu-a10g
    nodeSelector: {node.kubernetes.io/instance-type: g5.xlarge}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    accelerator: {product: NVIDIA-A10G, resource: nvidia.com/gpu, count: 1}
    allocatable: {cpu: "4", memory: 16Gi, gpu: 1}
    pricePerNodeHour: "1.006"
    startupSeconds: 120
  - name: cpu-c7i
    nodeSelector: {node.kubernetes.io/instance-type: c7i.xlarge}
    allocatable: {cpu: "4", memory: 8Gi}
    pricePerNodeHour: "0.1785"
    startupSeconds: 60
"""

# Cold start of a pool whose catalogue entry has no `startupSeconds`.
DEFAULT_STARTUP_S = 120.0

# Keys of the simulator's former catalogue format (`pricePerHour`, `memoryGiB` on each pool).
_OLD_FORMAT_KEYS = frozenset({"pricePerHour", "memoryGiB", "cpu"})

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
    """A pool catalogue or capacity report that cannot be used; the message is one line for the CLI."""


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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_summary(err: pydantic.ValidationError) -> str:
    """The first errors of a validation, on one line."""
    errors = err.errors()
    parts = [f"{'.'.join(str(x) for x in e['loc']) or '(document)'}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return _one_line("; ".join(parts) + more)


def _is_old_format(doc: Any) -> bool:
    """Whether `doc` is a catalogue in the simulator's former format (`pricePerHour`, `memoryGiB`)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("pools"), list):
        return False
    return any(
        isinstance(p, dict) and "pricePerNodeHour" not in p and bool(_OLD_FORMAT_KEYS & set(p))
        for p in doc["pools"]
    )


def pool_prices(catalogue: contract.PoolCatalogue) -> dict[str, pricing.PoolPrice]:
    """The cost model's view of every pool of a catalogue, with its cold start.

    Args:
        catalogue: The pool catalogue.

    Returns:
        Pools by name, in catalogue order.

    Raises:
        CatalogError: If a pool cannot be priced (unparseable quantity, no capacity).
    """
    prices = {}
    for pool in catalogue.pools:
        try:
            price = pool_pricing.pool_price(pool)
        except ValueError as e:
            raise CatalogError(f"pool catalogue: pool {pool.name!r}: {_one_line(str(e))}") from e
        startup = DEFAULT_STARTUP_S if pool.startup_seconds is None else float(pool.startup_seconds)
        prices[pool.name] = dataclasses.replace(price, startup_s=startup)
    return prices


def parse_pools(text: str) -> dict[str, pricing.PoolPrice]:
    """Parse a pool catalogue document (`thrifty_api.pools` format).

    Args:
        text: YAML (or JSON) text.

    Returns:
        Pools by name, in file order.

    Raises:
        CatalogError: If the document is malformed, in the simulator's former format, or not a catalogue.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CatalogError(f"pool catalogue: {_one_line(str(e))}") from e
    if _is_old_format(doc):
        raise CatalogError(
            "pool catalogue: old simulator format (pricePerHour, memoryGiB); write the thrifty_api.pools "
            "format (nodeSelector, allocatable {cpu, memory, gpu}, pricePerNodeHour, startupSeconds) "
            "as in config/pools.local.yaml"
        )
    try:
        catalogue = contract.PoolCatalogue.model_validate(doc)
    except pydantic.ValidationError as e:
        raise CatalogError(f"pool catalogue: {_validation_summary(e)}") from e
    return pool_prices(catalogue)


def _read_text(path: Traversable, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"{what} {path}: not UTF-8 text ({e.reason})") from e
    except OSError as e:
        raise CatalogError(f"{what} {path}: cannot read: {e.strerror or e}") from e


def load_pools(path: Traversable | None) -> dict[str, pricing.PoolPrice]:
    """Load the pool catalogue from `path`, or the default one when None."""
    return parse_pools(DEFAULT_POOLS_YAML if path is None else _read_text(path, "pool catalogue"))


def _check_finite(raw: dict[str, Any], request: pricing.ReplicaRequest, latency: dict[str, Any]) -> None:
    """Refuse a variant whose figures are not finite, or not positive where they must be."""
    name = raw.get("name")
    figures = {
        "throughput_per_s": (float(raw["throughput_per_s"]), True),
        "latency_ms.p50": (float(latency["p50"]), False),
        "latency_ms.p99": (float(latency["p99"]), False),
        "resources.cpu": (request.cpu, False),
        "resources.memory_gib": (request.memory_gib, False),
        "resources.gpu": (float(request.gpu), False),
    }
    for key, (value, positive) in figures.items():
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            need = "a finite number > 0" if positive else "a finite number, 0 or more"
            raise CatalogError(f"variant {name!r}: {key} must be {need}; got {value!r}")


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
            _check_finite(raw, request, latency)
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


def load_capacity(path: Traversable | None, pools: dict[str, pricing.PoolPrice]) -> CapacityModel:
    """Load the capacity model from a report.json, or the default one when None."""
    if path is None:
        return parse_capacity(DEFAULT_REPORT, pools)
    text = _read_text(path, "capacity report")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CatalogError(f"capacity report {path}: {e}") from e
    if not isinstance(doc, dict):
        raise CatalogError(f"capacity report {path}: not a JSON object")
    return parse_capacity(doc, pools)
