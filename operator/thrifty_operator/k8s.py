"""The only module that talks to the Kubernetes API: observe children, create Jobs, apply the rest."""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    BatchV1Api,
    Configuration,
    CoreV1Api,
    NetworkingV1Api,
)
from kubernetes.client.exceptions import ApiException

from . import manifests, names
from .planning import observed

log = logging.getLogger(__name__)
FIELD_MANAGER = "thrifty-operator"


class ApiError(RuntimeError):
    """A Kubernetes API call failed; `retryable` tells a transient failure from a permanent one."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def _wrap(err: ApiException, what: str) -> ApiError:
    status = int(err.status) if err.status else None
    detail = err.reason
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.loads(err.body or "{}").get("message", detail)
    # Throttling, conflicts and server errors pass; RBAC and validation failures need a human.
    retryable = status is None or status in (409, 429) or status >= 500
    return ApiError(f"{what}: {status} {detail}", status=status, retryable=retryable)


@functools.lru_cache(maxsize=1)
def api_client() -> ApiClient:
    """A client configured from the pod's ServiceAccount, or the local kubeconfig outside a cluster."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = Configuration.get_default_copy()
    # One pooled connection per handler thread: the default pool of 4 would drop and re-handshake TLS
    # connections whenever more handlers than that run at once.
    configuration.connection_pool_maxsize = 40
    client = ApiClient(configuration)
    client.user_agent = "thrifty-operator/0.1.0"
    return client


def _job_phase(job: Mapping[str, Any]) -> observed.JobPhase:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "Succeeded"
        if cond.get("type") == "Failed":
            return "Failed"
    return "Running"


def _job_duration(job: Mapping[str, Any]) -> float | None:
    """Seconds from the Job's start to its completion or failure; None while it runs."""
    status = job.get("status") or {}
    ended = status.get("completionTime") or next(
        (
            c.get("lastTransitionTime")
            for c in status.get("conditions") or []
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        None,
    )
    if not ended or not status.get("startTime"):
        return None
    started = datetime.datetime.fromisoformat(str(status["startTime"]).replace("Z", "+00:00"))
    finished = datetime.datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
    return max(0.0, (finished - started).total_seconds())


def _termination_message(pods: list[dict[str, Any]], job: str) -> str | None:
    finished = []
    for pod in pods:
        if pod["metadata"].get("labels", {}).get("job-name") != job:
            continue
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                finished.append((terminated.get("finishedAt") or "", terminated.get("message")))
    finished.sort(key=lambda item: str(item[0]))
    return finished[-1][1] if finished else None


def _deployment_state(dep: Mapping[str, Any]) -> observed.DeploymentState:
    spec, status, meta = dep.get("spec", {}), dep.get("status", {}), dep["metadata"]
    template = spec.get("template", {}).get("metadata", {})
    replicas = int(spec.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    rolled_out = (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and updated >= replicas
        and int(status.get("replicas") or 0) <= replicas
    )
    return observed.DeploymentState(
        replicas=replicas,
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=updated,
        variant=template.get("annotations", {}).get(names.ANNOTATION_VARIANT),
        pool=template.get("labels", {}).get(names.LABEL_POOL),
        rolled_out=rolled_out,
    )


def _serialize(response: Any) -> Any:
    """The JSON body of a raw (`_preload_content=False`) response: parsing it is far cheaper than building
    the client's model objects, which matters with hundreds of models per operator."""
    return json.loads(response.data)


RAW: dict[str, Any] = {"_preload_content": False}


def observe(namespace: str, model: str, digest: str, *, list_jobs: bool = True) -> observed.Observed:
    """Read the Jobs of the model's artifacts (with their summaries) and the model's Triton Deployment."""
    client = api_client()
    selector = f"{names.LABEL_DIGEST}={digest}"
    batch = BatchV1Api(client)
    try:
        jobs = []
        if list_jobs:
            jobs = _serialize(batch.list_namespaced_job(namespace, label_selector=selector, **RAW))["items"]
        pods: list[dict[str, Any]] = []
        if any(_job_phase(j) != "Running" and _summary_annotation(j) is None for j in jobs):
            pods = _serialize(
                CoreV1Api(client).list_namespaced_pod(namespace, label_selector=selector, **RAW)
            )["items"]
        dep = _read_or_none(
            lambda: AppsV1Api(client).read_namespaced_deployment(names.deployment(model), namespace, **RAW)
        )
        svc = _read_or_none(
            lambda: CoreV1Api(client).read_namespaced_service(names.service(model), namespace, **RAW)
        )
    except ApiException as err:
        raise _wrap(err, f"reading children of {namespace}/{model}") from err
    applied = {
        f"{kind}/{obj['metadata']['name']}": (obj["metadata"].get("annotations") or {}).get(
            manifests.APPLIED_HASH_ANNOTATION, ""
        )
        for kind, obj in (("Deployment", dep), ("Service", svc))
        if obj is not None
    }
    states = {}
    for job in jobs:
        name = job["metadata"]["name"]
        owners = tuple(str(ref["uid"]) for ref in job["metadata"].get("ownerReferences") or [])
        component = str((job["metadata"].get("labels") or {}).get(names.LABEL_COMPONENT, ""))
        duration = _job_duration(job)
        kept = _summary_annotation(job)
        if kept is not None:
            # Written only after the Job finished, so it outlives garbage-collected pods.
            phase: observed.JobPhase = "Failed" if kept.startswith("failed:") else "Succeeded"
            states[name] = observed.JobState(
                phase=phase,
                message=kept.removeprefix("failed:"),
                persisted=True,
                owners=owners,
                component=component,
                duration_seconds=duration,
            )
            continue
        phase = _job_phase(job)
        message = _termination_message(pods, name) if phase != "Running" else None
        states[name] = observed.JobState(
            phase=phase, message=message, owners=owners, component=component, duration_seconds=duration
        )
    return observed.Observed(jobs=states, deployment=_deployment_state(dep) if dep else None, applied=applied)


def _read_or_none(read: Callable[[], Any]) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = _serialize(read())
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return found


def _summary_annotation(job: Mapping[str, Any]) -> str | None:
    value = (job["metadata"].get("annotations") or {}).get(names.ANNOTATION_SUMMARY)
    return str(value) if value is not None else None


def keep_summary(namespace: str, job: str, state: observed.JobState) -> None:
    """Copy a finished Job's termination message onto the Job, where it survives pod garbage collection."""
    value = ("failed:" if state.phase == "Failed" else "") + (state.message or "")
    body = {"metadata": {"annotations": {names.ANNOTATION_SUMMARY: value}}}
    try:
        BatchV1Api(api_client()).patch_namespaced_job(job, namespace, body, **RAW)
    except ApiException as err:
        raise _wrap(err, f"annotating Job {job}") from err


def adopt_job(namespace: str, job: str, reference: Mapping[str, Any], *, owned: bool) -> None:
    """Add an owner reference to a shared Job (a JSON patch appends it; the others stay). `owned`: the Job
    has owners already (JSON patch cannot append to a list that is not there)."""
    body = [
        {"op": "add", "path": "/metadata/ownerReferences/-", "value": dict(reference)}
        if owned
        else {"op": "add", "path": "/metadata/ownerReferences", "value": [dict(reference)]}
    ]
    try:
        BatchV1Api(api_client()).patch_namespaced_job(
            job, namespace, body, _content_type="application/json-patch+json", **RAW
        )
    except ApiException as err:
        if err.status != 404:  # gone meanwhile: nothing to keep alive
            raise _wrap(err, f"adding an owner to Job {job}") from err


def create_job(manifest: dict[str, Any]) -> bool:
    """Create a Job; False when it exists already (an earlier run, or another model with the same artifacts,
    created it: it is used as it is)."""
    meta = manifest["metadata"]
    batch = BatchV1Api(api_client())
    try:
        batch.create_namespaced_job(meta["namespace"], manifest, **RAW)  # type: ignore[arg-type]
    except ApiException as err:
        if err.status != 409:
            raise _wrap(err, f"creating Job {meta['name']}") from err
    else:
        return True
    return False


def ensure_claim(manifest: dict[str, Any]) -> None:
    """Create the namespace's artifact PersistentVolumeClaim unless it exists."""
    client = api_client()
    meta = manifest["metadata"]
    try:
        CoreV1Api(client).create_namespaced_persistent_volume_claim(meta["namespace"], manifest, **RAW)  # type: ignore[arg-type]
    except ApiException as err:
        if err.status != 409:
            raise _wrap(err, f"creating PersistentVolumeClaim {meta['name']}") from err


def apply(manifest: dict[str, Any]) -> None:
    """Server-side apply a Deployment, Service or NetworkPolicy, owning exactly the fields Thrifty sets."""
    client = api_client()
    meta = manifest["metadata"]
    kwargs: dict[str, Any] = {
        "field_manager": FIELD_MANAGER,
        "force": True,
        "_content_type": "application/apply-patch+yaml",
        **RAW,
    }
    try:
        if manifest["kind"] == "Deployment":
            AppsV1Api(client).patch_namespaced_deployment(meta["name"], meta["namespace"], manifest, **kwargs)
        elif manifest["kind"] == "Service":
            CoreV1Api(client).patch_namespaced_service(meta["name"], meta["namespace"], manifest, **kwargs)
        elif manifest["kind"] == "NetworkPolicy":
            NetworkingV1Api(client).patch_namespaced_network_policy(
                meta["name"], meta["namespace"], manifest, **kwargs
            )
        else:
            raise ValueError(f"apply does not handle {manifest['kind']}")
    except ApiException as err:
        raise _wrap(err, f"applying {manifest['kind']} {meta['name']}") from err


def triton_pods(namespace: str, model: str) -> list[dict[str, Any]]:
    """The model's Triton pods (IPs and readiness, for metrics scraping)."""
    client = api_client()
    try:
        pods = CoreV1Api(client).list_namespaced_pod(
            namespace, label_selector=f"{names.LABEL_MODEL}={model},{names.LABEL_COMPONENT}=triton", **RAW
        )
    except ApiException as err:
        raise _wrap(err, f"listing Triton pods of {namespace}/{model}") from err
    items: list[dict[str, Any]] = _serialize(pods)["items"]
    return items
