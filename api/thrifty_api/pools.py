"""The pool catalogue: the node pools Thrifty may place replicas on, with their prices.

The Helm chart renders it from its `pools` value into a ConfigMap the operator mounts; the simulator reads
the same format. Parsing only: callers read the file.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

import pydantic
import yaml
from pydantic import alias_generators

from . import quantity


def _camel_config() -> pydantic.ConfigDict:
    return pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Toleration(pydantic.BaseModel):
    """A pod toleration, as in the core API."""

    model_config = _camel_config()

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Accelerator(pydantic.BaseModel):
    """The GPU of a pool's nodes."""

    model_config = _camel_config()

    product: str
    """GPU product as the `nvidia.com/gpu.product` label names it; TensorRT engines are built per product."""

    resource: str = "nvidia.com/gpu"
    """Extended resource each replica requests."""

    count: int = pydantic.Field(default=1, ge=1)
    """GPUs per node."""


class Allocatable(pydantic.BaseModel):
    """Allocatable resources of one node (quantities)."""

    model_config = _camel_config()

    cpu: str = pydantic.Field(pattern=quantity.PATTERN, max_length=32)
    memory: str = pydantic.Field(pattern=quantity.PATTERN, max_length=32)
    gpu: int = pydantic.Field(default=0, ge=0)


class Pool(pydantic.BaseModel):
    """One node pool Thrifty may place replicas on."""

    model_config = _camel_config()

    name: str = pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    node_selector: dict[str, str]
    tolerations: list[Toleration] = pydantic.Field(default_factory=list)
    accelerator: Accelerator | None = None
    allocatable: Allocatable
    price_per_node_hour: str
    """Price of one node for one hour, a decimal string in the catalogue's currency."""

    startup_seconds: int | None = pydantic.Field(default=None, ge=0, le=3600)
    """Seconds from a new replica being scheduled on a ready node of this pool until it serves (image pull,
    Triton model load). The simulator (`thrifty_sim`) uses it as the cold start; None: its default."""

    @pydantic.field_validator("price_per_node_hour")
    @classmethod
    def _decimal(cls, value: str) -> str:
        try:
            if Decimal(value) < 0:
                raise ValueError("must not be negative")
        except InvalidOperation as err:
            raise ValueError(f"must be a decimal, got {value!r}") from err
        return value

    @property
    def is_gpu(self) -> bool:
        """Whether replicas on this pool get a GPU."""
        return self.accelerator is not None


class PoolCatalogue(pydantic.BaseModel):
    """Every pool with its price, as the chart's `pools` value renders it."""

    model_config = _camel_config()

    currency: str = "USD"
    pools: list[Pool] = pydantic.Field(min_length=1)

    def get(self, name: str) -> Pool | None:
        """The pool called `name`, if the catalogue has one."""
        return next((p for p in self.pools if p.name == name), None)


def parse(text: str) -> PoolCatalogue:
    """The catalogue in a YAML (or JSON) document."""
    return PoolCatalogue.model_validate(yaml.safe_load(text))
