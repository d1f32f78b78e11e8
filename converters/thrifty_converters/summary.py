"""`--summary-file`: the compact JSON an operator Job leaves as its container's termination message.

Shape (version 1): `{"v":1,"variants":[{"name","format","precision","status","p50_ms","p99_ms",
"throughput_per_s","size_bytes","parity","model_name"}],"selected":...}` on success and `{"v":1,"error":...}`
on failure. Kubernetes keeps at most 4096 bytes of a termination message, so the text is trimmed to fit:
first the parity notes, then long statuses, then the last variants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import report

VERSION = 1
MAX_BYTES = 4096
NOT_REQUESTED = "skipped: not requested"
_PARITY_CHARS = 120
_STATUS_CHARS = (300, 80)


def _parity(p: report.Parity | None) -> str | None:
    if p is None:
        return None
    if not p.passed:
        return f"failed: {p.reason}"[:_PARITY_CHARS]
    parts = [f"max_abs {p.max_abs_error:.2g}" if p.max_abs_error is not None else ""]
    if p.min_cosine is not None:
        parts.append(f"min_cos {p.min_cosine:.4f}")
    if p.top1_agreement is not None:
        parts.append(f"top1 {p.top1_agreement:.3f}")
    if p.metric is not None and p.metric_baseline is not None:
        parts.append(f"metric {p.metric:.4f} (baseline {p.metric_baseline:.4f})")
    return ", ".join(x for x in parts if x)[:_PARITY_CHARS]


def _model_name(v: report.Variant) -> str | None:
    """The native model `<variant>`, when the Triton repository has it (`<variant>-py` sits beside it)."""
    return v.name if v.triton and v.triton.startswith("ok") else None


def _round(x: float | None, digits: int = 4) -> float | None:
    return round(x, digits) if x is not None else None


def from_report(result: report.Report) -> dict[str, Any]:
    """The summary of an `optimize` or `profile` report: every requested variant, and the selection."""
    rows: list[dict[str, Any]] = []
    for v in result.variants:
        if v.status.startswith(NOT_REQUESTED):
            continue
        row = {
            "name": v.name,
            "format": v.format,
            "precision": v.precision,
            "status": v.status,
            "p50_ms": _round(v.latency_ms.p50),
            "p99_ms": _round(v.latency_ms.p99),
            "throughput_per_s": _round(v.throughput_per_s, 2),
            "size_bytes": v.size_bytes,
            "parity": _parity(v.parity),
            "model_name": _model_name(v),
        }
        rows.append({k: x for k, x in row.items() if x is not None})
    return {"v": VERSION, "variants": rows, "selected": result.selected.variant}


def failure(message: str) -> dict[str, Any]:
    """The summary of a run that failed: one line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return {"v": VERSION, "error": (lines[0] if lines else "failed")[:1000]}


def encode(data: dict[str, Any]) -> str:
    """Compact JSON of `data`, trimmed to at most MAX_BYTES bytes."""
    text = _dump(data)
    if len(text.encode()) <= MAX_BYTES:
        return text
    rows = [dict(r) for r in data.get("variants", [])]
    trimmed = dict(data, variants=rows)
    for row in rows:
        row.pop("parity", None)
    for limit in _STATUS_CHARS:
        text = _dump(trimmed)
        if len(text.encode()) <= MAX_BYTES:
            return text
        for row in rows:
            row["status"] = str(row["status"])[:limit]
    if "error" in trimmed:
        trimmed["error"] = str(trimmed["error"])[:500]
    while rows and len(_dump(trimmed).encode()) > MAX_BYTES:
        rows.pop()
    return _dump(trimmed)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def write(path: Path, data: dict[str, Any]) -> None:
    """Write the trimmed summary to `path` (a termination-message file or any other)."""
    path.write_text(encode(data))
