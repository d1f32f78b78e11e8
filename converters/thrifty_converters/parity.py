"""Numerical parity of a variant against the FP32 reference, and the task metric gate.

FP32 variants must match elementwise (|y - r| <= atol + rtol*|r|, numpy.allclose); reduced precision
cannot, so it must keep the direction of each sample's output (cosine) or its top-1 class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .examples import Array

FP32_ATOL = 1e-4
FP32_RTOL = 1e-3
MIN_COSINE = 0.99
MIN_TOP1_AGREEMENT = 0.99
MAX_RELATIVE_METRIC_DROP = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parity:
    """Comparison of one variant's outputs with the reference outputs on the same inputs."""

    passed: bool
    reason: str
    max_abs_error: float
    mean_cosine: float
    min_cosine: float
    top1_agreement: float | None
    nonfinite: int


def compare(reference: Sequence[Array], outputs: Sequence[Array], precision: str) -> Parity:
    """Gate `outputs` against `reference`; fp32 uses atol/rtol, other precisions cosine or top-1."""
    if len(reference) != len(outputs):
        return _fail(f"{len(outputs)} outputs, reference has {len(reference)}")
    max_abs, cosines, top1s, nonfinite, close = 0.0, [], [], 0, True
    for r, o in zip(reference, outputs, strict=True):
        if r.shape != o.shape:
            return _fail(f"output shape {o.shape} differs from reference {r.shape}")
        r64, o64 = r.astype(np.float64), o.astype(np.float64)
        nonfinite += int(np.count_nonzero(~np.isfinite(o64)))
        max_abs = max(max_abs, float(np.max(np.abs(r64 - o64))) if r.size else 0.0)
        close = close and bool(np.allclose(o64, r64, atol=FP32_ATOL, rtol=FP32_RTOL))
        cosines.append(_cosines(r64, o64))
        if r.ndim == 2 and r.shape[1] > 1:
            top1s.append(float(np.mean(np.argmax(r64, axis=1) == np.argmax(o64, axis=1))))
    cos = np.concatenate(cosines)
    mean_cos, min_cos = float(np.mean(cos)), float(np.min(cos))
    top1 = min(top1s) if top1s else None
    if nonfinite:
        passed, reason = False, f"{nonfinite} NaN/Inf values"
    elif precision == "fp32":
        passed = close
        reason = "" if close else f"max abs error {max_abs:.2e} exceeds atol {FP32_ATOL} + rtol {FP32_RTOL}"
    else:
        passed = mean_cos >= MIN_COSINE or (top1 is not None and top1 >= MIN_TOP1_AGREEMENT)
        reason = "" if passed else f"mean cosine {mean_cos:.4f} < {MIN_COSINE} and top-1 agreement {top1}"
    return Parity(
        passed=passed,
        reason=reason,
        max_abs_error=max_abs,
        mean_cosine=mean_cos,
        min_cosine=min_cos,
        top1_agreement=top1,
        nonfinite=nonfinite,
    )


def _cosines(r: npt.NDArray[np.float64], o: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    r2, o2 = r.reshape(r.shape[0], -1), o.reshape(o.shape[0], -1)
    num = np.sum(r2 * o2, axis=1)
    den = np.linalg.norm(r2, axis=1) * np.linalg.norm(o2, axis=1)
    # Two all-zero rows agree perfectly; one zero row against a non-zero one does not.
    both_zero = den == 0
    return np.where(both_zero, 1.0, num / np.where(both_zero, 1.0, den))


def _fail(reason: str) -> Parity:
    return Parity(
        passed=False,
        reason=reason,
        max_abs_error=float("inf"),
        mean_cosine=0.0,
        min_cosine=0.0,
        top1_agreement=None,
        nonfinite=0,
    )


def accuracy(logits: Array, labels: Array) -> float:
    """Top-1 accuracy of class scores (last axis) against integer labels."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels.reshape(-1)))


def metric_drop_ok(baseline: float, value: float, max_relative_drop: float) -> bool:
    """Whether `value` is within `max_relative_drop` of `baseline` (higher is better)."""
    if baseline <= 0:
        return value >= baseline
    return (baseline - value) / baseline <= max_relative_drop
