"""The convert phase: one content-addressed conversion Job on a CPU pool, and the Converted condition."""

from __future__ import annotations

import dataclasses
from typing import Any

from thrifty_api import optimized_model as models
from thrifty_api import pools

from .. import conditions, config, manifests, names
from .measure import PriceOf, Recorded, job_condition
from .observed import JobState, Observed


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conversion:
    """The conversion's condition and, when its Job does not exist yet, the Job to create."""

    condition: conditions.Condition
    create: dict[str, Any] | None


def conversion(
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    cpu_pool: pools.Pool,
    observed: Observed,
    settings: config.Settings,
    price_of: PriceOf,
    rec: Recorded,
) -> Conversion:
    """Convert once per artifact digest; a conversion recorded in status needs its Job no longer."""
    digest = names.artifact_digest(spec)
    job = names.convert_job(digest)
    state = observed.jobs.get(job)
    missing = state is None or state.phase == "Missing"
    if rec.converted and missing:
        state, missing = JobState(phase="Succeeded", message=None), False
    create = (
        manifests.convert_job(
            owner=owner,
            spec=spec,
            digest=digest,
            pool=cpu_pool,
            price_per_hour=price_of(cpu_pool, spec),
            settings=settings,
        )
        if missing
        else None
    )
    condition, _ = job_condition("Converted", state, job, "Conversion")
    return Conversion(condition=condition, create=create)
