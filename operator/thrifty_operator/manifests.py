"""Pure builders of the child objects: conversion and profiling Jobs, the Triton Deployment and Service.

Every builder returns a plain manifest dict with owner reference and labels set, so the I/O layer only
creates or patches what it is handed and tests assert on data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
from decimal import Decimal
from typing import Any

from thrifty_api import optimized_model as models
from thrifty_api import pools, variants

from . import config, names

ARTIFACTS_MOUNT = "/var/lib/thrifty/artifacts"
SOURCES_MOUNT = "/var/lib/thrifty/sources"
TERMINATION_LOG = "/dev/termination-log"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
# The S3 store's init container only downloads the model repository; the pod's request stays Triton's
# (the larger of init and app containers counts), so it costs nothing extra.
FETCH_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

# The images' unprivileged `thrifty` user; at or above 10000 so that it never maps to a host account.
_UID = 10001
_RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": _UID,
    "runAsGroup": _UID,
    "fsGroup": _UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


APPLIED_HASH_ANNOTATION = f"{models.GROUP}/applied-hash"

# Policy-scanner (checkov) findings that do not apply to a child, with the reason. checkov reads them from the
# object's `checkov.io/skipN: CHECK_ID=reason` annotations; tests/unit/test_policy_scan.py fails on any
# finding not explained here. A reason must not contain "=".
_SKIP_JOB_NETWORK_POLICY = (
    "CKV2_K8S_6",
    "converter.networkPolicy.enabled is false: the cluster's admin isolates conversion pods",
)
_SKIP_TRITON_NETWORK_POLICY = (
    "CKV2_K8S_6",
    "NetworkPolicies of a model namespace are its admin's: Thrifty does not know Triton's clients",
)
_SKIP_JOB_CPU_LIMIT = (
    "CKV_K8S_11",
    "a profiling Job has no CPU limit: CFS throttling would skew the latency it measures; it loads only what "
    "the conversion wrote, and the request reserves the CPU",
)
_SKIP_TRITON_CPU_LIMIT = (
    "CKV_K8S_11",
    "spec.serving.resources.limits sets no CPU limit: CFS throttling would raise Triton's p99 latency",
)
_SKIP_TRITON_MEMORY_LIMIT = (
    "CKV_K8S_13",
    "spec.serving.resources.limits sets no memory limit; pools are packed and priced on the request",
)
_SKIP_TAG = (
    ("CKV_K8S_43", "image by tag: pin it by digest (converter.image.digest, spec.serving.tritonImage)"),
    ("CKV_K8S_15", "image by tag with the default pull policy; a digest pins it"),
)
_SKIP_ENV_SECRETS = (
    "CKV_K8S_35",
    "the S3 client (boto3) reads its credentials from AWS_* environment variables",
)


def _policy_skips(pod: dict[str, Any], skips: list[tuple[str, str]]) -> dict[str, str]:
    """checkov skip annotations: `skips`, plus those that follow from the pod's images and Secrets."""
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    if any("@" not in c["image"] for c in containers):
        skips = [*skips, *_SKIP_TAG]
    if any("secretRef" in e for c in containers for e in c.get("envFrom", [])):
        skips = [*skips, _SKIP_ENV_SECRETS]
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, start=1)}


def stamp(manifest: dict[str, Any]) -> str:
    """Annotate `manifest` with a hash of its content (without the annotation); return the hash."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    annotations[APPLIED_HASH_ANNOTATION] = digest
    return digest


@dataclasses.dataclass(frozen=True, kw_only=True)
class Owner:
    """The OptimizedModel that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self, *, controller: bool = True) -> dict[str, Any]:
        """Owner reference: garbage collection deletes children with the OptimizedModel."""
        return {
            "apiVersion": f"{models.GROUP}/{models.VERSION}",
            "kind": models.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": True,
        }


@dataclasses.dataclass(frozen=True)
class _Mounted:
    """A model or dataset URI as the converter container sees it."""

    arg: str
    volume: dict[str, Any] | None = None
    mount: dict[str, Any] | None = None
    env_from_secret: str | None = None


def _mounted(uri: str, volume_name: str, secret: str | None = None) -> _Mounted:
    scheme, _, rest = uri.partition("://")
    mount_path = posixpath.join(SOURCES_MOUNT, volume_name)
    if scheme == "file":
        folder, filename = posixpath.split(rest)
        volume = {"name": volume_name, "hostPath": {"path": folder or "/", "type": "Directory"}}
        mount = {"name": volume_name, "mountPath": mount_path, "readOnly": True}
        return _Mounted(posixpath.join(mount_path, filename), volume, mount)
    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        volume = {"name": volume_name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": volume_name, "mountPath": mount_path, "readOnly": True}
        return _Mounted(posixpath.join(mount_path, path), volume, mount)
    # s3:// — the converter downloads it with the referenced credentials.
    return _Mounted(uri, env_from_secret=secret)


def artifact_dir(digest: str) -> str:
    """Where one set of variants lives inside the artifact volume (content-addressed)."""
    return posixpath.join(ARTIFACTS_MOUNT, digest)


def pool_dir(digest: str, pool: pools.Pool) -> str:
    """Where one pool's profile (and, for GPU pools, its TensorRT engines) live."""
    return posixpath.join(artifact_dir(digest), "pools", pool.name)


def store_uri(settings: config.Settings, digest: str) -> str:
    """Where one set of variants lives in the artifact store, as users see it."""
    if settings.artifact_store == "s3":
        return f"{settings.artifact_s3_uri.rstrip('/')}/{digest}"
    return f"pvc://{settings.artifact_pvc}/{digest}"


def _artifact_volume(settings: config.Settings, read_only: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PVC store mounts the shared claim; the S3 store gives each pod a scratch folder that
    `thrifty-store` fills from and pushes back to the bucket."""
    if settings.artifact_store == "s3":
        volume: dict[str, Any] = {"name": "artifacts", "emptyDir": {}}
        return volume, {"name": "artifacts", "mountPath": ARTIFACTS_MOUNT, "readOnly": read_only}
    volume = {"name": "artifacts", "persistentVolumeClaim": {"claimName": settings.artifact_pvc}}
    mount = {"name": "artifacts", "mountPath": ARTIFACTS_MOUNT, "readOnly": read_only}
    return volume, mount


def _store_command(settings: config.Settings, digest: str, args: list[str]) -> tuple[list[str], list[str]]:
    """Command and arguments of a converter container; with an S3 store, wrapped to sync the artifacts."""
    if settings.artifact_store != "s3":
        return ["thrifty-convert"], args
    local, remote = artifact_dir(digest), store_uri(settings, digest)
    return ["thrifty-store"], [
        "run",
        "--pull",
        remote,
        local,
        "--push",
        local,
        remote,
        "--",
        "thrifty-convert",
        *args,
    ]


def _pod_placement(pool: pools.Pool) -> dict[str, Any]:
    placement: dict[str, Any] = {"nodeSelector": dict(pool.node_selector)}
    if pool.tolerations:
        placement["tolerations"] = [t.model_dump(exclude_none=True) for t in pool.tolerations]
    return placement


def converter_resources(settings: config.Settings, *, cpu_limit: bool) -> dict[str, Any]:
    """Requests and limits of conversion and profiling Jobs from the settings.

    The memory limit is twice the request (exports and quantizers peak above their steady use); scratch space
    is requested and capped at `converter_ephemeral_storage`. Only the conversion Job, which loads the user's
    model file, is capped in CPU: a profiling Job loads what the conversion wrote and is not throttled, which
    would skew its latency.
    """
    memory = settings.converter_memory_request
    number, unit = memory.rstrip("KMGi"), memory[len(memory.rstrip("KMGi")) :]
    scratch = settings.converter_ephemeral_storage
    limits = {"memory": f"{int(number) * 2}{unit}", "ephemeral-storage": scratch}
    if cpu_limit:
        limits["cpu"] = settings.converter_cpu_request
    return {
        "requests": {"cpu": settings.converter_cpu_request, "memory": memory, "ephemeral-storage": scratch},
        "limits": limits,
    }


def _job(
    *,
    owner: Owner,
    name: str,
    component: str,
    pool: pools.Pool,
    args: list[str],
    image: str,
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    secrets: list[str],
    settings: config.Settings,
    gpu: bool,
    digest: str,
) -> dict[str, Any]:
    labels = names.labels(owner.name, component) | {names.LABEL_POOL: pool.name, names.LABEL_DIGEST: digest}
    command, wrapped_args = _store_command(settings, digest, args)
    # The conversion loads the user's model file: the one container that runs code it was not built with.
    untrusted = component == "convert"
    resources = converter_resources(settings, cpu_limit=untrusted)
    if gpu and pool.accelerator:
        resources["limits"][pool.accelerator.resource] = "1"
    container: dict[str, Any] = {
        "name": component,
        "image": image,
        "command": command,
        "args": wrapped_args,
        "env": [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TMPDIR", "value": "/tmp"},
            # Every torch.load in the process unpickles tensors only (docs/security.md).
            {"name": "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "value": "1"},
        ],
        "resources": resources,
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": _RESTRICTED_CONTAINER,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if settings.artifact_store == "s3":
        secrets = [*secrets, settings.artifact_s3_secret]
    if secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in sorted(set(secrets))]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # Converters never call the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": _RESTRICTED_POD,
        **_pod_placement(pool),
        "containers": [container],
        "volumes": [
            *volumes,
            {"name": "tmp", "emptyDir": {"sizeLimit": settings.converter_ephemeral_storage}},
        ],
    }
    skips = [] if settings.converter_network_policy else [_SKIP_JOB_NETWORK_POLICY]
    if not untrusted:
        skips.append(_SKIP_JOB_CPU_LIMIT)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": _policy_skips(pod, skips),
            # Shared by every OptimizedModel with the same digest: none controls it, the last owner's deletion
            # lets the garbage collector remove it.
            "ownerReferences": [owner.reference(controller=False)],
        },
        "spec": {
            # A failed conversion is reported, not retried: the same inputs would fail the same way.
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.job_deadline_seconds,
            "template": {"metadata": {"labels": labels | settings.extra_pod_labels}, "spec": pod},
        },
    }


def _signature_arg(spec: models.OptimizedModelSpec) -> str:
    return json.dumps(spec.signature.model_dump(mode="json", by_alias=True), separators=(",", ":"))


def convert_job(
    *,
    owner: Owner,
    spec: models.OptimizedModelSpec,
    digest: str,
    pool: pools.Pool,
    price_per_hour: Decimal,
    settings: config.Settings,
) -> dict[str, Any]:
    """The Job that exports, quantizes and checks every CPU variant on a CPU-pool node."""
    secret = spec.source.credentials_secret_ref.name if spec.source.credentials_secret_ref else None
    source = _mounted(spec.source.uri, "source", secret)
    artifacts_volume, artifacts_mount = _artifact_volume(settings, read_only=False)
    cpu_variants = [v for v in spec.optimization.variants if v not in variants.GPU]
    args = [
        "optimize",
        source.arg,
        "--out",
        artifact_dir(digest),
        "--target",
        "cpu",
        "--variants",
        # A GPU-only spec converts to ONNX here and builds its variants on the GPU pool.
        ",".join(cpu_variants) or "none",
        "--max-batch-size",
        str(spec.optimization.max_batch_size),
        "--latency-budget-ms",
        str(spec.optimization.latency_target_ms),
        "--price-per-hour",
        str(price_per_hour),
        "--signature",
        _signature_arg(spec),
        "--summary-file",
        TERMINATION_LOG,
    ]
    mounted = [source]
    for flag, ref in (
        ("--inputs", spec.optimization.inputs),
        ("--calibration", spec.optimization.calibration),
        ("--eval", spec.optimization.evaluation),
    ):
        if ref is not None:
            item = _mounted(ref.uri, flag.strip("-"), secret)
            mounted.append(item)
            args += [flag, item.arg]
    volumes = [artifacts_volume] + [m.volume for m in mounted if m.volume]
    mounts = [artifacts_mount] + [m.mount for m in mounted if m.mount]
    return _job(
        owner=owner,
        name=names.convert_job(digest),
        component="convert",
        pool=pool,
        args=args,
        image=settings.converter_image,
        volumes=volumes,
        mounts=mounts,
        secrets=[m.env_from_secret for m in mounted if m.env_from_secret],
        settings=settings,
        gpu=False,
        digest=digest,
    )


def profile_job(
    *,
    owner: Owner,
    spec: models.OptimizedModelSpec,
    digest: str,
    pool: pools.Pool,
    price_per_hour: Decimal,
    settings: config.Settings,
) -> dict[str, Any]:
    """The Job that measures variants on one pool's hardware; on GPU pools it first builds the GPU variants
    (TensorRT engines are specific to the GPU product, so they are built on the pool that serves them)."""
    artifacts_volume, artifacts_mount = _artifact_volume(settings, read_only=False)
    common = [
        "--max-batch-size",
        str(spec.optimization.max_batch_size),
        "--latency-budget-ms",
        str(spec.optimization.latency_target_ms),
        "--price-per-hour",
        str(price_per_hour),
        "--summary-file",
        TERMINATION_LOG,
    ]
    if pool.is_gpu:
        gpu_variants = [v for v in spec.optimization.variants if v in variants.GPU]
        args = [
            "optimize",
            posixpath.join(artifact_dir(digest), "model.onnx"),
            "--out",
            pool_dir(digest, pool),
            "--target",
            "gpu",
            "--variants",
            ",".join(gpu_variants) or "onnx-fp16",
            "--signature",
            _signature_arg(spec),
            *common,
        ]
        image = settings.converter_gpu_image
    else:
        args = ["profile", artifact_dir(digest), "--pool", pool.name, *common]
        image = settings.converter_image
    return _job(
        owner=owner,
        name=names.profile_job(pool.name, digest),
        component="profile",
        pool=pool,
        args=args,
        image=image,
        volumes=[artifacts_volume],
        mounts=[artifacts_mount],
        secrets=[],
        settings=settings,
        gpu=pool.is_gpu,
        digest=digest,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Serving:
    """What the Triton Deployment serves and where."""

    variant: str
    model_name: str
    repository: str
    pool: pools.Pool
    replicas: int


def _triton_resources(spec: models.OptimizedModelSpec, pool: pools.Pool) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "requests": spec.serving.resources.requests.model_dump(exclude_none=True),
    }
    limits = (
        spec.serving.resources.limits.model_dump(exclude_none=True) if spec.serving.resources.limits else {}
    )
    if pool.accelerator:
        limits[pool.accelerator.resource] = "1"
    if limits:
        resources["limits"] = limits
    return resources


def triton_deployment(
    *, owner: Owner, spec: models.OptimizedModelSpec, serving: Serving, digest: str, settings: config.Settings
) -> dict[str, Any]:
    """Triton serving the selected variant; rolling updates add a ready pod before removing an old one."""
    labels = names.labels(owner.name, "triton")
    artifacts_volume, artifacts_mount = _artifact_volume(settings, read_only=True)
    probe_port = {"port": "http"}
    resources = _triton_resources(spec, serving.pool)
    container = {
        "name": "triton",
        "image": spec.serving.triton_image,
        "command": ["tritonserver"],
        "args": [
            f"--model-repository={serving.repository}",
            "--model-control-mode=explicit",
            f"--load-model={serving.model_name}",
            f"--http-port={HTTP_PORT}",
            f"--grpc-port={GRPC_PORT}",
            f"--metrics-port={METRICS_PORT}",
            # Latency quantiles (nv_inference_*_summary_us): the dashboard's p99; counters give only means.
            "--metrics-config=summary_latencies=true",
            "--exit-on-error=true",
            "--log-verbose=0",
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", **probe_port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", **probe_port},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": resources,
        "volumeMounts": [artifacts_mount, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": _RESTRICTED_CONTAINER,
    }
    pod: dict[str, Any] = {
        # Triton never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": _RESTRICTED_POD,
        **_pod_placement(serving.pool),
        **_repository_fetch(settings, serving, digest),
        "containers": [container],
        "volumes": [artifacts_volume, {"name": "tmp", "emptyDir": {}}],
    }
    skips = [_SKIP_TRITON_NETWORK_POLICY]
    limits = resources.get("limits", {})
    if "cpu" not in limits:
        skips.append(_SKIP_TRITON_CPU_LIMIT)
    if "memory" not in limits:
        skips.append(_SKIP_TRITON_MEMORY_LIMIT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.deployment(owner.name),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": _policy_skips(pod, skips),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": names.selector(owner.name, "triton")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels | {names.LABEL_POOL: serving.pool.name} | settings.extra_pod_labels,
                    "annotations": {
                        names.ANNOTATION_VARIANT: serving.variant,
                        names.ANNOTATION_DIGEST: digest,
                    },
                },
                "spec": pod,
            },
        },
    }


def _repository_fetch(settings: config.Settings, serving: Serving, digest: str) -> dict[str, Any]:
    """With an S3 store, an init container pulls the model repository before Triton starts."""
    if settings.artifact_store != "s3":
        return {}
    relative = posixpath.relpath(serving.repository, artifact_dir(digest))
    fetch = {
        "name": "fetch-repository",
        "image": settings.converter_image,
        "command": ["thrifty-store"],
        "args": ["pull", f"{store_uri(settings, digest)}/{relative}", serving.repository],
        "envFrom": [{"secretRef": {"name": settings.artifact_s3_secret}}],
        "resources": FETCH_RESOURCES,
        "volumeMounts": [{"name": "artifacts", "mountPath": ARTIFACTS_MOUNT}],
        "securityContext": _RESTRICTED_CONTAINER,
    }
    return {"initContainers": [fetch]}


def triton_service(*, owner: Owner) -> dict[str, Any]:
    """ClusterIP Service in front of the Triton pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service(owner.name),
            "namespace": owner.namespace,
            "labels": names.labels(owner.name, "triton"),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector(owner.name, "triton"),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def converter_network_policy(*, namespace: str, settings: config.Settings) -> dict[str, Any]:
    """The NetworkPolicy of a namespace's conversion and profiling pods: nothing in, out only the configured
    egress (none by default). Not owned, like the artifact claim: it outlives single models and Jobs."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": names.CONVERTER_NETWORK_POLICY,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "thrifty", "app.kubernetes.io/managed-by": names.MANAGED_BY},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/managed-by": names.MANAGED_BY},
                "matchExpressions": [
                    {"key": names.LABEL_COMPONENT, "operator": "In", "values": ["convert", "profile"]}
                ],
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": list(settings.converter_egress),
        },
    }


def artifacts_claim(*, namespace: str, settings: config.Settings) -> dict[str, Any]:
    """The shared artifact PersistentVolumeClaim of a namespace (not owned: it outlives single models)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": settings.artifact_pvc,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "thrifty", "app.kubernetes.io/managed-by": names.MANAGED_BY},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}}},
    }
