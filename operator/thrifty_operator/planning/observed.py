"""What the handler reads for one reconcile besides the OptimizedModel itself: plain data, no clients."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Literal

from thrifty_api import optimized_model as models

from ..cost import metrics

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
    """The model's children as they exist now."""

    jobs: Mapping[str, JobState]
    deployment: DeploymentState | None
    applied: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """`<Kind>/<name>` of existing children → the hash of the manifest last applied to them."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Load:
    """What the budget-aware scaler reads on a timer pass, once the model is being served."""

    now: datetime.datetime
    annotations: Mapping[str, str]
    """The OptimizedModel's annotations (its own budget)."""
    namespace_annotations: Mapping[str, str]
    """The Namespace's annotations (a budget shared by its models)."""
    namespace_demand: Mapping[str, float]
    """Hourly rate per model of the namespace (this one included), to split a shared namespace budget."""
    sample: metrics.LoadSample | None
    """Triton's load; None when unknown (the policy then holds the fleet)."""
    load_error: str | None = None
    """Why `sample` is None when that is a failure (Prometheus down, metrics port unreachable), not a first
    scrape; it becomes the ScalingActive condition once it lasts."""
    ready_replicas: int | None
    remembered: models.ScalingStatus | None = None
    """The scaler's last decision kept in the operator's memory, newer than the one written to status."""
    sync_seconds: float = 30.0
    """How often decisions come: a fleet chosen now runs at least that long plus the 60-s billing minimum."""
