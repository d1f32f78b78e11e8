"""What the operator's in-memory indexes hold, from the watch streams kopf keeps anyway, so that a timer
pass reads a namespace's budget and its models' demand without an API request (issue 14: a shared budget
listed every model of the namespace on every model's pass, N² reads).

Pure: `handlers` registers these functions with `@kopf.index` and passes the indexes' contents here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from thrifty_api import optimized_model as models

BUDGET_KEYS = (models.BUDGET_PER_HOUR_ANNOTATION, models.BUDGET_PER_MONTH_ANNOTATION)


def rate_per_hour(status: Mapping[str, Any] | None) -> float:
    """A model's spend rate from its stored status (`status.cost.ratePerHour`); 0 when unknown or bad."""
    cost = status.get("cost") if isinstance(status, Mapping) else None
    rate = cost.get("ratePerHour") if isinstance(cost, Mapping) else None
    try:
        value = float(rate) if rate is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def model_rate(namespace: str, name: str, status: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """Index entry of one OptimizedModel: its namespace → (its name, its spend rate)."""
    return {namespace: (name, rate_per_hour(status))}


def namespace_budget(name: str, annotations: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Index entry of one Namespace: its name → its budget annotations (none: an empty mapping)."""
    return {name: {k: v for k, v in annotations.items() if k in BUDGET_KEYS}}


def rates(entries: Iterable[tuple[str, float]]) -> dict[str, float]:
    """A namespace's index entries as model → rate."""
    return dict(entries)


def budget_annotations(entries: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """A namespace's index entry (one Namespace, so at most one mapping) as its budget annotations."""
    merged: dict[str, str] = {}
    for entry in entries:
        merged |= entry
    return merged
