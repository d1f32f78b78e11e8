"""The variant catalogue: every runtime x precision a converter builds and the operator may select.

The CRD's `spec.optimization.variants` enum, the converter's build plan and the operator's GPU/CPU split all
read this one table, so a new variant is added here once.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

Name = Literal[
    "onnx-fp32",
    "onnx-int8-dynamic",
    "onnx-int8-static",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
    "onnx-fp16",
    "tensorrt-fp16",
]
Format = Literal["onnx", "openvino", "tensorrt", "torchscript"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
Device = Literal["cpu", "gpu"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Kind:
    """What one variant is and where its model file lies in its folder."""

    name: Name
    format: Format
    precision: Precision
    device: Device
    file: str
    """Model file inside `variants/<name>/` (OpenVINO's `.bin` lies next to its `.xml`)."""


CATALOGUE: tuple[Kind, ...] = (
    Kind(name="onnx-fp32", format="onnx", precision="fp32", device="cpu", file="model.onnx"),
    Kind(name="onnx-int8-dynamic", format="onnx", precision="int8", device="cpu", file="model.onnx"),
    Kind(name="onnx-int8-static", format="onnx", precision="int8", device="cpu", file="model.onnx"),
    Kind(name="openvino-fp32", format="openvino", precision="fp32", device="cpu", file="model.xml"),
    Kind(name="openvino-bf16", format="openvino", precision="bf16", device="cpu", file="model.xml"),
    Kind(name="openvino-int8", format="openvino", precision="int8", device="cpu", file="model.xml"),
    Kind(name="onnx-fp16", format="onnx", precision="fp16", device="gpu", file="model.onnx"),
    Kind(name="tensorrt-fp16", format="tensorrt", precision="fp16", device="gpu", file="model.plan"),
)
BY_NAME: dict[str, Kind] = {k.name: k for k in CATALOGUE}
ALL: tuple[Name, ...] = tuple(k.name for k in CATALOGUE)
CPU: tuple[Name, ...] = tuple(k.name for k in CATALOGUE if k.device == "cpu")
GPU: tuple[Name, ...] = tuple(k.name for k in CATALOGUE if k.device == "gpu")
# What an OptimizedModel builds when it lists no variants: the ones that need no calibration set.
DEFAULT: tuple[Name, ...] = (
    "onnx-fp32",
    "onnx-int8-dynamic",
    "openvino-fp32",
    "openvino-bf16",
    "onnx-fp16",
    "tensorrt-fp16",
)
if get_args(Name) != ALL:
    raise AssertionError("the variant catalogue and the Name literal must list the same variants in order")
