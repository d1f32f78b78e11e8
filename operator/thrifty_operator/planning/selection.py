"""The select phase: the cheapest feasible candidate per million inferences, and the Optimized condition."""

from __future__ import annotations

from collections.abc import Sequence

from thrifty_api import optimized_model as models

from .. import conditions
from .measure import Candidate, fmt


def cheapest(spec: models.OptimizedModelSpec, options: Sequence[Candidate]) -> Candidate | None:
    """The cheapest feasible candidate per million inferences; pool preference order, then p99, break ties."""
    order = {name: i for i, name in enumerate(spec.serving.pools)}
    feasible = [c for c in options if c.feasible and c.cost_per_million is not None]
    if not feasible:
        return None
    return min(
        feasible,
        key=lambda c: (c.cost_per_million, order.get(c.pool.name, 99), c.result.p99_ms or 0.0, c.result.name),
    )


def why(spec: models.OptimizedModelSpec, choice: Candidate) -> str:
    """Why the cost-per-inference choice won."""
    return (
        f"{choice.result.name} on {choice.pool.name}: cheapest per million inferences "
        f"({fmt(choice.cost_per_million)}) with p99 {choice.result.p99_ms or 0:.1f} ms "
        f"within {spec.optimization.latency_target_ms} ms"
    )


def optimized(
    spec: models.OptimizedModelSpec, options: Sequence[Candidate], failed: Sequence[str]
) -> tuple[Candidate | None, conditions.Condition]:
    """The selection and its Optimized condition; with nothing feasible, every reason why not."""
    choice = cheapest(spec, options)
    if choice is None:
        reasons = [f"{c.result.name}@{c.pool.name}: {c.why_not}" for c in options if not c.feasible]
        message = (
            "no variant meets the accuracy gate and latency target; " + "; ".join([*reasons, *failed])[:800]
        )
        return None, conditions.Condition(
            type="Optimized", status="False", reason="NoFeasibleVariant", message=message
        )
    return choice, conditions.Condition(
        type="Optimized", status="True", reason="VariantSelected", message=why(spec, choice)
    )
