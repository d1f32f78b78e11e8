"""Typed description of one converted model variant's files, shared by the pipeline and the Triton writer.

This module is a stable interface: `thrifty_converters.triton.repository.write_variant` consumes
`VariantArtifact`. Add fields only with defaults; never rename or remove one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thrifty_api import variants

Format = variants.Format
Precision = variants.Precision
Device = variants.Device

# numpy dtype strings accepted for model I/O; Triton maps each to a TYPE_* enum.
DTYPES = frozenset(
    {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: Tensor name as bound in the model file.
        dtype: numpy dtype string, e.g. "float32" or "int64".
        shape: Full shape with the batch dimension first; -1 marks a dynamic dimension.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("tensor name must not be empty")
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: dtype {self.dtype!r} must be one of {sorted(DTYPES)}")
        if not self.shape:
            raise ValueError(f"tensor {self.name!r}: shape must include the batch dimension")
        if any(d < -1 or d == 0 for d in self.shape):
            raise ValueError(f"tensor {self.name!r}: dims must be positive or -1, got {self.shape}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VariantArtifact:
    """A converted, verified model file ready to be placed in a Triton model repository.

    Attributes:
        name: Variant name, e.g. "onnx-int8-dynamic".
        format: Serialization format of `path`.
        precision: Compute precision of the variant.
        path: Model file (.onnx, .plan, .pt) or the OpenVINO .xml (its .bin lies next to it).
        inputs: Inputs, batch dimension first.
        outputs: Outputs, batch dimension first.
        max_batch_size: Largest batch the variant was checked at; >= 1.
        device: Where the variant runs.
    """

    name: str
    format: Format
    precision: Precision
    path: Path
    inputs: tuple[TensorSpec, ...] | list[TensorSpec]
    outputs: tuple[TensorSpec, ...] | list[TensorSpec]
    max_batch_size: int
    device: Device

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("variant name must not be empty")
        if self.max_batch_size < 1:
            raise ValueError(f"variant {self.name!r}: max_batch_size must be >= 1")
        if not self.inputs or not self.outputs:
            raise ValueError(f"variant {self.name!r}: inputs and outputs must not be empty")
        # Freeze the lists so that a frozen dataclass is really immutable and hashable.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
