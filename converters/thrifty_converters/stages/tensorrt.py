"""S4-S6: GPU variants, FP16 ONNX for ONNX Runtime's CUDA provider and a strongly typed TensorRT engine.

Both need an NVIDIA GPU; without one they report `skipped: no GPU` and never pretend to succeed.
tensorrt and onnxconverter-common are imported only here and only when a GPU is present.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from .. import cpu, errors
from . import base

FP16 = "onnx-fp16"
TRT_FP16 = "tensorrt-fp16"
WORKSPACE_BYTES = 1 << 30


def onnx_fp16(src: Path, out: Path, target: str) -> base.StageResult:
    """FP16 ONNX with FP32 I/O (keep_io_types), so clients send the same tensors as for FP32."""
    if not cpu.has_gpu():
        return base.skipped(FP16, "no GPU")
    if target != "gpu":
        return base.skipped(FP16, "target is cpu")
    if (done := base.existing(FP16, out)) is not None:
        return done
    if (missing := _missing("onnxconverter_common")) is not None:
        return base.skipped(FP16, missing)
    started = time.monotonic()
    try:
        import onnx
        from onnxconverter_common import float16

        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(out))
    except Exception as e:  # converter raises many types
        errors.raise_if_storage(e)
        return base.failed(FP16, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(FP16, out, time.monotonic() - started)


def tensorrt_fp16(
    fp16_onnx: Path | None, out: Path, target: str, shapes: dict[str, tuple[tuple[int, ...], ...]]
) -> base.StageResult:
    """Build a TensorRT plan from the FP16 ONNX; `shapes` maps input name to (min, opt, max) shapes.

    Strongly typed: the precisions come from the ONNX tensor types, not from builder flags, which
    TensorRT 10.12 deprecated and TensorRT 11 removed.
    """
    if not cpu.has_gpu():
        return base.skipped(TRT_FP16, "no GPU")
    if target != "gpu":
        return base.skipped(TRT_FP16, "target is cpu")
    if fp16_onnx is None:
        return base.skipped(TRT_FP16, "no FP16 ONNX model")
    if (done := base.existing(TRT_FP16, out)) is not None:
        return done
    if (missing := _missing("tensorrt")) is not None:
        return base.skipped(TRT_FP16, missing)
    started = time.monotonic()
    try:
        plan = _build(fp16_onnx, shapes)
    except Exception as e:  # TensorRT raises RuntimeError/TypeError; the parser reports errors itself
        errors.raise_if_storage(e)
        return base.failed(TRT_FP16, f"{type(e).__name__}: {e}", time.monotonic() - started)
    out.write_bytes(plan)
    return base.ok(TRT_FP16, out, time.monotonic() - started)


def _missing(module: str) -> str | None:
    """The skip reason when an optional GPU package is absent (install converters[gpu])."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (install thrifty-converters[gpu])"
    return None


def _build(onnx_path: Path, shapes: dict[str, tuple[tuple[int, ...], ...]]) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"ONNX parser: {problems}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized: Any = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT builder returned no engine (see its log)")
    return bytes(serialized)
