"""report.json: the versioned, typed result of one `thrifty-convert optimize` run.

Schema changes bump SCHEMA_VERSION (major: removed/renamed keys; minor: added keys) and are
described in docs/report-schema.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import pydantic

SCHEMA_VERSION: Final = "1.0"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Latency(_Model):
    """Latency in milliseconds at the reported batch size; null when not profiled."""

    p50: float | None = None
    p99: float | None = None


class BatchProfile(_Model):
    """Measurements at one batch size."""

    batch_size: int
    latency_ms: Latency
    throughput_per_s: float
    stable: bool
    iterations: int


class Parity(_Model):
    """Agreement with the PyTorch FP32 reference on held-aside inputs, and the task metric."""

    passed: bool
    reason: str = ""
    max_abs_error: float | None = None
    mean_cosine: float | None = None
    min_cosine: float | None = None
    top1_agreement: float | None = None
    nonfinite: int = 0
    metric: float | None = None
    metric_baseline: float | None = None


class Stage(_Model):
    """One pipeline stage: status is "ok", "skipped: <why>" or "failed: <why>"."""

    name: str
    status: str
    seconds: float
    output: str | None = None
    details: dict[str, str] = {}


class Baseline(_Model):
    """PyTorch FP32 eager (or the ONNX source on ONNX Runtime) measured in the same run."""

    name: str
    latency_ms: Latency
    throughput_per_s: float | None
    batch_size: int | None
    metric: float | None = None
    profile: list[BatchProfile] = []


class Variant(_Model):
    """One candidate variant; status "ok" means it passed every gate and can be selected."""

    name: str
    format: Literal["onnx", "openvino", "tensorrt", "torchscript"]
    precision: Literal["fp32", "fp16", "bf16", "int8"]
    device: Literal["cpu", "gpu"]
    status: str
    path: str | None = None
    parity: Parity | None = None
    latency_ms: Latency = Latency()
    throughput_per_s: float | None = None
    batch_size: int | None = None
    speedup_vs_baseline: float | None = None
    cost_per_million: float | None = None
    size_bytes: int | None = None
    profile: list[BatchProfile] = []
    triton: str | None = None


class Selected(_Model):
    """The chosen variant (null when none passed) and why."""

    variant: str | None
    reason: str


class Machine(_Model):
    """Where profiling ran."""

    hostname: str
    cpu: str
    threads: int
    cpu_flags: list[str]
    gpu: bool
    load_average_1m: float | None = None  # other work on the machine skews every measurement


class Report(_Model):
    """Top level of report.json."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    model: str
    target: Literal["cpu", "gpu"]
    machine: Machine
    options: dict[str, str | float | int | None]
    stages: list[Stage]
    baseline: Baseline
    variants: list[Variant]
    selected: Selected
    model_repository: str | None = None


def write(report: Report, path: Path) -> None:
    """Write `report` as indented JSON."""
    path.write_text(report.model_dump_json(indent=2) + "\n")


def read(path: Path) -> Report:
    """Read and validate a report.json."""
    return Report.model_validate_json(path.read_text())
