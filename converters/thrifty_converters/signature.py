"""`--signature`: the model's inputs and outputs as the operator passes them (OptimizedModel spec.signature).

When no `--inputs` file is given, example inputs are generated from it: integer inputs are token ids in a
small range (all ones when the name says it is a mask, zeros for token-type ids), float inputs are standard
normal; always seeded, so two runs on the same spec see the same tensors.
"""

from __future__ import annotations

import json
import math
from typing import Literal

import numpy as np
import pydantic

from . import errors, examples

# Size given to dynamic (-1) dimensions other than the batch: a short sentence, a small image side.
DYNAMIC_DIM = 16
# Token ids stay below this: valid for any vocabulary, and avoids the special tokens of common tokenizers
# only by chance, which is fine for parity and profiling.
MAX_TOKEN_ID = 1000
SEED = 0
# Generated examples stay below this size; a bigger model input needs its examples given (--inputs).
MAX_GENERATED_BYTES = 1 << 30

DType = Literal["float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"]


class TensorSpec(pydantic.BaseModel):
    """One named tensor; `shape` excludes the batch axis and uses -1 for dynamic dimensions."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    name: str = pydantic.Field(min_length=1)
    dtype: DType
    shape: list[int] = pydantic.Field(min_length=1)

    @pydantic.field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError(f"dimensions must be positive or -1, got {shape}")
        return shape


class Signature(pydantic.BaseModel):
    """Inputs in the order the model takes them, and outputs in the order it returns them."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    inputs: list[TensorSpec] = pydantic.Field(min_length=1)
    outputs: list[TensorSpec] = pydantic.Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> Signature:
        for side in (self.inputs, self.outputs):
            names = [t.name for t in side]
            if len(set(names)) != len(names):
                raise ValueError(f"tensor names must be unique, got {names}")
        return self


def parse(text: str) -> Signature:
    """Read `--signature`; raises `OptionError` with a one-line reason."""
    try:
        return Signature.model_validate(json.loads(text))
    except ValueError as e:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
        first = str(e).replace("\n", " ")[:200]
        raise errors.OptionError(f"--signature is not a valid signature JSON: {first}") from e


def _dtype(name: DType) -> np.dtype[np.generic]:
    # numpy has no bfloat16: the example is float32 and the exporter casts at the model's boundary.
    return np.dtype("float32" if name == "bfloat16" else name)


def generate(sig: Signature, count: int, seed: int = SEED) -> examples.Samples:
    """`count` example samples per input of `sig`."""
    rng = np.random.default_rng(seed)
    shapes = {spec.name: (count, *(DYNAMIC_DIM if d == -1 else d for d in spec.shape)) for spec in sig.inputs}
    size = sum(math.prod(shapes[spec.name]) * _dtype(spec.dtype).itemsize for spec in sig.inputs)
    if size > MAX_GENERATED_BYTES:
        raise errors.OptionError(
            f"--signature: {count} generated examples of its inputs would take {size / 2**30:.1f} GiB "
            f"(at most {MAX_GENERATED_BYTES / 2**30:g}); give example inputs with --inputs"
        )
    arrays: dict[str, examples.Array] = {}
    for spec in sig.inputs:
        shape = shapes[spec.name]
        dtype = _dtype(spec.dtype)
        lowered = spec.name.lower()
        if dtype.kind == "b":
            arrays[spec.name] = np.ones(shape, dtype=dtype)
        elif dtype.kind in "iu":
            if "mask" in lowered:
                arrays[spec.name] = np.ones(shape, dtype=dtype)
            elif "type" in lowered:
                arrays[spec.name] = np.zeros(shape, dtype=dtype)
            else:
                high = min(MAX_TOKEN_ID, int(np.iinfo(dtype.name).max))
                arrays[spec.name] = rng.integers(1, high, size=shape).astype(dtype)
        else:
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
    return examples.Samples(arrays=arrays)
