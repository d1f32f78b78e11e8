"""Operator settings (environment, set by the Helm chart) and the pool catalogue (a mounted ConfigMap)."""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Literal

import pydantic
import pydantic_settings

from thrifty_api import pools


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

    cost_update_interval_seconds: float = pydantic.Field(default=900.0, gt=0)
    """Month-to-date spend and the scaler's memory are written to status at most this often (a change of rate,
    budget, replicas, variant or pool at once)."""

    job_deadline_seconds: int = pydantic.Field(default=3600, gt=0)
    """activeDeadlineSeconds of conversion and profiling Jobs."""

    metrics_port: int = pydantic.Field(default=8081, ge=0, le=65535)
    """Port of the operator's own Prometheus metrics (0: not served)."""

    converter_cpu_request: str = pydantic.Field(default="2", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    """CPU request of conversion and profiling Jobs (a node of the pool must have it free)."""

    converter_memory_request: str = pydantic.Field(default="4Gi", pattern=r"^[0-9]+(Ki|Mi|Gi)$")
    """Memory request of conversion and profiling Jobs; their limit is twice as much."""

    converter_ephemeral_storage: str = pydantic.Field(default="10Gi", pattern=r"^[0-9]+(Ki|Mi|Gi)$")
    """Scratch space (`/tmp`) of conversion and profiling Jobs: request, limit and the emptyDir's size limit.
    A model file that fills it gets its pod evicted, not the node's disk."""

    converter_network_policy: bool = True
    """Create, in every namespace with conversion Jobs, a NetworkPolicy that lets nothing into their pods and
    out of them only `converter_egress`: a user's model file can run code when it is loaded."""

    converter_egress: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    """NetworkPolicy egress rules of conversion and profiling pods (JSON list); empty: no egress at all. The
    `s3` store and `s3://` sources need a rule for the object store's address."""

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


@functools.lru_cache(maxsize=4)
def _load_catalogue(path: pathlib.Path, mtime: float) -> pools.PoolCatalogue:
    return pools.parse(path.read_text())


def load_catalogue(path: pathlib.Path) -> pools.PoolCatalogue:
    """Read the catalogue, re-reading only when the (ConfigMap-mounted) file changes."""
    return _load_catalogue(path, path.stat().st_mtime)
