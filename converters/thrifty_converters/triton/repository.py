"""Write one converted variant as a Triton model directory: `<repo>/<model>/config.pbtxt` + `1/<files>`.

Naming: a variant served by its native backend is the model `<variant.name>`; the same CPU variant served
through the Python backend (ONNX Runtime or OpenVINO inside `model.py`) is `<variant.name>-py`. Both can
live in one repository; callers may still pass any valid name.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..artifact import VariantArtifact
from . import model_config as triton_config
from .errors import InvalidModelConfigError

MODEL_VERSION = "1"
PYTHON_BACKEND_SUFFIX = "-py"
# Formats the Python-backend model can run, and the runtime it uses for each.
PYTHON_RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}
# OpenVINO INFERENCE_PRECISION_HINT per variant precision: the CPU plugin would otherwise pick bf16 on
# CPUs that have it and miss the tolerance the variant was verified at. INT8 IRs keep the plugin default.
_OPENVINO_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}

_PYTHON_MODEL_SOURCE = Path(__file__).with_name("_python_model.py")
# Triton model names become directory names and URL path segments.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def native_model_name(variant: VariantArtifact) -> str:
    """Model name of `variant` served by its native backend."""
    return variant.name


def python_model_name(variant: VariantArtifact) -> str:
    """Model name of `variant` served through the Python backend."""
    return variant.name + PYTHON_BACKEND_SUFFIX


def _check_name(model_name: str) -> None:
    if not _MODEL_NAME.match(model_name):
        raise InvalidModelConfigError(
            f"model name {model_name!r} must match {_MODEL_NAME.pattern} (it becomes a directory and URL)"
        )


def _onnx_sidecars(model: Path) -> list[Path]:
    # External-data files keep their names: the graph refers to them by relative location.
    names = {f"{model.name}.data", f"{model.stem}.data", f"{model.stem}.onnx_data", f"{model.stem}.onnx.data"}
    return [model.with_name(name) for name in sorted(names) if model.with_name(name).is_file()]


def _model_files(variant: VariantArtifact) -> dict[str, Path]:
    """Map of file name in the version directory -> source file, for the variant's format."""
    source = Path(variant.path)
    if not source.is_file():
        raise InvalidModelConfigError(f"variant {variant.name!r}: model file {source} must exist")
    target = triton_config.BACKENDS[variant.format].files[0]
    files = {target: source}
    if variant.format == "onnx":
        files.update({sidecar.name: sidecar for sidecar in _onnx_sidecars(source)})
    if variant.format == "openvino":
        weights = source.with_suffix(".bin")
        if not weights.is_file():
            raise InvalidModelConfigError(f"variant {variant.name!r}: OpenVINO weights {weights} must exist")
        files["model.bin"] = weights
    return files


def _install(repo_dir: Path, model_name: str, files: dict[str, Path], config_text: str) -> Path:
    """Assemble the model directory beside its final place, then swap it in.

    A Triton polling the repository never sees a half-written model, and rewriting a model is idempotent.
    """
    repo_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_name}.", dir=repo_dir))
    try:
        version_dir = staging / MODEL_VERSION
        version_dir.mkdir()
        for name, source in files.items():
            shutil.copyfile(source, version_dir / name)
        (staging / "config.pbtxt").write_text(config_text, encoding="utf-8")
        model_dir = repo_dir / model_name
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staging.rename(model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model_dir


def _write(
    repo_dir: Path,
    model_name: str,
    variant: VariantArtifact,
    model_config: object,
    files: dict[str, Path],
) -> Path:
    text = triton_config.render_config(model_config)
    # Round-trip the rendered text before touching the repository: what Triton reads is what we checked.
    triton_config.validate_config(text, variant=variant)
    model_dir = _install(repo_dir, model_name, files, text)
    triton_config.validate_config(text, model_dir=model_dir)
    return model_dir


def write_variant(
    repo_dir: Path,
    model_name: str,
    variant: VariantArtifact,
    options: triton_config.ServingOptions | None = None,
) -> Path:
    """Write `variant` for its native Triton backend (onnxruntime, openvino, tensorrt or pytorch).

    Args:
        repo_dir: Model repository root; created if missing.
        model_name: Triton model name, usually `native_model_name(variant)`.
        variant: The converted model.
        options: Scheduling knobs; defaults to `ServingOptions()`.

    Returns:
        The model directory `<repo_dir>/<model_name>`.

    Raises:
        InvalidModelConfigError: Bad name, missing files, or a config failing validation.
    """
    _check_name(model_name)
    backend = triton_config.BACKENDS.get(variant.format)
    if backend is None:
        raise InvalidModelConfigError(f"variant {variant.name!r}: format {variant.format!r} has no backend")
    model_config = triton_config.build_model_config(model_name, variant, backend, options)
    return _write(repo_dir, model_name, variant, model_config, _model_files(variant))


def validate_model(model_dir: Path, variant: VariantArtifact | None = None) -> Any:
    """Parse `<model_dir>/config.pbtxt` through the ModelConfig schema and check it and the files.

    Returns:
        The parsed `model_config_pb2.ModelConfig`.

    Raises:
        InvalidModelConfigError: Missing or invalid config.pbtxt, or missing model files.
    """
    try:
        text = (model_dir / "config.pbtxt").read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidModelConfigError(f"{model_dir}/config.pbtxt must be readable", [str(e)]) from e
    return triton_config.validate_config(text, model_dir=model_dir, variant=variant)


def write_python_backend_variant(
    repo_dir: Path,
    model_name: str,
    variant: VariantArtifact,
    options: triton_config.ServingOptions | None = None,
    *,
    intra_op_threads: int = 0,
) -> Path:
    """Write a CPU ONNX or OpenVINO `variant` as a Python-backend model running ORT or OpenVINO.

    This serves images (such as the CPU tritonserver in nvidia-pytriton) that only have the Python
    backend. The interpreter running `model.py` must provide numpy and onnxruntime or openvino.

    Args:
        repo_dir: Model repository root; created if missing.
        model_name: Triton model name, usually `python_model_name(variant)`.
        variant: A CPU variant in "onnx" or "openvino" format.
        options: Scheduling knobs; defaults to `ServingOptions()`.
        intra_op_threads: Runtime threads per instance; 0 keeps the runtime's default.

    Returns:
        The model directory `<repo_dir>/<model_name>`.

    Raises:
        InvalidModelConfigError: Unsupported format or device, bad name, missing files, invalid config.
    """
    _check_name(model_name)
    runtime = PYTHON_RUNTIMES.get(variant.format)
    if runtime is None or variant.device != "cpu":
        raise InvalidModelConfigError(
            f"variant {variant.name!r}: the Python backend serves CPU onnx or openvino variants, "
            f"not {variant.device} {variant.format}"
        )
    if intra_op_threads < 0:
        raise InvalidModelConfigError("intra_op_threads must be >= 0")
    files = _model_files(variant)
    parameters = {"runtime": runtime, "model_filename": triton_config.BACKENDS[variant.format].files[0]}
    if intra_op_threads:
        parameters["intra_op_threads"] = str(intra_op_threads)
    if runtime == "openvino" and variant.precision in _OPENVINO_PRECISION:
        parameters["inference_precision"] = _OPENVINO_PRECISION[variant.precision]
    model_config = triton_config.build_model_config(
        model_name, variant, triton_config.PYTHON_BACKEND, options, extra_parameters=parameters
    )
    files["model.py"] = _PYTHON_MODEL_SOURCE
    return _write(repo_dir, model_name, variant, model_config, files)
