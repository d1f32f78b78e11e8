"""What conversion and profiling Jobs report back: a compact JSON in the container's termination message.

The operator reads it from the finished pod's status (`state.terminated.message`, at most 4096 bytes), so it
needs no access to the artifact store. `thrifty-convert --summary-file` writes the same shape.
"""

from __future__ import annotations

import json

import pydantic

SCHEMA_VERSION = 1
MAX_BYTES = 4096


class VariantResult(pydantic.BaseModel):
    """One variant as a Job measured it."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    name: str
    format: str | None = None
    precision: str | None = None
    status: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput_per_s: float | None = None
    size_bytes: int | None = None
    parity: str | None = None
    model_name: str | None = None
    """Model directory in the repository Triton serves (`<variant>` native, `<variant>-py` Python backend)."""

    @property
    def ok(self) -> bool:
        """Whether the variant passed every gate and was measured."""
        return self.status == "ok" and self.throughput_per_s is not None and self.throughput_per_s > 0


class JobSummary(pydantic.BaseModel):
    """The termination message of a conversion or profiling Job."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    v: int = SCHEMA_VERSION
    variants: list[VariantResult] = pydantic.Field(default_factory=list)
    selected: str | None = None
    error: str | None = None


def parse(message: str | None) -> JobSummary | None:
    """The summary in a termination message, or None when the message is not one (e.g. a crash log)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or "v" not in data:
        return None
    try:
        return JobSummary.model_validate(data)
    except pydantic.ValidationError:
        return None
