"""The OptimizedModel API (`thrifty.dev/v1alpha1`): the single typed source of the CRD.

`crdgen` turns these pydantic models into `crds/thrifty.dev_optimizedmodels.yaml`; field docstrings become
the descriptions `kubectl explain` prints, field constraints become the structural schema's bounds, and the
`x-kubernetes-*` extras carry list semantics and CEL rules.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic
from pydantic import alias_generators

from . import quantity, variants

GROUP = "thrifty.dev"
VERSION = "v1alpha1"
KIND = "OptimizedModel"
PLURAL = "optimizedmodels"
SINGULAR = "optimizedmodel"
SHORT_NAMES = ("om",)

BUDGET_PER_HOUR_ANNOTATION = f"{GROUP}/budget-per-hour"
BUDGET_PER_MONTH_ANNOTATION = f"{GROUP}/budget-per-month"
# A budget is a plain non-negative decimal in the currency of the pool catalogue's prices.
BUDGET_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$"

# Child objects append suffixes to the name; 40 characters keeps every child name within DNS-1035's 63.
MAX_NAME_LENGTH = 40

# Kubernetes resource quantity (k8s.io/apimachinery/pkg/api/resource), e.g. "500m", "2Gi".
QUANTITY_PATTERN = quantity.PATTERN
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TENSOR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:/-]*$"

Quantity = Annotated[str, pydantic.Field(max_length=32, pattern=QUANTITY_PATTERN)]
Decimal = Annotated[str, pydantic.Field(max_length=32, pattern=DECIMAL_PATTERN)]
ShortText = Annotated[str, pydantic.Field(max_length=256)]
Message = Annotated[str, pydantic.Field(max_length=1024)]
Int64 = Annotated[int, pydantic.Field(json_schema_extra={"format": "int64"})]

# The CRD's enum of variants comes from the catalogue every converter and the operator share.
Variant = variants.Name


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, pydantic.JsonValue]:
    """One `x-kubernetes-validations` entry; `fieldPath` makes the API server name the offending field."""
    entry: dict[str, pydantic.JsonValue] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _object_default(value: dict[str, pydantic.JsonValue] | None = None) -> dict[str, Any]:
    """Field arguments giving an object field a CRD default, so the API server fills nested defaults."""
    return {"json_schema_extra": {"default": value or {}}}


class _Model(pydantic.BaseModel):
    """Base: camelCase JSON names, unknown fields rejected, attribute docstrings as descriptions."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


# ---------------------------------------------------------------------------------------------- spec


class SecretReference(_Model):
    """A Secret in the OptimizedModel's namespace."""

    name: str = pydantic.Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Name of the Secret."""


class ModelSource(_Model):
    """Where the trained model comes from and in which format."""

    uri: str = pydantic.Field(min_length=8, max_length=2048, pattern=r"^(pvc|s3|file)://[^\s]+$")
    """Location of the model file. Schemes: `pvc://<claim>/<path>` (a PersistentVolumeClaim in the same
    namespace), `s3://<bucket>/<key>` (S3-compatible object storage) or `file://<path>` (a path on the
    converter's filesystem, for local clusters)."""

    format: Literal["TorchScript", "TorchExport", "ONNX"]
    """Serialization of the model: `TorchScript` (`torch.jit.save`), `TorchExport` (a `torch.export` `.pt2`
    program) or `ONNX`."""

    credentials_secret_ref: SecretReference | None = None
    """Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `AWS_ENDPOINT_URL` for
    `s3://` sources."""


class TensorSpec(_Model):
    """One named input or output tensor."""

    name: str = pydantic.Field(min_length=1, max_length=128, pattern=TENSOR_NAME_PATTERN)
    """Tensor name as the model binds it."""

    dtype: Literal["float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"]
    """Element type."""

    shape: list[Annotated[int, pydantic.Field(ge=-1, le=1_048_576)]] = pydantic.Field(
        min_length=1, max_length=8
    )
    """Shape without the batch dimension; `-1` marks a dynamic dimension such as sequence length."""


def _named_list() -> dict[str, Any]:
    """List semantics for lists of named tensors: server-side apply merges them by name, names are unique."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


class Signature(_Model):
    """The model's inputs and outputs; needed for export and for Triton's model configuration."""

    inputs: list[TensorSpec] = pydantic.Field(min_length=1, max_length=16, json_schema_extra=_named_list())
    """Input tensors, in the order the model takes them."""

    outputs: list[TensorSpec] = pydantic.Field(min_length=1, max_length=16, json_schema_extra=_named_list())
    """Output tensors, in the order the model returns them."""


class DatasetReference(_Model):
    """A `.npz` file of example tensors, keyed by input name (and `labels` for evaluation sets)."""

    uri: str = pydantic.Field(min_length=8, max_length=2048, pattern=r"^(pvc|s3|file)://[^\s]+$")
    """Location of the `.npz` file, with the same schemes as `source.uri`."""


class AccuracyGate(_Model):
    """Limits a variant must meet against the reference PyTorch FP32 outputs to be selectable."""

    max_relative_drop_percent: Decimal = "1"
    """Largest relative drop of the task metric on the evaluation set, in percent (default 1)."""

    min_cosine_similarity: Decimal = "0.99"
    """Smallest mean cosine similarity to the reference outputs for reduced-precision variants."""


class Optimization(_Model):
    """Which variants to build and measure, and what they must achieve."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.variants) || !('onnx-int8-static' in self.variants) || has(self.calibration)",
                    "`calibration` must be set when `variants` includes onnx-int8-static",
                    ".calibration",
                ),
            ]
        }
    )

    variants: list[Variant] = pydantic.Field(
        default=list(variants.DEFAULT),
        min_length=1,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Candidate variants. GPU-only variants (`onnx-fp16`, `tensorrt-fp16`) are built and measured only for
    GPU pools; every variant is profiled on each pool it can run on."""

    inputs: DatasetReference | None = None
    """Example inputs for parity checks and profiling; generated from `signature` when absent."""

    calibration: DatasetReference | None = None
    """Calibration inputs for static INT8 quantization (at least 32 samples)."""

    evaluation: DatasetReference | None = None
    """Labelled evaluation set; when set, the task metric gates every variant."""

    accuracy_gate: AccuracyGate = pydantic.Field(default_factory=AccuracyGate, **_object_default())
    """Accuracy limits every selected variant must meet."""

    latency_target_ms: int = pydantic.Field(default=100, ge=1, le=600_000)
    """p99 latency target per request, in milliseconds; variants slower than this on a pool are not
    selected for it."""

    max_batch_size: int = pydantic.Field(default=8, ge=1, le=1024)
    """Largest batch the exported model and Triton accept."""


class DynamicBatching(_Model):
    """Triton's dynamic batcher."""

    max_queue_delay_microseconds: int = pydantic.Field(default=1000, ge=0, le=10_000_000)
    """How long Triton may hold a request to form a larger batch; 0 disables the delay."""

    preferred_batch_sizes: list[Annotated[int, pydantic.Field(ge=1, le=1024)]] = pydantic.Field(
        default_factory=list, max_length=8, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Batch sizes Triton should prefer to form."""


class ResourceList(_Model):
    """Compute resources as Kubernetes quantities."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            # The pattern admits `0`; a replica that asks for nothing can be neither placed nor priced.
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.cpu) || quantity(self.cpu).compareTo(quantity('1m')) >= 0",
                    "`cpu` must be at least 1m (one millicore)",
                    ".cpu",
                ),
                _cel(
                    "!has(self.memory) || quantity(self.memory).isGreaterThan(quantity('0'))",
                    "`memory` must be more than 0",
                    ".memory",
                ),
            ]
        }
    )

    cpu: Quantity | None = None
    """CPU cores, for example `2` or `500m`."""

    memory: Quantity | None = None
    """Memory, for example `4Gi`."""


class Resources(_Model):
    """Requests and limits of each Triton container; the GPU count follows from the pool."""

    requests: ResourceList = pydantic.Field(
        default_factory=lambda: ResourceList(cpu="1", memory="2Gi"),
        **_object_default({"cpu": "1", "memory": "2Gi"}),
    )
    """Resources reserved per replica; the cost model apportions node prices by these."""

    limits: ResourceList | None = None
    """Upper limits per replica."""


class Serving(_Model):
    """How Thrifty deploys Triton for the selected variant."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.minReplicas <= self.maxReplicas",
                    "`minReplicas` must be less than or equal to `maxReplicas`",
                    ".minReplicas",
                ),
            ]
        }
    )

    triton_image: str = pydantic.Field(
        default="nvcr.io/nvidia/tritonserver:25.10-py3", min_length=1, max_length=512, pattern=r"^[^\s]+$"
    )
    """Triton Inference Server image."""

    pools: list[Annotated[str, pydantic.Field(max_length=63, pattern=DNS_LABEL_PATTERN)]] = pydantic.Field(
        min_length=1, max_length=16, json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Node pools from the operator's pool catalogue that may serve the model, most preferred first. Thrifty
    picks the cheapest pool that meets the latency target; order breaks ties."""

    resources: Resources = pydantic.Field(default_factory=Resources, **_object_default())
    """Per-replica resources."""

    min_replicas: int = pydantic.Field(default=1, ge=0, le=1000)
    """Fewest replicas while not suspended, even when a budget binds."""

    max_replicas: int = pydantic.Field(default=4, ge=1, le=1000)
    """Most replicas the scaler may run."""

    dynamic_batching: DynamicBatching = pydantic.Field(default_factory=DynamicBatching, **_object_default())
    """Dynamic batching settings written into Triton's model configuration."""


class Scaling(_Model):
    """The load signal the scaler holds at its target."""

    metric: Literal["QueueTime", "PendingRequests", "InferenceRate"] = "QueueTime"
    """`QueueTime`: average Triton queue time per request in microseconds; `PendingRequests`: queued requests
    per replica; `InferenceRate`: inferences per second per replica."""

    target: int = pydantic.Field(default=2000, ge=1, le=100_000_000)
    """Target value of `metric` per replica."""

    scale_down_stabilization_seconds: int = pydantic.Field(default=300, ge=0, le=3600)
    """Scale down only to the highest recommendation of this trailing window, so load dips do not flap."""


class OptimizedModelSpec(_Model):
    """Desired state of an OptimizedModel."""

    source: ModelSource
    """The trained model."""

    signature: Signature
    """Input and output tensors."""

    optimization: Optimization = pydantic.Field(default_factory=Optimization, **_object_default())
    """Variants to build and the gates they must pass."""

    serving: Serving
    """Triton deployment settings."""

    scaling: Scaling = pydantic.Field(default_factory=Scaling, **_object_default())
    """Autoscaling target."""

    suspend: bool = False
    """When true, Thrifty scales the deployment to zero and keeps every artifact."""


# -------------------------------------------------------------------------------------------- status


class Condition(_Model):
    """A `metav1.Condition`."""

    type: str = pydantic.Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Condition type: Converted, Optimized, Deployed, Ready, BudgetLimited, ScalingActive or Suspended."""

    status: Literal["True", "False", "Unknown"]
    """Status of the condition."""

    observed_generation: Int64 | None = pydantic.Field(default=None, ge=0)
    """`metadata.generation` the condition was set for."""

    last_transition_time: datetime.datetime
    """Last time the status changed."""

    reason: str = pydantic.Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """CamelCase reason for the last transition."""

    message: str = pydantic.Field(max_length=32768)
    """Human-readable details."""


class MeasuredVariant(_Model):
    """One variant as measured on one pool."""

    name: str = pydantic.Field(max_length=63)
    """Variant name, for example `onnx-int8-dynamic`."""

    pool: str = pydantic.Field(max_length=63)
    """Pool it was profiled on."""

    format: str | None = pydantic.Field(default=None, max_length=32)
    """Model format: onnx, openvino, tensorrt."""

    precision: str | None = pydantic.Field(default=None, max_length=16)
    """Numeric precision: fp32, fp16, bf16, int8."""

    status: Message
    """`ok`, `skipped: <why>` or `failed: <why>`."""

    latency_p99_ms: Decimal | None = None
    """Measured p99 latency per request, in milliseconds."""

    throughput_per_second: Decimal | None = None
    """Measured inferences per second of one replica within the latency target."""

    cost_per_million: Decimal | None = None
    """Price of one million inferences on this pool."""

    accuracy: ShortText | None = None
    """Parity or task-metric figures against the reference."""

    size_bytes: Int64 | None = pydantic.Field(default=None, ge=0)
    """Size of the variant's model files."""


class Selection(_Model):
    """The variant and pool serving now."""

    variant: str = pydantic.Field(max_length=63)
    """Selected variant."""

    pool: str = pydantic.Field(max_length=63)
    """Selected pool."""

    reason: Message
    """Why it won, or what the budget gave up."""


class Replicas(_Model):
    """Replica counts of the Triton deployment."""

    desired: int = pydantic.Field(ge=0, le=1000)
    """Replicas the scaler asked for."""

    ready: int = pydantic.Field(ge=0, le=1000)
    """Replicas passing Triton's readiness check."""


class Cost(_Model):
    """Spend accounting, in the currency of the pool catalogue."""

    currency: str = pydantic.Field(default="USD", max_length=8)
    """Currency of every amount."""

    rate_per_hour: Decimal
    """Current spend rate per hour."""

    month_to_date: Decimal
    """Spend since the start of the calendar month (UTC)."""

    projected_month_end: Decimal
    """Month-to-date spend plus the current rate until the end of the month."""

    budget: ShortText | None = None
    """Effective budget, for example `2.00/h` or `1200/month`."""

    month: str | None = pydantic.Field(default=None, max_length=7, pattern=r"^[0-9]{4}-[0-9]{2}$")
    """Calendar month (UTC) month-to-date refers to, `YYYY-MM`."""

    last_accounted: datetime.datetime | None = None
    """When spend was last accounted."""

    allowed_rate_per_hour: Decimal | None = None
    """Highest spend rate the budgets allow now; absent without budgets."""

    spend: SpendRecord | None = None
    """Exact accounting state, so month-to-date spend survives operator restarts."""


class SpendRecord(_Model):
    """The spend accountant's state (decimal strings)."""

    month: str = pydantic.Field(max_length=7)
    """Calendar month (UTC), `YYYY-MM`."""

    month_to_date: Decimal
    """Spend this month."""

    accounted_at: str = pydantic.Field(max_length=40)
    """When spend was last accrued (RFC 3339)."""

    rate_per_hour: Decimal
    """Rate accrued since then."""


class ScalingStatus(_Model):
    """The budget-aware scaler's last decision."""

    variant: str | None = pydantic.Field(default=None, max_length=63)
    """Variant it chose."""

    pool: str | None = pydantic.Field(default=None, max_length=63)
    """Pool it chose."""

    replicas: int = pydantic.Field(ge=0, le=1000)
    """Replicas it asked for."""

    reason: str = pydantic.Field(max_length=64)
    """ScaledUp, ScaledDown, Steady, VariantSwitched, Suspended."""

    message: Message
    """What it decided and why."""

    state: dict[str, Any] | None = pydantic.Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """The policy's memory between decisions (recent demand; internal)."""


class Endpoints(_Model):
    """Where clients reach the model."""

    http: str | None = pydantic.Field(default=None, max_length=512)
    """Triton's HTTP/REST endpoint."""

    grpc: str | None = pydantic.Field(default=None, max_length=512)
    """Triton's gRPC endpoint."""

    metrics: str | None = pydantic.Field(default=None, max_length=512)
    """Triton's Prometheus metrics endpoint."""

    model_name: str | None = pydantic.Field(default=None, max_length=128)
    """Model name to use in inference requests."""


class Artifacts(_Model):
    """Where the converted variants and reports live."""

    uri: str | None = pydantic.Field(default=None, max_length=2048)
    """Artifact store location of this model's variants."""

    source_digest: str | None = pydantic.Field(default=None, max_length=80)
    """Digest of the source settings the artifacts were built from."""


class OptimizedModelStatus(_Model):
    """Observed state of an OptimizedModel, written by the operator only."""

    observed_generation: Int64 | None = pydantic.Field(default=None, ge=0)
    """`metadata.generation` this status describes."""

    conditions: list[Condition] = pydantic.Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Converted, Optimized, Deployed, Ready, BudgetLimited, ScalingActive and Suspended."""

    variants: list[MeasuredVariant] = pydantic.Field(default_factory=list, max_length=128)
    """Every variant measured, per pool."""

    selected: Selection | None = None
    """Variant and pool serving now."""

    replicas: Replicas | None = None
    """Replica counts."""

    cost: Cost | None = None
    """Spend accounting."""

    scaling: ScalingStatus | None = None
    """Last scaling decision."""

    endpoints: Endpoints | None = None
    """Client endpoints."""

    artifacts: Artifacts | None = None
    """Converted artifacts."""


class OptimizedModel(_Model):
    """A model Thrifty converts, measures and serves with Triton on the cheapest node pool that meets its
    latency target, scaled so spend stays within the budgets set by the annotations
    `thrifty.dev/budget-per-hour` and `thrifty.dev/budget-per-month` (decimal strings in the currency of the
    pool catalogue, on the OptimizedModel or on its Namespace as a shared cap)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                    f"`metadata.name` must be at most {MAX_NAME_LENGTH} characters",
                ),
            ]
        }
    )

    api_version: str | None = None
    """APIVersion of this representation of the object."""

    kind: str | None = None
    """Kind of the object."""

    metadata: dict[str, Any] | None = None
    """Standard object metadata."""

    spec: OptimizedModelSpec
    """Desired state."""

    status: OptimizedModelStatus | None = None
    """Observed state."""
