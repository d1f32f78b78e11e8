"""Triton ModelConfig for a variant: built, rendered, parsed and validated through the protobuf schema.

The config is assembled as a dict, checked by `json_format.ParseDict` against Triton's own
`model_config.proto` (shipped in tritonclient) and rendered with `text_format`; no text templates, so a
misspelt field fails here rather than at model load time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from ..artifact import TensorSpec, VariantArtifact
from .errors import InvalidModelConfigError

ModelConfig = model_config_pb2.ModelConfig

# numpy dtype string -> Triton data type (model_config.proto DataType).
TRITON_DTYPES: Mapping[str, str] = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "object": "TYPE_STRING",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackendSpec:
    """How Triton loads one model format.

    Attributes:
        backend: Value of `backend`.
        platform: Value of `platform`, or None where the backend has none.
        files: Files the backend reads from the version directory by default.
    """

    backend: str
    platform: str | None
    files: tuple[str, ...]


# Fixed format -> backend map (model_navigator's BACKEND2SUFFIX idea): default file names, so no
# `default_model_filename` is needed.
BACKENDS: Mapping[str, BackendSpec] = {
    "onnx": BackendSpec(backend="onnxruntime", platform="onnxruntime_onnx", files=("model.onnx",)),
    "openvino": BackendSpec(backend="openvino", platform=None, files=("model.xml", "model.bin")),
    "tensorrt": BackendSpec(backend="tensorrt", platform="tensorrt_plan", files=("model.plan",)),
    "torchscript": BackendSpec(backend="pytorch", platform="pytorch_libtorch", files=("model.pt",)),
}
PYTHON_BACKEND = BackendSpec(backend="python", platform=None, files=("model.py",))

_PLATFORM_BACKEND = {spec.platform: spec.backend for spec in BACKENDS.values() if spec.platform}
_GPU_ONLY_BACKENDS = frozenset({"tensorrt"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingOptions:
    """Scheduling knobs written into config.pbtxt; the defaults suit a first deployment.

    Attributes:
        instance_count: Model instances per device (`instance_group.count`).
        batching: False writes `max_batch_size: 0` with full-shape dims and no dynamic batcher.
        max_queue_delay_microseconds: How long the dynamic batcher waits to fill a batch.
        max_queue_size: Requests queued before Triton rejects new ones; 0 leaves the queue unbounded.
        warmup: Whether Triton runs a zero-filled request at the variant's max batch before READY.
        warmup_dynamic_dim: Size used for non-batch dynamic dims in the warmup request.
        parameters: Backend `parameters` (e.g. ORT `intra_op_thread_count`), written as string values.
    """

    instance_count: int = 1
    batching: bool = True
    max_queue_delay_microseconds: int = 100
    max_queue_size: int = 0
    warmup: bool = True
    warmup_dynamic_dim: int = 1
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.instance_count < 1:
            raise InvalidModelConfigError("instance_count must be >= 1")
        if self.max_queue_delay_microseconds < 0 or self.max_queue_size < 0:
            raise InvalidModelConfigError("queue delay and size must be >= 0")
        if self.warmup_dynamic_dim < 1:
            raise InvalidModelConfigError("warmup_dynamic_dim must be >= 1")


def _tensor(spec: TensorSpec, batched: bool) -> dict[str, Any]:
    if spec.dtype not in TRITON_DTYPES:
        raise InvalidModelConfigError(f"tensor {spec.name!r}: dtype {spec.dtype!r} has no Triton type")
    dims = list(spec.shape[1:] if batched else spec.shape)
    tensor: dict[str, Any] = {"name": spec.name, "data_type": TRITON_DTYPES[spec.dtype], "dims": dims}
    if not dims:
        # A batched tensor of shape [batch] has no per-item dims; Triton wants [1] reshaped to scalar.
        tensor["dims"] = [1]
        tensor["reshape"] = {"shape": []}
    return tensor


def _warmup(variant: VariantArtifact, batch_size: int, options: ServingOptions) -> dict[str, Any]:
    # Zero data is valid for every dtype, including token ids, where random data may be out of range.
    batched = options.batching
    inputs = {}
    for spec in variant.inputs:
        dims = [
            d if d > 0 else options.warmup_dynamic_dim for d in (spec.shape[1:] if batched else spec.shape)
        ]
        inputs[spec.name] = {"data_type": TRITON_DTYPES[spec.dtype], "dims": dims or [1], "zero_data": True}
    return {"name": f"zeros-batch-{batch_size}", "batch_size": batch_size, "inputs": inputs, "count": 1}


def build_model_config(
    model_name: str,
    variant: VariantArtifact,
    backend: BackendSpec,
    options: ServingOptions | None = None,
    extra_parameters: Mapping[str, str] | None = None,
) -> Any:
    """Build the ModelConfig message serving `variant` with `backend` under the name `model_name`.

    Returns:
        A `model_config_pb2.ModelConfig` message.

    Raises:
        InvalidModelConfigError: The variant cannot be expressed as a Triton config.
    """
    options = options or ServingOptions()
    batched = options.batching
    max_batch = variant.max_batch_size if batched else 0
    kind = "KIND_GPU" if variant.device == "gpu" else "KIND_CPU"
    config: dict[str, Any] = {
        "name": model_name,
        "backend": backend.backend,
        "max_batch_size": max_batch,
        "input": [_tensor(t, batched) for t in variant.inputs],
        "output": [_tensor(t, batched) for t in variant.outputs],
        "instance_group": [{"kind": kind, "count": options.instance_count}],
    }
    if backend.platform:
        config["platform"] = backend.platform
    if batched:
        batcher: dict[str, Any] = {"max_queue_delay_microseconds": options.max_queue_delay_microseconds}
        if options.max_queue_size:
            batcher["default_queue_policy"] = {"max_queue_size": options.max_queue_size}
        config["dynamic_batching"] = batcher
    parameters = {**options.parameters, **(extra_parameters or {})}
    if parameters:
        config["parameters"] = {key: {"string_value": value} for key, value in sorted(parameters.items())}
    if options.warmup:
        config["model_warmup"] = [_warmup(variant, max(max_batch, 1), options)]
    try:
        return json_format.ParseDict(config, ModelConfig())
    except json_format.ParseError as e:
        raise InvalidModelConfigError(
            f"model {model_name!r}: config does not fit ModelConfig", [str(e)]
        ) from e


def render_config(config: Any) -> str:
    """Render a ModelConfig as config.pbtxt text.

    proto3 drops zero scalars, and Triton's auto-complete then replaces a missing `max_batch_size` with
    its default (4); writing `max_batch_size: 0` explicitly keeps a non-batching model unbatched.
    """
    text = str(text_format.MessageToString(config))
    if config.max_batch_size == 0:
        text = "max_batch_size: 0\n" + text
    return text


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text into a ModelConfig message.

    Raises:
        InvalidModelConfigError: The text breaks the ModelConfig schema (unknown field, wrong type).
    """
    try:
        return text_format.Parse(text, ModelConfig())
    except text_format.ParseError as e:
        raise InvalidModelConfigError("config.pbtxt does not parse as ModelConfig", [str(e)]) from e


def _type_name(value: int) -> str:
    return str(model_config_pb2.DataType.Name(value))


def _io_problems(config: Any, variant: VariantArtifact | None) -> list[str]:
    problems: list[str] = []
    batched = config.max_batch_size > 0
    tensors = list(config.input) + list(config.output)
    if not config.input or not config.output:
        problems.append("input and output must not be empty")
    for tensor in tensors:
        if tensor.data_type == model_config_pb2.TYPE_INVALID:
            problems.append(f"tensor {tensor.name!r}: data_type must be set")
        if not tensor.dims:
            problems.append(f"tensor {tensor.name!r}: dims must not be empty")
        if any(d == 0 or d < -1 for d in tensor.dims):
            problems.append(f"tensor {tensor.name!r}: dims must be positive or -1, got {list(tensor.dims)}")
    if variant is None:
        return problems
    specs = {t.name: t for t in (*variant.inputs, *variant.outputs)}
    for tensor in tensors:
        spec = specs.get(tensor.name)
        if spec is None:
            problems.append(f"tensor {tensor.name!r}: not an input or output of variant {variant.name!r}")
            continue
        expected = list(spec.shape[1:] if batched else spec.shape) or [1]
        if list(tensor.dims) != expected:
            # The batch dimension is implicit exactly when max_batch_size > 0.
            problems.append(
                f"tensor {tensor.name!r}: dims {list(tensor.dims)} must be {expected} "
                f"with max_batch_size {config.max_batch_size}"
            )
        if _type_name(tensor.data_type) != TRITON_DTYPES.get(spec.dtype):
            problems.append(f"tensor {tensor.name!r}: data_type must match dtype {spec.dtype!r}")
    if variant.max_batch_size < config.max_batch_size:
        problems.append(
            f"max_batch_size {config.max_batch_size} exceeds the variant's {variant.max_batch_size}"
        )
    return problems


def _scheduling_problems(config: Any) -> list[str]:
    problems: list[str] = []
    max_batch = config.max_batch_size
    if max_batch < 0:
        problems.append("max_batch_size must be >= 0")
    if config.HasField("dynamic_batching"):
        if max_batch == 0:
            problems.append("dynamic_batching needs max_batch_size > 0")
        if any(size > max_batch for size in config.dynamic_batching.preferred_batch_size):
            problems.append("preferred_batch_size must not exceed max_batch_size")
    cpu_groups = [g for g in config.instance_group if g.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU]
    if cpu_groups and config.backend in _GPU_ONLY_BACKENDS:
        problems.append(f"backend {config.backend!r} needs KIND_GPU instances")
    inputs = {t.name for t in config.input}
    for warmup in config.model_warmup:
        if warmup.batch_size > max(max_batch, 1):
            problems.append(f"warmup {warmup.name!r}: batch_size must be <= max(max_batch_size, 1)")
        if set(warmup.inputs) != inputs:
            problems.append(f"warmup {warmup.name!r}: inputs must be exactly {sorted(inputs)}")
        if any(d < 1 for value in warmup.inputs.values() for d in value.dims):
            problems.append(f"warmup {warmup.name!r}: dims must be concrete (>= 1)")
    return problems


def _backend_problems(config: Any) -> list[str]:
    if not config.backend and not config.platform:
        return ["backend or platform must be set"]
    problems = []
    if config.platform and config.platform not in _PLATFORM_BACKEND:
        problems.append(f"platform {config.platform!r} must be one of {sorted(_PLATFORM_BACKEND)}")
    expected_backend = _PLATFORM_BACKEND.get(config.platform)
    if config.platform and config.backend and expected_backend and config.backend != expected_backend:
        problems.append(f"platform {config.platform!r} must go with backend {expected_backend!r}")
    if config.backend == PYTHON_BACKEND.backend and config.platform:
        problems.append("the python backend takes no platform")
    return problems


def _files_problems(config: Any, model_dir: Path) -> list[str]:
    if config.name != model_dir.name:
        return [f"name {config.name!r} must equal the directory name {model_dir.name!r}"]
    versions = [
        p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and not p.name.startswith("0")
    ]
    if not versions:
        return ["a numeric version directory (e.g. 1/) must exist"]
    backend = config.backend or _PLATFORM_BACKEND.get(config.platform, "")
    specs = [s for s in (*BACKENDS.values(), PYTHON_BACKEND) if s.backend == backend]
    files = list(specs[0].files) if specs else []
    if backend == PYTHON_BACKEND.backend and "model_filename" in config.parameters:
        files.append(config.parameters["model_filename"].string_value)
    if config.default_model_filename:
        files = [config.default_model_filename]
    return [f"{v.name}/{name} must exist" for v in versions for name in files if not (v / name).exists()]


def validate_config(
    config: Any, *, model_dir: Path | None = None, variant: VariantArtifact | None = None
) -> Any:
    """Check a config (ModelConfig message or config.pbtxt text) against Triton's schema and semantics.

    Args:
        config: A ModelConfig message or config.pbtxt text (parsed through the protobuf schema).
        model_dir: The model's directory; when given, its name and version files are checked too.
        variant: The variant served; when given, tensor names, dtypes and dims are checked against it.

    Returns:
        The parsed ModelConfig message.

    Raises:
        InvalidModelConfigError: With every problem found.
    """
    message = parse_config(config) if isinstance(config, str) else config
    problems = [
        *([] if message.name else ["name must be set"]),
        *_backend_problems(message),
        *_scheduling_problems(message),
        *_io_problems(message, variant),
        *(_files_problems(message, model_dir) if model_dir is not None else []),
    ]
    if problems:
        raise InvalidModelConfigError(f"model {message.name or '<unnamed>'!r} is not servable", problems)
    return message
