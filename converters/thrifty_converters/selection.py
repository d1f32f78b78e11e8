"""Choosing the variant with the lowest cost per million inferences."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidate:
    """A variant that passed its gates, with its best throughput within the latency budget."""

    name: str
    throughput_per_s: float | None
    p99_ms: float | None


def cost_per_million(price_per_hour: float, throughput_per_s: float) -> float:
    """price_per_hour / (throughput * 3600) * 1e6: dollars for one million inferences."""
    return price_per_hour / (throughput_per_s * 3600.0) * 1e6


def select(candidates: Sequence[Candidate], price_per_hour: float) -> tuple[str | None, str]:
    """Cheapest candidate (ties: lower p99); returns (name or None, reason)."""
    feasible = [c for c in candidates if c.throughput_per_s and c.throughput_per_s > 0]
    if not feasible:
        return None, "no variant passed parity and met the latency budget"
    best = min(
        feasible,
        key=lambda c: (cost_per_million(price_per_hour, c.throughput_per_s or 0.0), c.p99_ms or 0.0),
    )
    cost = cost_per_million(price_per_hour, best.throughput_per_s or 0.0)
    return best.name, (
        f"lowest cost per million inferences: {cost:.4f} at {best.throughput_per_s:.1f}/s "
        f"and ${price_per_hour}/h among {len(feasible)} passing variants"
    )
