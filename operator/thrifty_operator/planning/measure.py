"""The measure phase: every pool's profile, from its Job's summary or from what status already records, and
every measured (variant, pool) as a candidate with its cost per million inferences."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from thrifty_api import job_summary, pools
from thrifty_api import optimized_model as models

from .. import conditions, config, manifests, names
from .observed import JobState, Observed

PriceOf = Callable[[pools.Pool, models.OptimizedModelSpec], Decimal]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Candidate:
    """A measured (variant, pool) pair."""

    pool: pools.Pool
    result: job_summary.VariantResult
    cost_per_million: Decimal | None
    feasible: bool
    why_not: str | None

    @property
    def key(self) -> str:
        """`<variant>@<pool>`: how the policy names it."""
        return f"{self.result.name}@{self.pool.name}"


def cost_per_million(price_per_hour: Decimal, throughput_per_s: float) -> Decimal:
    """Price of one million inferences at a sustained throughput."""
    return price_per_hour / (Decimal(str(throughput_per_s)) * 3600) * 1_000_000


def job_condition(
    type_: str, state: JobState | None, job: str, stage: str
) -> tuple[conditions.Condition, job_summary.JobSummary | None]:
    """The condition a Job's phase gives, and its summary once it finished."""
    parsed = job_summary.parse(state.message) if state else None
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recorded:
    """What the stored status already holds for the current artifact digest."""

    converted: bool
    pools: Mapping[str, job_summary.JobSummary]


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def recorded(stored: models.OptimizedModelStatus, digest: str) -> Recorded:
    """Measurements kept in status: once recorded, a model no longer depends on its (shared) Jobs, which may
    be garbage-collected with the model that created them."""
    if stored.artifacts is None or stored.artifacts.source_digest != digest:
        return Recorded(converted=False, pools={})
    by_pool: dict[str, list[job_summary.VariantResult]] = {}
    for v in stored.variants:
        # "infeasible" depends on the latency target, not on the measurement: re-judge it every time.
        raw = "ok" if v.status.startswith("infeasible:") else v.status
        by_pool.setdefault(v.pool, []).append(
            job_summary.VariantResult(
                name=v.name,
                format=v.format,
                precision=v.precision,
                status=raw,
                p99_ms=_number(v.latency_p99_ms),
                throughput_per_s=_number(v.throughput_per_second),
                size_bytes=v.size_bytes,
                parity=v.accuracy,
            )
        )
    return Recorded(
        converted=conditions.is_true(stored.conditions, "Converted"),
        pools={k: job_summary.JobSummary(variants=v) for k, v in by_pool.items()},
    )


def fully_recorded(spec: models.OptimizedModelSpec, stored: models.OptimizedModelStatus) -> bool:
    """Whether status holds the conversion and every pool's profile for the spec's artifacts."""
    rec = recorded(stored, names.artifact_digest(spec))
    return rec.converted and all(pool in rec.pools for pool in spec.serving.pools)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profiles:
    """Every serving pool's profile, or that it is pending or failed; and the Jobs still to create."""

    measured: list[tuple[pools.Pool, job_summary.JobSummary]]
    pending: list[str]
    failed: list[str]
    create: list[dict[str, Any]]


def profiles(
    owner: manifests.Owner,
    spec: models.OptimizedModelSpec,
    serving_pools: Sequence[pools.Pool],
    observed: Observed,
    settings: config.Settings,
    price_of: PriceOf,
    rec: Recorded,
) -> Profiles:
    """Profiling (and GPU builds) on every candidate pool."""
    digest = names.artifact_digest(spec)
    out = Profiles(measured=[], pending=[], failed=[], create=[])
    for pool in serving_pools:
        job = names.profile_job(pool.name, digest)
        state = observed.jobs.get(job)
        missing = state is None or state.phase == "Missing"
        if missing and pool.name in rec.pools:
            out.measured.append((pool, rec.pools[pool.name]))
            continue
        if missing:
            price = price_of(pool, spec)
            out.create.append(
                manifests.profile_job(
                    owner=owner, spec=spec, digest=digest, pool=pool, price_per_hour=price, settings=settings
                )
            )
        cond, parsed = job_condition("Optimized", state, job, "Profiling")
        if cond.status == "Unknown":
            out.pending.append(pool.name)
        elif cond.status == "False":
            out.failed.append(f"{pool.name}: {cond.message}")
        elif parsed is None:
            out.failed.append(f"{pool.name}: Job {job} succeeded but left no readable summary")
        else:
            out.measured.append((pool, parsed))
    return out


def candidates(
    spec: models.OptimizedModelSpec,
    measured: Sequence[tuple[pools.Pool, job_summary.JobSummary]],
    price_of: PriceOf,
) -> list[Candidate]:
    """Every measured variant on every pool, with its cost per million inferences and feasibility."""
    target = spec.optimization.latency_target_ms
    out: list[Candidate] = []
    for pool, measurement in measured:
        price = price_of(pool, spec)
        for result in measurement.variants:
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


def fmt(value: Decimal | float | None, places: int = 4) -> str | None:
    """A decimal string for status (the API's numbers are strings: no floats in the schema); None for what
    no status field can hold (not finite, or longer than the schema's 32 characters)."""
    if value is None:
        return None
    number = Decimal(str(value))
    text = f"{number:.{places}f}"
    return text if number.is_finite() and len(text) <= 32 else None


def measured_variant(c: Candidate) -> models.MeasuredVariant:
    """The status entry of one candidate."""
    r = c.result
    return models.MeasuredVariant(
        name=r.name[:63],
        pool=c.pool.name,
        format=r.format,
        precision=r.precision,
        status=(r.status if c.feasible or not r.ok else f"infeasible: {c.why_not}")[:1024],
        latency_p99_ms=fmt(r.p99_ms, 3),
        throughput_per_second=fmt(r.throughput_per_s, 2),
        cost_per_million=fmt(c.cost_per_million, 4),
        accuracy=r.parity[:256] if r.parity else None,
        size_bytes=r.size_bytes,
    )
