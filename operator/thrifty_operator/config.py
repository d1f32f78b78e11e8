"""Operator settings (environment, set by the Helm chart) and the pool catalogue (a mounted ConfigMap)."""

from __future__ import annotations

import functools
import pathlib
from decimal import Decimal, InvalidOperation
from typing import Literal

import pydantic
import pydantic_settings
import yaml
from pydantic import alias_generators


class Settings(pydantic_settings.BaseSettings):
    """Everything the operator reads from its environment, prefixed `THRIFTY_`."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="THRIFTY_", frozen=True)

    namespace: str = "thrifty-system"
    """Namespace the operator runs in."""

    pool_catalogue: pathlib.Path = pathlib.Path("/etc/thrifty/pools.yaml")
    """The pool catalogue file, mounted from the chart's ConfigMap."""

    converter_image: str = "ghcr.io/thrifty-dev/thrifty-converter:0.1.0"
    """Image of conversion and profiling Jobs on CPU pools."""

    converter_gpu_image: str = "ghcr.io/thrifty-dev/thrifty-converter-gpu:0.1.0"
    """Image of TensorRT build and profiling Jobs on GPU pools."""

    artifact_store: Literal["pvc", "s3"] = "pvc"
    """Where converted variants and reports are kept."""

    artifact_pvc: str = "thrifty-artifacts"
    """PersistentVolumeClaim (ReadWriteMany, in each model's namespace) for the `pvc` store."""

    artifact_s3_uri: str = "s3://thrifty-artifacts"
    """Bucket (and prefix) for the `s3` store."""

    artifact_s3_secret: str = "thrifty-artifacts-s3"  # noqa: S105 - a Secret name, not a secret
    """Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_ENDPOINT_URL` for the `s3` store."""

    triton_backend_mode: Literal["native", "python"] = "native"
    """`native` serves with Triton's onnxruntime/openvino/tensorrt backends; `python` serves CPU variants
    through Triton's Python backend (for Triton builds that carry only that backend)."""

    extra_pod_labels: dict[str, str] = pydantic.Field(default_factory=dict)
    """Labels added to every pod Thrifty creates (JSON object)."""

    status_interval_seconds: float = pydantic.Field(default=30.0, gt=0)
    """How often the observed-state timer runs per OptimizedModel."""

    cost_update_interval_seconds: float = pydantic.Field(default=60.0, gt=0)
    """Cost fields in status change at most this often."""

    job_deadline_seconds: int = pydantic.Field(default=3600, gt=0)
    """activeDeadlineSeconds of conversion and profiling Jobs."""

    metrics_port: int = pydantic.Field(default=8081, ge=0, le=65535)
    """Port of the operator's own Prometheus metrics (0: not served)."""

    converter_cpu_request: str = pydantic.Field(default="2", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    """CPU request of conversion and profiling Jobs (a node of the pool must have it free)."""

    converter_memory_request: str = pydantic.Field(default="4Gi", pattern=r"^[0-9]+(Ki|Mi|Gi)$")
    """Memory request of conversion and profiling Jobs; their limit is twice as much."""

    prometheus_url: str | None = pydantic.Field(default=None, pattern=r"^https?://")
    """Prometheus HTTP API (e.g. `http://prometheus.monitoring:9090`) that scrapes the Triton pods; when set,
    the scaler's load comes from PromQL instead of scraping each pod's metrics port."""

    prometheus_rate_window: str = pydantic.Field(default="1m", pattern=r"^[0-9]+[smh]$")
    """Range of the `rate()` queries: at least two of Prometheus' scrape intervals."""

    prometheus_namespace_label: str = "namespace"
    """Label that carries a Triton pod's namespace in Prometheus."""

    prometheus_pod_label: str = "pod"
    """Label that carries a Triton pod's name in Prometheus."""

    @pydantic.field_validator("prometheus_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value


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

    cpu: str
    memory: str
    gpu: int = 0


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


@functools.lru_cache(maxsize=4)
def _load_catalogue(path: pathlib.Path, mtime: float) -> PoolCatalogue:
    return PoolCatalogue.model_validate(yaml.safe_load(path.read_text()))


def load_catalogue(path: pathlib.Path) -> PoolCatalogue:
    """Read the catalogue, re-reading only when the (ConfigMap-mounted) file changes."""
    return _load_catalogue(path, path.stat().st_mtime)
