"""The reconciler's pure core: from an OptimizedModel and its observed children to desired children, status.

Level-based: every call recomputes everything from what exists now (Jobs, their termination messages, the
Deployment), so a restarted operator continues where the previous one stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from . import conditions, config, manifests, names, summary
from .api import models

JobPhase = Literal["Missing", "Running", "Succeeded", "Failed"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobState:
    """A child Job as observed."""

    phase: JobPhase
    message: str | None = None
    """Termination message of the Job's last finished pod."""
    persisted: bool = False
    """The message is already kept on the Job itself."""
    owners: tuple[str, ...] = ()
    """UIDs of the Job's owners: every model whose artifacts it makes (Jobs are content-addressed)."""
    component: str = ""
    """`convert` or `profile`, from the Job's component label."""
    duration_seconds: float | None = None
    """From the Job's start to its completion or failure, once finished."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeploymentState:
    """The Triton Deployment as observed."""

    replicas: int
    ready_replicas: int
    updated_replicas: int
    variant: str | None
    pool: str | None
    rolled_out: bool
    """The Deployment controller observed the latest template and every replica runs it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observed:
    """Everything the reconciler reads besides the OptimizedModel itself."""

    jobs: Mapping[str, JobState]
    deployment: DeploymentState | None
    applied: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """`<Kind>/<name>` of existing children → the hash of the manifest last applied to them."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """A Kubernetes Event to post on the OptimizedModel."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """What the I/O layer should do."""

    create_jobs: list[dict[str, Any]]
    apply: list[dict[str, Any]]
    status: dict[str, Any]
    events: list[Event]
    ready: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidate:
    """A measured (variant, pool) pair."""

    pool: config.Pool
    result: summary.VariantResult
    cost_per_million: Decimal | None
    feasible: bool
    why_not: str | None


PriceOf = Callable[[config.Pool, models.OptimizedModelSpec], Decimal]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScaleChoice:
    """The budget-aware scaler's decision (see `scaling`) and what to record of it."""

    variant: str
    pool: str
    replicas: int
    cost: dict[str, Any]
    scaling: dict[str, Any]
    conditions: list[conditions.Condition]
    events: list[Event]


Scaler = Callable[[Sequence["Candidate"], "Candidate"], ScaleChoice]


def jobs_to_adopt(observed: Observed, owner_uid: str) -> list[str]:
    """Shared Jobs this model uses but does not own yet: it joins their owners, so deleting the model that
    created a Job never garbage-collects it while another still needs it."""
    return sorted(name for name, state in observed.jobs.items() if owner_uid not in state.owners)


def cost_per_million(price_per_hour: Decimal, throughput_per_s: float) -> Decimal:
    """Price of one million inferences at a sustained throughput."""
    return price_per_hour / (Decimal(str(throughput_per_s)) * 3600) * 1_000_000


def _job_condition(
    type_: str, state: JobState | None, job: str, stage: str
) -> tuple[conditions.Condition, summary.JobSummary | None]:
    parsed = summary.parse(state.message) if state else None
    if state is None or state.phase == "Missing":
        return conditions.Condition(
            type=type_, status="Unknown", reason=f"{stage}Pending", message=f"Job {job} created"
        ), None
    if state.phase == "Running":
        return conditions.Condition(
            type=type_, status="Unknown", reason=f"{stage}Running", message=f"Job {job} is running"
        ), None
    if state.phase == "Failed":
        detail = (
            (parsed.error if parsed and parsed.error else None) or _last_line(state.message) or "no message"
        )
        return conditions.Condition(
            type=type_, status="False", reason=f"{stage}Failed", message=f"Job {job} failed: {detail}"
        ), parsed
    return conditions.Condition(
        type=type_, status="True", reason=f"{stage}Succeeded", message=f"Job {job} succeeded"
    ), parsed


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def candidates(
    spec: models.OptimizedModelSpec,
    measured: Sequence[tuple[config.Pool, summary.JobSummary]],
    price_of: PriceOf,
) -> list[Candidate]:
    """Every measured variant on every pool, with its cost per million inferences and feasibility."""
    target = spec.optimization.latency_target_ms
    out: list[Candidate] = []
    for pool, job_summary in measured:
        price = price_of(pool, spec)
        for result in job_summary.variants:
            why_not: str | None = None
            cost: Decimal | None = None
            if not result.ok:
                why_not = result.status
            elif result.p99_ms is not None and result.p99_ms > target:
                why_not = f"p99 {result.p99_ms:.1f} ms exceeds the {target} ms target"
            if result.ok and result.throughput_per_s:
                cost = cost_per_million(price, result.throughput_per_s)
            out.append(
                Candidate(
                    pool=pool, result=result, cost_per_million=cost, feasible=why_not is None, why_not=why_not
                )
            )
    return out


def select(spec: models.OptimizedModelSpec, options: Sequence[Candidate]) -> Candidate | None:
    """The cheapest feasible candidate per million inferences; pool preference order, then p99, break ties."""
    order = {name: i for i, name in enumerate(spec.serving.pools)}
    feasible = [c for c in options if c.feasible and c.cost_per_million is not None]
    if not feasible:
        return None
    return min(
        feasible,
        key=lambda c: (c.cost_per_million, order.get(c.pool.name, 99), c.result.p99_ms or 0.0, c.result.name),
    )


def _fmt(value: Decimal | float | None, places: int = 4) -> str | None:
    if value is None:
        return None
    return f"{Decimal(str(value)):.{places}f}"


def _measured_variant(c: Candidate) -> dict[str, Any]:
    r = c.result
    entry = {
        "name": r.name[:63],
        "pool": c.pool.name,
        "format": r.format,
        "precision": r.precision,
        "status": (r.status if c.feasible or not r.ok else f"infeasible: {c.why_not}")[:1024],
        "latencyP99Ms": _fmt(r.p99_ms, 3),
        "throughputPerSecond": _fmt(r.throughput_per_s, 2),
        "costPerMillion": _fmt(c.cost_per_million, 4),
        "accuracy": r.parity[:256] if r.parity else None,
        "sizeBytes": r.size_bytes,
    }
    return {k: v for k, v in entry.items() if v is not None}


def _serving_choice(
    spec: models.OptimizedModelSpec,
    stored_status: Mapping[str, Any],
    options: Sequence[Candidate],
    default: Candidate,
    observed: Observed,
    scaler: Scaler | None,
    reason: str,
) -> tuple[Candidate, int, str, ScaleChoice | None]:
    """The scaler's fresh decision, or else the last recorded one while it is still feasible."""
    last = stored_status.get("scaling") or {}
    by_key = {(c.result.name, c.pool.name): c for c in options if c.feasible}
    if scaler is not None:
        decided = scaler(options, default)
        chosen = by_key.get((decided.variant, decided.pool), default)
        note = (
            reason
            if chosen is default
            else f"{chosen.result.name} on {chosen.pool.name}: {decided.scaling['message']}"
        )
        return chosen, decided.replicas, note, decided
    kept = by_key.get((str(last.get("variant")), str(last.get("pool"))))
    if kept is not None and isinstance(last.get("replicas"), int):
        replicas = (
            0
            if spec.suspend
            else min(max(last["replicas"], spec.serving.min_replicas), spec.serving.max_replicas)
        )
        note = (
            reason
            if kept is default
            else f"{kept.result.name} on {kept.pool.name}: the budget-aware scaler's choice"
        )
        return kept, replicas, note, None
    return default, _initial_replicas(spec, observed.deployment), reason, None


def _record_scaling(
    decided: ScaleChoice | None,
    choice: Candidate,
    status: dict[str, Any],
    computed: list[conditions.Condition],
    events: list[Event],
) -> None:
    """Write a fresh scaler decision into the status being built."""
    if decided is None:
        return
    status["cost"] = decided.cost
    status["scaling"] = decided.scaling | {"variant": choice.result.name, "pool": choice.pool.name}
    computed.extend(decided.conditions)
    events.extend(decided.events)


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
class Recorded:
    """What the stored status already holds for the current artifact digest."""

    converted: bool
    pools: Mapping[str, summary.JobSummary]


def recorded(stored_status: Mapping[str, Any], digest: str) -> Recorded:
    """Measurements kept in status: once recorded, a model no longer depends on its (shared) Jobs, which may
    be garbage-collected with the model that created them."""
    if (stored_status.get("artifacts") or {}).get("sourceDigest") != digest:
        return Recorded(converted=False, pools={})
    by_pool: dict[str, list[summary.VariantResult]] = {}
    for v in stored_status.get("variants") or []:
        status = str(v.get("status", ""))
        # "infeasible" depends on the latency target, not on the measurement: re-judge it every time.
        raw = "ok" if status.startswith("infeasible:") else status
        by_pool.setdefault(v["pool"], []).append(
            summary.VariantResult(
                name=v["name"],
                format=v.get("format"),
                precision=v.get("precision"),
                status=raw,
                p99_ms=float(v["latencyP99Ms"]) if v.get("latencyP99Ms") else None,
                throughput_per_s=float(v["throughputPerSecond"]) if v.get("throughputPerSecond") else None,
                size_bytes=v.get("sizeBytes"),
                parity=v.get("accuracy"),
            )
        )
    converted = conditions.is_true(stored_status.get("conditions") or [], "Converted")
    return Recorded(
        converted=converted, pools={k: summary.JobSummary(variants=v) for k, v in by_pool.items()}
    )


def fully_recorded(spec: models.OptimizedModelSpec, stored_status: Mapping[str, Any]) -> bool:
    """Whether status holds the conversion and every pool's profile for the spec's artifacts."""
    rec = recorded(stored_status, names.artifact_digest(spec))
    return rec.converted and all(pool in rec.pools for pool in spec.serving.pools)


def _profiles(
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    digest: str,
    pools: Sequence[config.Pool],
    observed: Observed,
    settings: config.Settings,
    price_of: PriceOf,
    rec: Recorded,
) -> tuple[list[tuple[config.Pool, summary.JobSummary]], list[str], list[str], list[dict[str, Any]]]:
    """Per pool: its profile summary, or that it is pending or failed; and the Jobs still to create."""
    measured: list[tuple[config.Pool, summary.JobSummary]] = []
    pending: list[str] = []
    failed: list[str] = []
    to_create: list[dict[str, Any]] = []
    for pool in pools:
        job = names.profile_job(pool.name, digest)
        state = observed.jobs.get(job)
        if (state is None or state.phase == "Missing") and pool.name in rec.pools:
            measured.append((pool, rec.pools[pool.name]))
            continue
        if state is None or state.phase == "Missing":
            to_create.append(
                manifests.profile_job(
                    owner=owner,
                    spec=spec,
                    digest=digest,
                    pool=pool,
                    price_per_hour=price_of(pool, spec),
                    settings=settings,
                )
            )
        cond, parsed = _job_condition("Optimized", state, job, "Profiling")
        if cond.status == "Unknown":
            pending.append(pool.name)
        elif cond.status == "False" or parsed is None:
            failed.append(f"{pool.name}: {cond.message}")
        else:
            measured.append((pool, parsed))
    return measured, pending, failed, to_create


def plan(
    *,
    owner: manifests.Owner,
    generation: int,
    spec: models.OptimizedModelSpec,
    stored_status: Mapping[str, Any],
    observed: Observed,
    catalogue: config.PoolCatalogue,
    settings: config.Settings,
    price_of: PriceOf,
    scaler: Scaler | None = None,
) -> Plan:
    """Compute the desired children and status.

    With a `scaler` (the periodic pass, which has fresh load metrics) the budget-aware policy chooses variant,
    pool and replicas; without one, the last decision recorded in status stands.
    """
    computed: list[conditions.Condition] = []
    scale_events: list[Event] = []
    create_jobs: list[dict[str, Any]] = []
    apply: list[dict[str, Any]] = []
    status: dict[str, Any] = {"observedGeneration": generation}
    digest = names.artifact_digest(spec)
    status["artifacts"] = {
        "uri": manifests.store_uri(settings, digest),
        "sourceDigest": digest,
    }

    def finish(ready: bool) -> Plan:
        stored_conditions = stored_status.get("conditions", [])
        merged = conditions.merge(stored_conditions, computed, generation)
        status["conditions"] = merged
        return Plan(
            create_jobs=create_jobs,
            apply=apply,
            status=status,
            events=_events(stored_conditions, merged) + scale_events,
            ready=ready,
        )

    def not_ready(reason: str, message: str, **others: conditions.Condition) -> Plan:
        computed.extend(others.values())
        computed.append(conditions.Condition(type="Ready", status="False", reason=reason, message=message))
        return finish(False)

    # Unknown pools are a permanent problem until the spec or the catalogue changes: report, don't retry.
    pools = [p for p in (catalogue.get(name) for name in spec.serving.pools) if p is not None]
    unknown = [name for name in spec.serving.pools if catalogue.get(name) is None]
    if unknown:
        return not_ready(
            "UnknownPool", f"spec.serving.pools names {', '.join(unknown)}, not in the pool catalogue"
        )
    cpu_pools = [p for p in pools if not p.is_gpu] or [p for p in catalogue.pools if not p.is_gpu]
    if not cpu_pools:
        return not_ready("NoCPUPool", "the pool catalogue has no CPU pool to run the conversion Job on")

    # 1. Conversion on a CPU pool.
    convert_name = names.convert_job(digest)
    convert_state = observed.jobs.get(convert_name)
    rec = recorded(stored_status, digest)
    if rec.converted and (convert_state is None or convert_state.phase == "Missing"):
        convert_state = JobState(phase="Succeeded", message=None)
    if convert_state is None or convert_state.phase == "Missing":
        create_jobs.append(
            manifests.convert_job(
                owner=owner,
                spec=spec,
                digest=digest,
                pool=cpu_pools[0],
                price_per_hour=price_of(cpu_pools[0], spec),
                settings=settings,
            )
        )
    converted, _ = _job_condition("Converted", convert_state, convert_name, "Conversion")
    computed.append(converted)
    if converted.status != "True":
        reason = "ConversionFailed" if converted.status == "False" else "Converting"
        return not_ready(reason, converted.message)

    # 2. Profiling (and GPU builds) on every candidate pool.
    measured, pending, failed, profile_jobs = _profiles(
        owner, spec, digest, pools, observed, settings, price_of, rec
    )
    create_jobs.extend(profile_jobs)
    options = candidates(spec, measured, price_of)
    status["variants"] = [_measured_variant(c) for c in options][:128]
    if pending:
        computed.append(
            conditions.Condition(
                type="Optimized",
                status="Unknown",
                reason="Profiling",
                message=f"profiling on pool(s) {', '.join(pending)}",
            )
        )
        return not_ready("Profiling", f"waiting for profiles from {', '.join(pending)}")
    choice = select(spec, options)
    if choice is None:
        reasons = [f"{c.result.name}@{c.pool.name}: {c.why_not}" for c in options if not c.feasible] + failed
        optimized = conditions.Condition(
            type="Optimized",
            status="False",
            reason="NoFeasibleVariant",
            message="no variant meets the accuracy gate and latency target; " + "; ".join(reasons)[:800],
        )
        return not_ready("NoFeasibleVariant", optimized.message, optimized=optimized)
    reason = (
        f"{choice.result.name} on {choice.pool.name}: cheapest per million inferences "
        f"({_fmt(choice.cost_per_million)}) with p99 {choice.result.p99_ms or 0:.1f} ms "
        f"within {spec.optimization.latency_target_ms} ms"
    )
    computed.append(
        conditions.Condition(type="Optimized", status="True", reason="VariantSelected", message=reason)
    )

    # 3. Serving: the scaler may trade the cheapest-per-inference choice for one the budget can pay for.
    choice, desired, reason, decided = _serving_choice(
        spec, stored_status, options, choice, observed, scaler, reason
    )
    _record_scaling(decided, choice, status, computed, scale_events)
    status["selected"] = {"variant": choice.result.name, "pool": choice.pool.name, "reason": reason}
    model_name = choice.result.model_name or choice.result.name
    if settings.triton_backend_mode == "python" and not choice.pool.is_gpu and not model_name.endswith("-py"):
        model_name = f"{model_name}-py"
    repository_root = (
        manifests.pool_dir(digest, choice.pool) if choice.pool.is_gpu else manifests.artifact_dir(digest)
    )
    serving = manifests.Serving(
        variant=choice.result.name,
        model_name=model_name,
        repository=f"{repository_root}/model_repository",
        pool=choice.pool,
        replicas=desired,
    )
    for manifest in (
        manifests.triton_service(owner=owner),
        manifests.triton_deployment(
            owner=owner, spec=spec, serving=serving, digest=digest, settings=settings
        ),
    ):
        # Unchanged children are not re-applied: a steady state costs reads only.
        key = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if observed.applied.get(key) != manifests.stamp(manifest):
            apply.append(manifest)
    svc = f"{names.service(owner.name)}.{owner.namespace}.svc"
    status["endpoints"] = {
        "http": f"http://{svc}:{manifests.HTTP_PORT}",
        "grpc": f"{svc}:{manifests.GRPC_PORT}",
        "metrics": f"http://{svc}:{manifests.METRICS_PORT}/metrics",
        "modelName": model_name,
    }
    dep = observed.deployment
    ready_replicas = dep.ready_replicas if dep else 0
    status["replicas"] = {"desired": desired, "ready": min(ready_replicas, 1000)}
    # Deployed: the Deployment serving the choice exists, either as observed or as applied in this pass (the
    # status is written only after the apply succeeded). Ready waits for the rollout itself.
    applying = any(m["kind"] == "Deployment" for m in apply)
    current = applying or (
        dep is not None and dep.variant == choice.result.name and dep.pool == choice.pool.name
    )
    computed.append(
        conditions.Condition(
            type="Deployed",
            status="True" if current else "Unknown",
            reason="DeploymentUpdated" if current else "DeploymentRollingOut",
            message=f"Triton serves {choice.result.name} on {choice.pool.name}"
            if current
            else f"rolling out {choice.result.name} on {choice.pool.name}",
        )
    )
    computed.append(
        conditions.Condition(
            type="Suspended",
            status="True" if spec.suspend else "False",
            reason="Suspended" if spec.suspend else "Active",
            message="spec.suspend is true: scaled to zero, artifacts kept" if spec.suspend else "serving",
        )
    )
    if spec.suspend:
        return not_ready("Suspended", "spec.suspend is true: scaled to zero")
    serving_now = dep is not None and dep.variant == choice.result.name and dep.pool == choice.pool.name
    rolled_out = serving_now and not applying and dep is not None and dep.rolled_out
    if not (rolled_out and dep and dep.ready_replicas >= 1):
        return not_ready(*_unready(stored_status, rolled_out, ready_replicas, desired))
    computed.append(
        conditions.Condition(
            type="Ready",
            status="True",
            reason="Serving",
            message=f"{ready_replicas}/{desired} replicas serve {model_name} on {choice.pool.name}",
        )
    )
    return finish(True)


def _unready(stored_status: Mapping[str, Any], rolled_out: bool, ready: int, desired: int) -> tuple[str, str]:
    """Reason and message of Ready=False while the Deployment serving the choice has no ready replica."""
    before = (conditions.find(stored_status.get("conditions", []), "Ready") or {}).get("reason")
    if rolled_out and before in ("Serving", "ReplicasUnavailable"):
        # It served, and none is ready now: a replica died or its node went away; the Deployment replaces it.
        return (
            "ReplicasUnavailable",
            f"0/{desired} Triton replicas ready: waiting for the Deployment to replace them",
        )
    return "RollingOut", f"{ready}/{desired} Triton replicas ready"


_EVENT_REASONS = {
    ("Converted", "True"): ("Normal", "ConversionSucceeded"),
    ("Converted", "False"): ("Warning", "ConversionFailed"),
    ("Optimized", "True"): ("Normal", "VariantSelected"),
    ("Optimized", "False"): ("Warning", "NoFeasibleVariant"),
    ("Deployed", "True"): ("Normal", "Deployed"),
    ("Ready", "True"): ("Normal", "Ready"),
    ("Suspended", "True"): ("Normal", "Suspended"),
}


def _events(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[Event]:
    """Events for condition transitions only, so a steady state posts nothing."""
    events: list[Event] = []
    for cond in after:
        previous = conditions.find(before, cond["type"])
        if previous and previous.get("status") == cond["status"] and previous.get("reason") == cond["reason"]:
            continue
        if cond["type"] == "Ready" and cond["status"] == "False":
            if cond["reason"] in {"UnknownPool", "NoCPUPool", "ReplicasUnavailable"}:
                events.append(Event(type="Warning", reason=cond["reason"], message=cond["message"]))
            continue
        kind = _EVENT_REASONS.get((cond["type"], cond["status"]))
        if kind:
            events.append(Event(type=kind[0], reason=kind[1], message=cond["message"]))  # type: ignore[arg-type]
    return events
