"""S3: ONNX Runtime INT8 quantization, dynamic and static QDQ.

Every quantization argument is passed explicitly: ORT's defaults changed across releases (QOperator
+ QUInt8 once, QDQ + QInt8 now), and a silent default change must not change our artifacts.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import cpu
from ..examples import Array, Samples
from . import base

DYNAMIC = "onnx-int8-dynamic"
STATIC = "onnx-int8-static"
CALIBRATION_BATCH = 8


def dynamic(src: Path, out: Path) -> base.StageResult:
    """Weights to INT8 ahead of time, activations quantized at run time (best for transformers)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if (done := base.existing(DYNAMIC, out)) is not None:
        return done
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                model_input=src,
                model_output=out,
                per_channel=False,
                # Without VNNI, u8*s8 products can saturate 16-bit accumulators: use 7-bit weights.
                reduce_range=not cpu.has_vnni(),
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as e:  # ORT quantization raises plain Exceptions
        out.unlink(missing_ok=True)
        return base.failed(DYNAMIC, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(DYNAMIC, out, time.monotonic() - started, reduce_range=str(not cpu.has_vnni()))


class _Reader:
    """Feeds calibration batches to ORT's calibrator."""

    def __init__(self, samples: Samples, names: list[str]) -> None:
        self._batches: Iterator[dict[str, Array]] = iter(
            {n: b[n] for n in names}
            for b in (samples.batch(i, CALIBRATION_BATCH) for i in range(0, samples.count, CALIBRATION_BATCH))
        )

    def get_next(self) -> dict[str, Array] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # ORT's CalibrationDataReader interface; one pass is enough for MinMax
        pass


def static(src: Path, work: Path, out: Path, calibration: Samples | None) -> base.StageResult:
    """QDQ INT8 with activation ranges from the calibration set (best for CNNs)."""
    if (done := base.existing(STATIC, out)) is not None:
        return done
    if calibration is None:
        return base.skipped(STATIC, "no calibration set (--calibration)")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    started = time.monotonic()
    pre = work / "preprocessed.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Shape inference + optimization here, so quantize_static sees a clean graph.
            quant_pre_process(str(src), str(pre), skip_optimization=False, skip_symbolic_shape=False)
            names = _input_names(pre)
            quantize_static(
                model_input=pre,
                model_output=out,
                calibration_data_reader=_Reader(calibration, names),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,  # asymmetric activations, the CPU recommendation
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=not cpu.has_vnni(),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    except Exception as e:  # ORT quantization raises plain Exceptions
        out.unlink(missing_ok=True)
        return base.failed(STATIC, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(STATIC, out, time.monotonic() - started, calibration_samples=str(calibration.count))


def _input_names(path: Path) -> list[str]:
    import onnx

    model: Any = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]
