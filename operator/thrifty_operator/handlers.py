"""kopf glue: thin handlers that read inputs, call the pure planner and hand its plan to `k8s`.

Run with `kopf run --standalone --all-namespaces -m thrifty_operator.handlers`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
import pydantic

from thrifty_api import optimized_model as models
from thrifty_api import pools

from . import (
    conditions,
    config,
    indexes,
    k8s,
    loadprobe,
    manifests,
    names,
    pool_pricing,
    promload,
    status_io,
    telemetry,
)
from .cost import metrics
from .planning import measure, observed
from .planning import plan as planner

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


def _catalogue() -> pools.PoolCatalogue:
    try:
        return config.load_catalogue(SETTINGS.pool_catalogue)
    except (OSError, pydantic.ValidationError, ValueError) as err:
        raise kopf.TemporaryError(
            f"pool catalogue {SETTINGS.pool_catalogue} unusable: {err}", delay=30
        ) from err


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
    indexed: Indexed | None = None,
) -> None:
    """Level-based reconcile shared by create, update, resume and the timer: read, plan, write. The timer
    (with `memo`) also reads the load and scales under the budgets."""
    stored = status_io.read(status)
    typed = _valid_spec(spec, stored, generation, patch)
    owner = manifests.Owner(name=name, namespace=namespace, uid=uid)
    try:
        children = _observe(owner, typed, stored)
        catalogue = _catalogue()

        def planned(load: observed.Load | None) -> planner.Plan:
            return planner.plan(
                owner=owner,
                generation=generation,
                spec=typed,
                stored=stored,
                observed=children,
                catalogue=catalogue,
                settings=SETTINGS,
                price_of=pool_pricing.spec_replica_price,
                load=load,
            )

        result = planned(None)
        if memo is not None and result.serving:
            # Load and budgets are read only for a model being served; then it is planned again with them.
            assert indexed is not None, "timer passes carry the indexes"
            load = _load(name, namespace, body, memo, indexed)
            result = planned(load)
            telemetry.namespace_budget(namespace, load.namespace_annotations)
            # The policy's memory between status writes lives in memo; after a restart, status has a copy.
            memo["scaling"] = result.status.scaling
        _write_children(namespace, body, result)
    except k8s.ApiError as err:
        if err.retryable:
            raise kopf.TemporaryError(str(err), delay=10) from err
        kopf.warn(body, reason="ApiRequestFailed", message=str(err))
        raise kopf.TemporaryError(str(err), delay=60) from err
    # kopf.event posts regardless of `posting.level`, which only filters kopf's own log records.
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    written = _write_status(status, status_io.dump(result.status), patch)
    telemetry.record(namespace, name, status_io.read(written))


def _valid_spec(
    spec: dict[str, Any], stored: models.OptimizedModelStatus, generation: int, patch: kopf.Patch
) -> models.OptimizedModelSpec:
    try:
        return models.OptimizedModelSpec.model_validate(spec)
    except pydantic.ValidationError as err:
        # The CRD schema admits nothing this rejects; an older stored object might. Report, don't retry.
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        invalid = conditions.Condition(
            type="Ready", status="False", reason="InvalidSpec", message=f"spec.{where}: {first['msg']}"
        )
        merged = conditions.merge(stored.conditions, [invalid], generation)
        patch.status["conditions"] = [
            c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in merged
        ]
        raise kopf.PermanentError(f"invalid spec.{where}: {first['msg']}") from err


def _write_status(stored: dict[str, Any], new: dict[str, Any], patch: kopf.Patch) -> dict[str, Any]:
    """Patch the parts of status that changed (cost and scaling only when due); return it as written."""
    now = datetime.datetime.now(datetime.UTC)
    changes = status_io.changes(stored, new, now, SETTINGS.cost_update_interval_seconds)
    for key, value in changes.items():
        patch.status[key] = value
    return {**stored, **changes}


def _observe(
    owner: manifests.Owner, spec: models.OptimizedModelSpec, stored: models.OptimizedModelStatus
) -> observed.Observed:
    """The model's children; finished Jobs keep their summaries, shared Jobs gain this model as an owner."""
    # Once every pool's measurements are recorded in status, Jobs need not even be read.
    jobs_needed = not measure.fully_recorded(spec, stored)
    children = k8s.observe(owner.namespace, owner.name, names.artifact_digest(spec), list_jobs=jobs_needed)
    for job_name, state in children.jobs.items():
        if state.phase in ("Succeeded", "Failed") and not state.persisted and state.message is not None:
            k8s.keep_summary(owner.namespace, job_name, state)
            telemetry.job_finished(state.component, state.phase, state.duration_seconds)
    for job_name in planner.jobs_to_adopt(children, owner.uid):
        owned = bool(children.jobs[job_name].owners)
        k8s.adopt_job(owner.namespace, job_name, owner.reference(controller=False), owned=owned)
    return children


def _write_children(namespace: str, body: kopf.Body, result: planner.Plan) -> None:
    if result.create_jobs and SETTINGS.artifact_store == "pvc":
        k8s.ensure_claim(manifests.artifacts_claim(namespace=namespace, settings=SETTINGS))
    if result.create_jobs and SETTINGS.converter_network_policy:
        # Before the Jobs, so that no conversion pod runs a moment without it.
        k8s.apply(manifests.converter_network_policy(namespace=namespace, settings=SETTINGS))
    for job in result.create_jobs:
        if k8s.create_job(job):
            kopf.event(
                body, type="Normal", reason="JobCreated", message=f"created Job {job['metadata']['name']}"
            )
    for manifest in result.apply:
        k8s.apply(manifest)


def _sample(namespace: str, name: str, memo: kopf.Memo) -> tuple[metrics.LoadSample | None, int, str | None]:
    """Triton's load (None when unknown: the policy then holds the fleet), the ready replicas, and why the
    load is missing when that is a failure rather than a first scrape."""
    pods = k8s.triton_pods(namespace, name)
    if SETTINGS.prometheus_url is None:
        return loadprobe.scrape(pods, memo.setdefault("scrapes", {}))
    ready = len(loadprobe.ready_pods(pods))
    deployment = names.deployment(name)
    match = promload.selector(
        namespace, deployment, SETTINGS.prometheus_namespace_label, SETTINGS.prometheus_pod_label
    )
    try:
        load = promload.load(SETTINGS.prometheus_url, match, SETTINGS.prometheus_rate_window)
    except promload.PrometheusError as err:
        log.warning("load of %s/%s from Prometheus: %s", namespace, name, err)
        return None, ready, f"Prometheus at {SETTINGS.prometheus_url}: {err}"
    if load is None and ready:
        return (
            None,
            ready,
            f"Prometheus at {SETTINGS.prometheus_url} has no Triton series of {deployment}'s pods",
        )
    return load, ready, None


@kopf.index(*RESOURCE)
def model_rates(
    namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> dict[str, tuple[str, float]]:
    """Every model's spend rate by namespace (its share of a namespace budget), kept from kopf's watch."""
    return indexes.model_rate(namespace or "default", name, status)


@kopf.index("namespaces")
def namespace_budgets(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, dict[str, str]]:
    """Every Namespace's budget annotations, kept from a watch instead of a read per model per pass."""
    return indexes.namespace_budget(name, annotations)


@dataclasses.dataclass(frozen=True)
class Indexed:
    """The indexes a timer pass reads: namespace → models' (name, rate), namespace → budget annotations."""

    rates: Mapping[str, Iterable[tuple[str, float]]]
    budgets: Mapping[str, Iterable[Mapping[str, str]]]


def _load(name: str, namespace: str, body: kopf.Body, memo: kopf.Memo, indexed: Indexed) -> observed.Load:
    """What the budget-aware scaler reads: load, replicas, budgets and the namespace's demand."""
    sample, ready, load_error = _sample(namespace, name, memo)
    ns_annotations = indexes.budget_annotations(indexed.budgets.get(namespace, ()))
    demand = indexes.rates(indexed.rates.get(namespace, ())) if ns_annotations else {}
    remembered = memo.get("scaling")
    return observed.Load(
        now=datetime.datetime.now(datetime.UTC),
        annotations=dict(body.metadata.annotations),
        namespace_annotations=ns_annotations,
        namespace_demand=demand,
        sample=sample,
        load_error=load_error,
        ready_replicas=ready,
        remembered=remembered if isinstance(remembered, models.ScalingStatus) else None,
        sync_seconds=SETTINGS.status_interval_seconds,
    )


def _reconcile_event(kwargs: Mapping[str, Any], memo: kopf.Memo | None, handler: str) -> None:
    meta = kwargs["meta"]
    indexed = (
        Indexed(rates=kwargs["model_rates"], budgets=kwargs["namespace_budgets"])
        if memo is not None
        else None
    )
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
            indexed=indexed,
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
