"""S3 (OpenVINO): IR conversion at FP32, a BF16 variant where the CPU has BF16, and NNCF INT8.

BF16 is a run-time inference precision in OpenVINO, not a file format: the bf16 variant is the FP32
IR compiled with INFERENCE_PRECISION_HINT=bf16, kept in its own folder so it is served separately.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .. import errors
from ..examples import Samples
from . import base

FP32 = "openvino-fp32"
BF16 = "openvino-bf16"
INT8 = "openvino-int8"


def cpu_supports_bf16() -> bool:
    """OpenVINO's own view of the CPU (native avx512_bf16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def fp32(src: Path, out: Path) -> base.StageResult:
    """Convert the ONNX export to an OpenVINO IR (`out` is the .xml) without FP16 weight compression."""
    if (done := base.existing(FP32, out)) is not None:
        return done
    started = time.monotonic()
    try:
        import openvino as ov

        model = ov.convert_model(str(src))
        ov.save_model(model, str(out), compress_to_fp16=False)
    except Exception as e:  # OpenVINO raises RuntimeError/OpConversionFailure
        errors.raise_if_storage(e)
        return base.failed(FP32, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(FP32, out, time.monotonic() - started)


def bf16(fp32_xml: Path, out: Path) -> base.StageResult:
    """Copy the FP32 IR as the bf16 variant when the CPU executes BF16 natively."""
    if (done := base.existing(BF16, out)) is not None:
        return done
    if not cpu_supports_bf16():
        return base.skipped(BF16, "CPU has no BF16 support (needs avx512_bf16 or AMX)")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fp32_xml.with_suffix(".bin"), out.with_suffix(".bin"))
    shutil.copyfile(fp32_xml, out)
    return base.ok(BF16, out, 0.0, inference_precision_hint="bf16")


def int8(fp32_xml: Path, out: Path, calibration: Samples | None, transformer: bool) -> base.StageResult:
    """Post-training INT8 with NNCF on the calibration set."""
    if (done := base.existing(INT8, out)) is not None:
        return done
    if calibration is None:
        return base.skipped(INT8, "no calibration set (--calibration)")
    try:
        import nncf  # type: ignore[import-untyped]
    except ImportError as e:
        return base.skipped(INT8, f"nncf is not installed ({e})")
    import openvino as ov

    started = time.monotonic()
    try:
        model = ov.Core().read_model(str(fp32_xml))
        names = [p.get_any_name() for p in model.inputs]
        items = [calibration.batch(i, 1) for i in range(calibration.count)]
        dataset = nncf.Dataset(items, lambda item: {n: item[n] for n in names})
        with base.quiet():  # NNCF draws progress bars on stdout
            quantized = nncf.quantize(
                model,
                dataset,
                preset=nncf.QuantizationPreset.MIXED if transformer else nncf.QuantizationPreset.PERFORMANCE,
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                subset_size=min(300, calibration.count),
            )
        ov.save_model(quantized, str(out), compress_to_fp16=False)
    except Exception as e:  # NNCF raises many types
        errors.raise_if_storage(e)
        return base.failed(INT8, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(INT8, out, time.monotonic() - started, calibration_samples=str(calibration.count))
