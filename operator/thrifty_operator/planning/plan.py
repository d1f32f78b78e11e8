"""One reconcile's plan: the phases in order, from spec and observations to children, status and Events."""

from __future__ import annotations

import dataclasses
from typing import Any

from thrifty_api import optimized_model as models
from thrifty_api import pools

from .. import conditions, config, manifests, names
from . import admission, convert, events, measure, scale, selection, serve
from .observed import Load, Observed


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """What the I/O layer should do."""

    create_jobs: list[dict[str, Any]]
    apply: list[dict[str, Any]]
    status: models.OptimizedModelStatus
    events: list[events.Event]
    ready: bool
    serving: bool
    """The plan reached the serve phase: a timer pass reads the load and plans again with it."""


@dataclasses.dataclass(kw_only=True)
class _Draft:
    """The status being built, phase by phase."""

    generation: int
    stored: models.OptimizedModelStatus
    artifacts: models.Artifacts
    computed: list[conditions.Condition] = dataclasses.field(default_factory=list)
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    create_jobs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    apply: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[events.Event] = dataclasses.field(default_factory=list)

    def finish(self, *, ready: bool, serving: bool = False) -> Plan:
        merged = conditions.merge(self.stored.conditions, self.computed, self.generation)
        status = models.OptimizedModelStatus(
            observed_generation=self.generation, artifacts=self.artifacts, conditions=merged, **self.fields
        )
        return Plan(
            create_jobs=self.create_jobs,
            apply=self.apply,
            status=status,
            events=events.transitions(self.stored.conditions, merged) + self.events,
            ready=ready,
            serving=serving,
        )

    def not_ready(self, reason: str, message: str, *others: conditions.Condition) -> Plan:
        self.computed.extend(others)
        self.computed.append(
            conditions.Condition(type="Ready", status="False", reason=reason, message=message)
        )
        return self.finish(ready=False)


def jobs_to_adopt(observed: Observed, owner_uid: str) -> list[str]:
    """Shared Jobs this model uses but does not own yet: it joins their owners, so deleting the model that
    created a Job never garbage-collects it while another still needs it."""
    return sorted(name for name, state in observed.jobs.items() if owner_uid not in state.owners)


def plan(
    *,
    owner: manifests.Owner,
    generation: int,
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    observed: Observed,
    catalogue: pools.PoolCatalogue,
    settings: config.Settings,
    price_of: measure.PriceOf,
    load: Load | None = None,
) -> Plan:
    """Compute the desired children and status.

    With `load` (a timer pass that found the model serving) the budget-aware scaler chooses variant, pool
    and replicas; without it, the last decision recorded in status stands.
    """
    digest = names.artifact_digest(spec)
    draft = _Draft(
        generation=generation,
        stored=stored,
        artifacts=models.Artifacts(uri=manifests.store_uri(settings, digest), source_digest=digest),
    )
    # Unknown pools are a permanent problem until the spec or the catalogue changes: report, don't retry.
    unknown = [name for name in spec.serving.pools if catalogue.get(name) is None]
    if unknown:
        return draft.not_ready(
            "UnknownPool", f"spec.serving.pools names {', '.join(unknown)}, not in the pool catalogue"
        )
    serving_pools = [p for name in spec.serving.pools if (p := catalogue.get(name)) is not None]
    problem = admission.check(spec, serving_pools)
    if problem:
        return draft.not_ready(*problem)
    cpu_pools = [p for p in serving_pools if not p.is_gpu] or [p for p in catalogue.pools if not p.is_gpu]
    if not cpu_pools:
        return draft.not_ready("NoCPUPool", "the pool catalogue has no CPU pool to run the conversion Job on")

    rec = measure.recorded(stored, digest)
    converted = convert.conversion(owner, spec, cpu_pools[0], observed, settings, price_of, rec)
    draft.create_jobs.extend([converted.create] if converted.create else [])
    draft.computed.append(converted.condition)
    if converted.condition.status != "True":
        reason = "ConversionFailed" if converted.condition.status == "False" else "Converting"
        return draft.not_ready(reason, converted.condition.message)

    profiled = measure.profiles(owner, spec, serving_pools, observed, settings, price_of, rec)
    draft.create_jobs.extend(profiled.create)
    options = measure.candidates(spec, profiled.measured, price_of)
    draft.fields["variants"] = [measure.measured_variant(c) for c in options][:128]
    if profiled.pending:
        pending = ", ".join(profiled.pending)
        optimizing = conditions.Condition(
            type="Optimized", status="Unknown", reason="Profiling", message=f"profiling on pool(s) {pending}"
        )
        return draft.not_ready("Profiling", f"waiting for profiles from {pending}", optimizing)
    cheapest, optimized = selection.optimized(spec, options, profiled.failed)
    if cheapest is None:
        return draft.not_ready("NoFeasibleVariant", optimized.message, optimized)
    draft.computed.append(optimized)
    return _serve(draft, owner, spec, observed, catalogue, settings, options, cheapest, optimized, load)


def _serve(
    draft: _Draft,
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    observed: Observed,
    catalogue: pools.PoolCatalogue,
    settings: config.Settings,
    options: list[measure.Candidate],
    cheapest: measure.Candidate,
    optimized: conditions.Condition,
    load: Load | None,
) -> Plan:
    """The scaler may trade the cheapest-per-inference choice for one the budget can pay for."""
    decided = (
        scale.decide(
            model=owner.name,
            spec=spec,
            stored=draft.stored,
            load=load,
            options=options,
            catalogue=catalogue,
            default=cheapest,
        )
        if load is not None
        else None
    )
    choice = serve.choose(spec, draft.stored, options, cheapest, observed, decided, optimized.message)
    if decided is not None:
        draft.fields["cost"] = decided.cost
        draft.fields["scaling"] = decided.scaling
        draft.computed.extend(decided.conditions)
        draft.events.extend(decided.events)
    picked = choice.candidate
    draft.fields["selected"] = models.Selection(
        variant=picked.result.name, pool=picked.pool.name, reason=choice.reason
    )
    served = serve.serve(owner, spec, draft.stored, choice, observed, settings)
    draft.apply.extend(served.apply)
    draft.fields["endpoints"] = served.endpoints
    draft.fields["replicas"] = served.replicas
    draft.computed.extend(served.conditions)
    return draft.finish(ready=served.ready, serving=True)
