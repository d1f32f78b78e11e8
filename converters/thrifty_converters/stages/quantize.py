"""S3: ONNX Runtime INT8 quantization, dynamic and static QDQ.

Every quantization argument is passed explicitly: ORT's defaults changed across releases (QOperator
+ QUInt8 once, QDQ + QInt8 now), and a silent default change must not change our artifacts.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import cpu, errors, parity
from ..examples import Array, Samples
from . import base

DYNAMIC = "onnx-int8-dynamic"
STATIC = "onnx-int8-static"
CALIBRATION_BATCH = 8
_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
# The sensitivity pass keeps every intermediate tensor of both models: one small batch is enough.
SENSITIVITY_SAMPLES = 4
_UUID_DATA = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.data")


def dynamic(src: Path, out: Path) -> base.StageResult:
    """Weights to INT8 ahead of time, activations quantized at run time (best for transformers)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if (done := base.existing(DYNAMIC, out)) is not None:
        return done
    started = time.monotonic()
    try:
        with base.quiet():
            quantize_dynamic(
                model_input=src,
                model_output=out,
                # Weight MatMuls only: quantizing embedding Gathers costs accuracy and saves no time.
                op_types_to_quantize=["MatMul", "Attention", "Gemm"],
                # Per-channel scales: per-tensor drops MiniLM's embedding cosine from 0.994 to 0.945.
                per_channel=True,
                # Without VNNI, u8*s8 products can saturate 16-bit accumulators: use 7-bit weights.
                reduce_range=not cpu.has_vnni(),
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as e:  # ORT quantization raises plain Exceptions
        errors.raise_if_storage(e)
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

    def __iter__(self) -> Iterator[dict[str, Array]]:  # what ORT's QDQ debugging tools read
        return self._batches


def static(src: Path, work: Path, out: Path, calibration: Samples | None) -> base.StageResult:
    """QDQ INT8 with activation ranges from the calibration set (best for CNNs).

    When the fully quantized model disagrees with the float one on the calibration set (the gate's
    cosine / top-1 test), the nodes whose input activations quantize worst (lowest SQNR, from ONNX
    Runtime's QDQ debugging tools) stay in float: an eighth, a quarter, then half of them, until it
    agrees. Transformers need this: the feed-forward output projections see activations after GELU
    whose range one 8-bit scale cannot hold. The variant's gate still judges the result against
    PyTorch on held-aside inputs.
    """
    if (done := base.existing(STATIC, out)) is not None:
        return done
    if calibration is None:
        return base.skipped(STATIC, "no calibration set (--calibration)")
    started = time.monotonic()
    pre = work / "preprocessed.onnx"
    try:
        # ORT's symbolic shape inference dumps a ~90 MB debug model into the current folder when it
        # gives up; keep that inside our work folder, not the caller's.
        src_abs, pre_abs = src.resolve(), pre.resolve()
        with base.quiet(), contextlib.chdir(work):
            _pre_process(src_abs, pre_abs)
        _remove_debug_dump(work)
        names = _input_names(pre)
        _quantize(pre, out, calibration, names, [])
        details = {"calibration_samples": str(calibration.count)}
        check = _agreement(pre, out, calibration, names)
        if not check.passed:
            details |= _exclude_sensitive(pre, out, work, calibration, names, check)
    except Exception as e:  # ORT quantization raises plain Exceptions
        errors.raise_if_storage(e)
        out.unlink(missing_ok=True)
        return base.failed(STATIC, f"{type(e).__name__}: {e}", time.monotonic() - started)
    return base.ok(STATIC, out, time.monotonic() - started, **details)


def _quantize(pre: Path, out: Path, calibration: Samples, names: list[str], exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with base.quiet():
        quantize_static(
            model_input=pre,
            model_output=out,
            calibration_data_reader=_Reader(calibration, names),
            # Compute-heavy ops only: quantizing Add/Softmax inputs lets the attention mask's
            # huge negative fill values set the range, which wrecks every other activation.
            op_types_to_quantize=list(_QUANTIZED_OPS),
            nodes_to_exclude=exclude,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,  # asymmetric activations, the CPU recommendation
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=not cpu.has_vnni(),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )


def _agreement(pre: Path, qdq: Path, calibration: Samples, names: list[str]) -> parity.Parity:
    """The gate's reduced-precision test, QDQ model against the float model on the calibration set."""
    from ..runtimes import ort_runner

    starts = range(0, calibration.count, CALIBRATION_BATCH)
    batches = [calibration.batch(i, CALIBRATION_BATCH) for i in starts]
    reference, quantized = ort_runner(pre), ort_runner(qdq)
    ref = [np.concatenate(parts) for parts in zip(*(reference(b) for b in batches), strict=True)]
    got = [np.concatenate(parts) for parts in zip(*(quantized(b) for b in batches), strict=True)]
    return parity.compare(ref, got, "int8")


def _exclude_sensitive(
    pre: Path, out: Path, work: Path, calibration: Samples, names: list[str], first: parity.Parity
) -> dict[str, str]:
    """Re-quantize with the most sensitive nodes left in float until the model agrees; keep the last try."""
    ranked = _sensitive_nodes(pre, out, work, calibration, names)
    details = {"full_quantization_cosine": f"{first.mean_cosine:.4f}"}
    for share in (8, 4, 2):
        exclude = ranked[: max(1, len(ranked) // share)]
        _quantize(pre, out, calibration, names, exclude)
        check = _agreement(pre, out, calibration, names)
        details |= {"nodes_in_float": f"{len(exclude)} of {len(ranked)}"}
        details |= {"cosine": f"{check.mean_cosine:.4f}"}
        if check.passed:
            break
    return details


def _sensitive_nodes(pre: Path, qdq: Path, work: Path, calibration: Samples, names: list[str]) -> list[str]:
    """Quantized nodes, worst first: the lowest SQNR (dB) of their activation inputs through Q/DQ."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    float_aug, qdq_aug = work / "sensitivity-float.onnx", work / "sensitivity-qdq.onnx"
    one = Samples(arrays=calibration.batch(0, min(SENSITIVITY_SAMPLES, calibration.count)))
    try:
        with base.quiet():
            modify_model_output_intermediate_tensors(str(pre), str(float_aug), save_as_external_data=False)
            modify_model_output_intermediate_tensors(str(qdq), str(qdq_aug), save_as_external_data=False)
            matched = create_activation_matching(
                collect_activations(str(qdq_aug), _Reader(one, names)),
                collect_activations(str(float_aug), _Reader(one, names)),
            )
            errors = compute_activation_error(matched)
    finally:
        float_aug.unlink(missing_ok=True)
        qdq_aug.unlink(missing_ok=True)
    model: Any = onnx.load(str(pre), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    scored = []
    for node in model.graph.node:
        if node.op_type not in _QUANTIZED_OPS:
            continue
        sqnr = [float(errors[i]["qdq_err"]) for i in node.input if i in errors and i not in weights]
        if sqnr:
            scored.append((min(sqnr), node.name))
    return [name for _, name in sorted(scored)]


def _pre_process(src: Path, pre: Path) -> None:
    """Shape inference + optimization before quantize_static, as ORT recommends.

    Symbolic shape inference gives up on some dynamo exports ("Incomplete symbolic shape
    inference"); ONNX's own shape inference is then enough for QDQ placement.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(pre), skip_optimization=False, skip_symbolic_shape=False)
    except Exception:  # ORT raises a bare Exception here
        quant_pre_process(str(src), str(pre), skip_optimization=False, skip_symbolic_shape=True)


def _remove_debug_dump(work: Path) -> None:
    (work / "sym_shape_infer_temp.onnx").unlink(missing_ok=True)
    for data in work.glob("*.data"):
        if _UUID_DATA.fullmatch(data.name):
            data.unlink()


def _input_names(path: Path) -> list[str]:
    import onnx

    model: Any = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]
