"""Deterministic names and labels of the objects Thrifty creates for an OptimizedModel.

Jobs and artifacts are content-addressed: their names carry a digest of the spec fields that shape the
artifacts, so a restarted operator finds (adopts) the Jobs it created before instead of creating duplicates,
and OptimizedModels in one namespace with the same source and optimization settings share one conversion.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from thrifty_api import optimized_model as models

MANAGED_BY = "thrifty"
LABEL_MODEL = f"{models.GROUP}/model"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_POOL = f"{models.GROUP}/pool"
ANNOTATION_VARIANT = f"{models.GROUP}/variant"
ANNOTATION_DIGEST = f"{models.GROUP}/artifact-digest"
LABEL_DIGEST = f"{models.GROUP}/artifact-digest"
ANNOTATION_SUMMARY = f"{models.GROUP}/summary"
FINALIZER = f"{models.GROUP}/finalizer"
CONVERTER_NETWORK_POLICY = "thrifty-converters"


def artifact_digest(spec: models.OptimizedModelSpec) -> str:
    """A short digest of everything that changes the converted artifacts (not serving or scaling)."""
    shaping: dict[str, Any] = {
        "source": spec.source.model_dump(mode="json", by_alias=True),
        "signature": spec.signature.model_dump(mode="json", by_alias=True),
        "optimization": spec.optimization.model_dump(
            mode="json", by_alias=True, exclude={"latency_target_ms", "accuracy_gate"}
        ),
    }
    canonical = json.dumps(shaping, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def convert_job(digest: str) -> str:
    """The conversion Job of one set of artifacts."""
    return f"thrifty-convert-{digest}"


def profile_job(pool: str, digest: str) -> str:
    """The profiling (and, on GPU pools, TensorRT build) Job for one pool; at most 63 characters."""
    name = f"thrifty-prof-{pool}"
    if len(name) > 52:
        name = name[:43] + hashlib.sha256(pool.encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def deployment(model: str) -> str:
    """The Triton Deployment."""
    return f"{model}-triton"


def service(model: str) -> str:
    """The Triton Service; the model's own name, so clients address `<model>.<namespace>.svc`."""
    return model


def labels(model: str, component: str) -> dict[str, str]:
    """Labels of every child object."""
    return {
        "app.kubernetes.io/name": "thrifty",
        "app.kubernetes.io/instance": model,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_MODEL: model,
    }


def selector(model: str, component: str) -> dict[str, str]:
    """The stable subset of `labels` used in selectors."""
    return {"app.kubernetes.io/instance": model, LABEL_COMPONENT: component, LABEL_MODEL: model}
