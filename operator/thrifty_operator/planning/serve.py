"""The serve phase: which candidate runs with how many replicas, the Triton Deployment and Service, the
endpoints and the Deployed, Suspended and Ready conditions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from thrifty_api import optimized_model as models

from .. import conditions, config, manifests, names
from .measure import Candidate
from .observed import DeploymentState, Observed
from .scale import ScaleChoice


@dataclasses.dataclass(frozen=True, kw_only=True)
class Choice:
    """What serves and why; `decided` when the scaler decided on this pass."""

    candidate: Candidate
    replicas: int
    reason: str
    decided: ScaleChoice | None


def choose(
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    options: Sequence[Candidate],
    default: Candidate,
    observed: Observed,
    decided: ScaleChoice | None,
    reason: str,
) -> Choice:
    """The scaler's fresh decision, or else the last recorded one while it is still feasible."""
    by_key = {(c.result.name, c.pool.name): c for c in options if c.feasible}
    if decided is not None:
        chosen = by_key.get((decided.variant, decided.pool), default)
        if chosen is not default:
            # No live figures here (they move every pass): `scaling.message` has them.
            reason = f"{chosen.result.name} on {chosen.pool.name}: the budget-aware scaler's choice"
        return Choice(candidate=chosen, replicas=decided.replicas, reason=reason, decided=decided)
    last = stored.scaling
    kept = by_key.get((str(last.variant), str(last.pool))) if last else None
    if kept is not None and last is not None:
        replicas = (
            0
            if spec.suspend
            else min(max(last.replicas, spec.serving.min_replicas), spec.serving.max_replicas)
        )
        if kept is not default:
            reason = f"{kept.result.name} on {kept.pool.name}: the budget-aware scaler's choice"
        return Choice(candidate=kept, replicas=replicas, reason=reason, decided=None)
    return Choice(
        candidate=default, replicas=_initial_replicas(spec, observed.deployment), reason=reason, decided=None
    )


def _initial_replicas(spec: models.OptimizedModelSpec, observed: DeploymentState | None) -> int:
    if spec.suspend:
        return 0
    current = observed.replicas if observed else max(spec.serving.min_replicas, 1)
    # The scaler owns the count between the bounds; a spec change only clamps it.
    return min(
        max(current, spec.serving.min_replicas, 1 if spec.serving.min_replicas else 0),
        spec.serving.max_replicas,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Serving:
    """The children to apply and the status parts that describe them."""

    apply: list[dict[str, Any]]
    endpoints: models.Endpoints
    replicas: models.Replicas
    conditions: list[conditions.Condition]
    ready: bool


def model_name(choice: Candidate, settings: config.Settings) -> str:
    """The name clients send requests to: the native model, or its Python-backend twin on CPU pools."""
    name = choice.result.model_name or choice.result.name
    if settings.triton_backend_mode == "python" and not choice.pool.is_gpu and not name.endswith("-py"):
        return f"{name}-py"
    return name


def children(
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    choice: Choice,
    observed: Observed,
    settings: config.Settings,
) -> list[dict[str, Any]]:
    """The Service and Deployment for the choice, leaving out those already applied unchanged."""
    digest = names.artifact_digest(spec)
    pool = choice.candidate.pool
    root = manifests.pool_dir(digest, pool) if pool.is_gpu else manifests.artifact_dir(digest)
    serving = manifests.Serving(
        variant=choice.candidate.result.name,
        model_name=model_name(choice.candidate, settings),
        repository=f"{root}/model_repository",
        pool=pool,
        replicas=choice.replicas,
    )
    wanted = (
        manifests.triton_service(owner=owner),
        manifests.triton_deployment(
            owner=owner, spec=spec, serving=serving, digest=digest, settings=settings
        ),
    )
    # Unchanged children are not re-applied: a steady state costs reads only.
    return [
        m
        for m in wanted
        if observed.applied.get(f"{m['kind']}/{m['metadata']['name']}") != manifests.stamp(m)
    ]


def serve(
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    choice: Choice,
    observed: Observed,
    settings: config.Settings,
) -> Serving:
    """Children, endpoints, replica counts and the serving conditions."""
    apply = children(owner, spec, choice, observed, settings)
    picked, name = choice.candidate, model_name(choice.candidate, settings)
    variant, pool = picked.result.name, picked.pool.name
    svc = f"{names.service(owner.name)}.{owner.namespace}.svc"
    endpoints = models.Endpoints(
        http=f"http://{svc}:{manifests.HTTP_PORT}",
        grpc=f"{svc}:{manifests.GRPC_PORT}",
        metrics=f"http://{svc}:{manifests.METRICS_PORT}/metrics",
        model_name=name,
    )
    dep = observed.deployment
    ready_replicas = dep.ready_replicas if dep else 0
    replicas = models.Replicas(desired=choice.replicas, ready=min(ready_replicas, 1000))
    # Deployed: the Deployment serving the choice exists, either as observed or as applied in this pass (the
    # status is written only after the apply succeeded). Ready waits for the rollout itself.
    applying = any(m["kind"] == "Deployment" for m in apply)
    serving_now = dep is not None and dep.variant == variant and dep.pool == pool
    current = applying or serving_now
    conds = [
        conditions.Condition(
            type="Deployed",
            status="True" if current else "Unknown",
            reason="DeploymentUpdated" if current else "DeploymentRollingOut",
            message=f"Triton serves {variant} on {pool}" if current else f"rolling out {variant} on {pool}",
        ),
        _suspended(spec),
    ]
    rolled_out = serving_now and not applying and dep is not None and dep.rolled_out
    ready = not spec.suspend and rolled_out and ready_replicas >= 1
    conds.append(_ready(spec, stored, rolled_out, ready, ready_replicas, choice.replicas, name, pool))
    return Serving(apply=apply, endpoints=endpoints, replicas=replicas, conditions=conds, ready=ready)


def _suspended(spec: models.OptimizedModelSpec) -> conditions.Condition:
    return conditions.Condition(
        type="Suspended",
        status="True" if spec.suspend else "False",
        reason="Suspended" if spec.suspend else "Active",
        message="spec.suspend is true: scaled to zero, artifacts kept" if spec.suspend else "serving",
    )


def _ready(
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    rolled_out: bool,
    ready: bool,
    ready_replicas: int,
    desired: int,
    name: str,
    pool: str,
) -> conditions.Condition:
    def not_ready(reason: str, message: str) -> conditions.Condition:
        return conditions.Condition(type="Ready", status="False", reason=reason, message=message)

    if spec.suspend:
        return not_ready("Suspended", "spec.suspend is true: scaled to zero")
    if ready:
        return conditions.Condition(
            type="Ready",
            status="True",
            reason="Serving",
            message=f"{ready_replicas}/{desired} replicas serve {name} on {pool}",
        )
    before = conditions.find(stored.conditions, "Ready")
    if rolled_out and before is not None and before.reason in ("Serving", "ReplicasUnavailable"):
        # It served, and none is ready now: a replica died or its node went away; the Deployment replaces it.
        return not_ready(
            "ReplicasUnavailable",
            f"0/{desired} Triton replicas ready: waiting for the Deployment to replace them",
        )
    return not_ready("RollingOut", f"{ready_replicas}/{desired} Triton replicas ready")
