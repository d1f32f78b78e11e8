"""Tiny real models to exercise a Triton deployment end to end (the Triton and end-to-end tests).

y = relu(x @ W + b), x float32 [batch, 4], y float32 [batch, 3]. Needs onnx (and openvino for the IR,
onnxruntime for the reference outputs), imported lazily so that the module imports without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from thrifty_converters.artifact import Device, Format, Precision, TensorSpec, VariantArtifact

FEATURES = 4
CLASSES = 3
MAX_BATCH = 8


def build_onnx(path: Path) -> Path:
    """Write the tiny model as ONNX (opset 17, dynamic batch, fixed weights) to `path`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(FEATURES * CLASSES, dtype=np.float32).reshape(FEATURES, CLASSES) - 5.0) / 7.0
    bias = np.array([0.5, -0.25, 0.125], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["pre"]),
            helper.make_node("Relu", ["pre"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime in range
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """OpenVINO IR of the ONNX model, kept in FP32 (save_model compresses to FP16 by default)."""
    import openvino as ov

    ov.save_model(ov.convert_model(onnx_path), xml_path, compress_to_fp16=False)
    return xml_path


def variant(
    name: str, fmt: Format, path: Path, device: Device = "cpu", precision: Precision = "fp32"
) -> VariantArtifact:
    """The tiny model's variant description for a model file in format `fmt`."""
    return VariantArtifact(
        name=name,
        format=fmt,
        precision=precision,
        path=path,
        inputs=(TensorSpec(name="x", dtype="float32", shape=(-1, FEATURES)),),
        outputs=(TensorSpec(name="y", dtype="float32", shape=(-1, CLASSES)),),
        max_batch_size=MAX_BATCH,
        device=device,
    )


def reference(onnx_path: Path, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """onnxruntime's output for `x`, the ground truth served outputs are compared with."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], {"x": x})[0])
