"""`--summary-file`: the report of a run condensed into the contract's Job summary
(`thrifty_api.job_summary`), which an operator Job leaves as its container's termination message."""

from __future__ import annotations

from pathlib import Path

from thrifty_api import job_summary, report

NOT_REQUESTED = "skipped: not requested"
_PARITY_CHARS = 120


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


def from_report(result: report.Report) -> job_summary.JobSummary:
    """The summary of an `optimize` or `profile` report: every requested variant, and the selection."""
    rows = [
        job_summary.VariantResult(
            name=v.name,
            format=v.format,
            precision=v.precision,
            status=v.status,
            p50_ms=_round(v.latency_ms.p50),
            p99_ms=_round(v.latency_ms.p99),
            throughput_per_s=_round(v.throughput_per_s, 2),
            size_bytes=v.size_bytes,
            parity=_parity(v.parity),
            model_name=_model_name(v),
        )
        for v in result.variants
        if not v.status.startswith(NOT_REQUESTED)
    ]
    return job_summary.JobSummary(variants=rows, selected=result.selected.variant)


def write(path: Path, summary: job_summary.JobSummary) -> None:
    """Write the trimmed summary to `path` (a termination-message file or any other)."""
    path.write_text(job_summary.encode(summary))
