"""kopf glue: thin handlers that read inputs, call the pure pipeline and hand its plan to `k8s`.

Run with `kopf run --standalone --all-namespaces -m thrifty_operator.handlers`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import kopf
import pydantic

from . import (
    conditions,
    config,
    k8s,
    loadprobe,
    manifests,
    names,
    pipeline,
    pricing,
    promload,
    scaling,
    telemetry,
)
from .api import models
from .cost import metrics

SETTINGS = config.Settings()
RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)
log = logging.getLogger(__name__)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Operator-wide tuning; every non-default value says why."""
    # kopf's bookkeeping lives in annotations under our prefix, never in the user's status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=models.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=models.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER
    # Our own Events are posted explicitly; kopf's log records become Events only for warnings and errors.
    settings.posting.level = logging.WARNING
    # Reconnect watches every 5 minutes instead of relying on the server's default of up to an hour.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    # Handlers do blocking API calls in threads; enough workers for many models reconciling at once.
    settings.execution.max_workers = 32
    # A deleted model waits for its timer to finish a running reconcile (a thread cannot be cancelled).
    # kopf's defaults check again only after 60 s, so `kubectl delete` hung for a minute whenever the
    # deletion met a running timer; a reconcile takes a few seconds at most.
    settings.background.instant_exit_timeout = 10.0
    settings.background.cancellation_polling = 2.0
    if SETTINGS.metrics_port:
        telemetry.serve(SETTINGS.metrics_port)


def _catalogue() -> config.PoolCatalogue:
    try:
        return config.load_catalogue(SETTINGS.pool_catalogue)
    except (OSError, pydantic.ValidationError, ValueError) as err:
        raise kopf.TemporaryError(
            f"pool catalogue {SETTINGS.pool_catalogue} unusable: {err}", delay=30
        ) from err


def _price_of(pool: config.Pool, spec: models.OptimizedModelSpec) -> Decimal:
    return pricing.replica_price(
        pool, spec.serving.resources.requests.cpu, spec.serving.resources.requests.memory
    )


def _changed(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in new.items() if stored.get(key) != value}


def reconcile(
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    spec: dict[str, Any],
    status: dict[str, Any],
    patch: kopf.Patch,
    body: kopf.Body,
    memo: kopf.Memo | None = None,
) -> None:
    """Level-based reconcile shared by create, update, resume and the timer; the timer (with `memo`) also
    scales under the budgets."""
    try:
        typed = models.OptimizedModelSpec.model_validate(spec)
    except pydantic.ValidationError as err:
        # The CRD schema admits nothing this rejects; an older stored object might. Report, don't retry.
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        invalid = conditions.Condition(
            type="Ready", status="False", reason="InvalidSpec", message=f"spec.{where}: {first['msg']}"
        )
        patch.status["conditions"] = conditions.merge(status.get("conditions") or [], [invalid], generation)
        raise kopf.PermanentError(f"invalid spec.{where}: {first['msg']}") from err
    owner = manifests.Owner(name=name, namespace=namespace, uid=uid)
    try:
        # Once every pool's measurements are recorded in status, Jobs need not even be read.
        jobs_needed = not pipeline.fully_recorded(typed, status)
        observed = k8s.observe(namespace, name, names.artifact_digest(typed), list_jobs=jobs_needed)
        for job_name, state in observed.jobs.items():
            if state.phase in ("Succeeded", "Failed") and not state.persisted and state.message is not None:
                k8s.keep_summary(namespace, job_name, state)
                telemetry.job_finished(state.component, state.phase, state.duration_seconds)
        for job_name in pipeline.jobs_to_adopt(observed, uid):
            owned = bool(observed.jobs[job_name].owners)
            k8s.adopt_job(namespace, job_name, owner.reference(controller=False), owned=owned)
        result = pipeline.plan(
            owner=owner,
            generation=generation,
            spec=typed,
            stored_status=status,
            observed=observed,
            catalogue=_catalogue(),
            settings=SETTINGS,
            price_of=_price_of,
            scaler=_scaler(name, namespace, body, status, typed, memo) if memo is not None else None,
        )
        if result.create_jobs and SETTINGS.artifact_store == "pvc":
            k8s.ensure_claim(manifests.artifacts_claim(namespace=namespace, settings=SETTINGS))
        for job in result.create_jobs:
            if k8s.create_job(job):
                kopf.event(
                    body, type="Normal", reason="JobCreated", message=f"created Job {job['metadata']['name']}"
                )
        for manifest in result.apply:
            k8s.apply(manifest)
    except k8s.ApiError as err:
        if err.retryable:
            raise kopf.TemporaryError(str(err), delay=10) from err
        kopf.warn(body, reason="ApiRequestFailed", message=str(err))
        raise kopf.TemporaryError(str(err), delay=60) from err
    # kopf.event posts regardless of `posting.level`, which only filters kopf's own log records.
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    written = dict(status)
    for key, value in _changed(status, result.status).items():
        if key in ("cost", "scaling") and not _due(status, result.status, key):
            continue
        patch.status[key] = value
        written[key] = value
    telemetry.record(namespace, name, written)


def _due(stored: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    """Cost and scaling change every pass; write them when something a reader cares about changed or at
    most every `cost_update_interval_seconds` (the policy's memory stays in `memo` in between)."""
    before, after = stored.get(key) or {}, new.get(key) or {}
    watched = ("ratePerHour", "budget") if key == "cost" else ("replicas", "variant", "pool", "reason")
    if any(before.get(k) != after.get(k) for k in watched):
        return True
    last = (stored.get("cost") or {}).get("lastAccounted")
    if not last:
        return True
    age = datetime.datetime.now(datetime.UTC) - datetime.datetime.fromisoformat(last.replace("Z", "+00:00"))
    return age.total_seconds() >= SETTINGS.cost_update_interval_seconds


def _load(namespace: str, name: str, memo: kopf.Memo) -> tuple[metrics.LoadSample | None, int]:
    """Triton's load (None when unknown: the policy then holds the fleet) and the ready replicas."""
    pods = k8s.triton_pods(namespace, name)
    if SETTINGS.prometheus_url is None:
        return loadprobe.scrape(pods, memo.setdefault("scrapes", {}))
    match = promload.selector(
        namespace, names.deployment(name), SETTINGS.prometheus_namespace_label, SETTINGS.prometheus_pod_label
    )
    try:
        load = promload.load(SETTINGS.prometheus_url, match, SETTINGS.prometheus_rate_window)
    except promload.PrometheusError as err:
        log.warning("load of %s/%s from Prometheus: %s", namespace, name, err)
        load = None
    return load, len(loadprobe.ready_pods(pods))


def _scaler(
    name: str,
    namespace: str,
    body: kopf.Body,
    status: Mapping[str, Any],
    spec: models.OptimizedModelSpec,
    memo: kopf.Memo,
) -> pipeline.Scaler:
    """Bind the pure policy to this model's inputs, gathered only when the pipeline reaches serving."""

    def scale(options: Sequence[pipeline.Candidate], default: pipeline.Candidate) -> pipeline.ScaleChoice:
        load, ready = _load(namespace, name, memo)
        ns_annotations = k8s.namespace_annotations(namespace)
        keys = (models.BUDGET_PER_HOUR_ANNOTATION, models.BUDGET_PER_MONTH_ANNOTATION)
        demand = k8s.model_rates(namespace) if any(k in ns_annotations for k in keys) else {}
        # The policy's memory between status writes lives in memo; after a restart, status has the last copy.
        remembered = dict(status)
        if "scaling" in memo:
            remembered["scaling"] = memo["scaling"]
        inputs = scaling.Inputs(
            now=datetime.datetime.now(datetime.UTC),
            spec=spec,
            annotations=dict(body.metadata.annotations),
            namespace_annotations=ns_annotations,
            namespace_demand=demand,
            model=name,
            stored_status=remembered,
            candidates=options,
            load=load,
            ready_replicas=ready,
            sync_seconds=SETTINGS.status_interval_seconds,
        )
        decided = scaling.decide(inputs, _catalogue(), default)
        memo["scaling"] = decided.scaling
        return decided

    return scale


def _reconcile_event(kwargs: Mapping[str, Any], memo: kopf.Memo | None, handler: str) -> None:
    meta = kwargs["meta"]
    with telemetry.timed(handler):
        reconcile(
            name=kwargs["name"],
            namespace=kwargs["namespace"] or "default",
            uid=kwargs["uid"],
            generation=int(meta.get("generation") or 0),
            spec=dict(kwargs["spec"]),
            status=dict(kwargs["status"]),
            patch=kwargs["patch"],
            body=kwargs["body"],
            memo=memo,
        )


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def on_change(**kwargs: Any) -> None:
    """Create, update and operator restart: reconcile now."""
    _reconcile_event(kwargs, memo=None, handler="change")


@kopf.timer(*RESOURCE, interval=SETTINGS.status_interval_seconds, initial_delay=2.0)
def on_timer(memo: kopf.Memo, **kwargs: Any) -> None:
    """Observed state changes (Jobs finishing, pods becoming ready) move the pipeline on; load and budgets
    rescale the deployment."""
    _reconcile_event(kwargs, memo=memo, handler="timer")


@kopf.on.delete(*RESOURCE)
def on_delete(name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """Children carry owner references, so the garbage collector removes them; artifacts stay in the store."""
    logger.info("OptimizedModel %s/%s deleted; its Jobs, Deployment and Service follow", namespace, name)
    telemetry.forget(namespace or "default", name)
