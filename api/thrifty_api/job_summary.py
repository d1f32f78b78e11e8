"""What conversion and profiling Jobs report back: a compact JSON in the container's termination message.

The converter writes it (`thrifty-convert --summary-file`); the operator reads it from the finished pod's
status (`state.terminated.message`), so it needs no access to the artifact store. Kubernetes keeps at most
4096 bytes of a termination message, so `encode` trims the text to fit: first the parity notes, then long
statuses, then the last variants.

Shape (version 1): `{"v":1,"variants":[{"name","format","precision","status","p50_ms","p99_ms",
"throughput_per_s","size_bytes","parity","model_name"}],"selected":...}` on success and `{"v":1,"error":...}`
on failure.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

SCHEMA_VERSION = 1
MAX_BYTES = 4096
_STATUS_CHARS = (300, 80)


# Bounds of what a measurement can be; a summary outside them is not read (the Job's result is then unknown).
_MS = pydantic.Field(default=None, ge=0, le=1e9)
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class VariantResult(pydantic.BaseModel):
    """One variant as a Job measured it."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    name: str = pydantic.Field(min_length=1, max_length=63, pattern=_NAME)
    format: str | None = pydantic.Field(default=None, max_length=32)
    precision: str | None = pydantic.Field(default=None, max_length=16)
    status: str = pydantic.Field(max_length=4096)
    """`ok`, `skipped: <why>` or `failed: <why>`."""
    p50_ms: float | None = _MS
    p99_ms: float | None = _MS
    throughput_per_s: float | None = pydantic.Field(default=None, ge=0, le=1e9)
    size_bytes: int | None = pydantic.Field(default=None, ge=0, le=2**62)
    parity: str | None = pydantic.Field(default=None, max_length=4096)
    """Parity or task-metric figures against the reference, one line."""
    model_name: str | None = pydantic.Field(default=None, max_length=128, pattern=_NAME)
    """Model directory in the repository Triton serves (`<variant>` native, `<variant>-py` Python backend)."""

    @property
    def ok(self) -> bool:
        """Whether the variant passed every gate and was measured."""
        return self.status == "ok" and self.throughput_per_s is not None and self.throughput_per_s > 0


class JobSummary(pydantic.BaseModel):
    """The termination message of a conversion or profiling Job."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    v: int = SCHEMA_VERSION
    variants: list[VariantResult] = pydantic.Field(default_factory=list, max_length=256)
    selected: str | None = pydantic.Field(default=None, max_length=63)
    error: str | None = pydantic.Field(default=None, max_length=4096)


def failure(message: str) -> JobSummary:
    """The summary of a run that failed: its first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return JobSummary(error=(lines[0] if lines else "failed")[:1000])


def encode(summary: JobSummary) -> str:
    """Compact JSON of `summary`, trimmed to at most MAX_BYTES bytes."""
    data = summary.model_dump(mode="json", exclude_none=True)
    text = _dump(data)
    if len(text.encode()) <= MAX_BYTES:
        return text
    rows: list[dict[str, Any]] = data.get("variants", [])
    for row in rows:
        row.pop("parity", None)
    for limit in _STATUS_CHARS:
        text = _dump(data)
        if len(text.encode()) <= MAX_BYTES:
            return text
        for row in rows:
            row["status"] = str(row["status"])[:limit]
    if "error" in data:
        data["error"] = str(data["error"])[:500]
    while rows and len(_dump(data).encode()) > MAX_BYTES:
        rows.pop()
    return _dump(data)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def parse(message: str | None) -> JobSummary | None:
    """The summary in a termination message, or None when the message is not one (for example a crash log)."""
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
