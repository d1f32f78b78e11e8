"""Do the example sets fit the model? Names, count, dtypes and shapes, as "expected ... got ...".

Checked before any conversion against what is declared: `--signature`, an ONNX graph's inputs, a
torch.export program's placeholders and a TorchScript forward's arguments (names and count only: TorchScript
keeps no shapes). What the declarations cannot tell is found by running the model on one sample of each
set (`pipeline._reference`), whose failure is reported with the model's own words.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import errors, examples, signature, source

PREFIX = "inputs do not match the model"


def shape_text(shape: Sequence[int], *, batch: bool = True) -> str:
    """A shape as users read it: `(N, 16)` with N the batch axis and `?` other dynamic dimensions."""
    dims = ["N" if batch and i == 0 and d < 0 else ("?" if d < 0 else str(d)) for i, d in enumerate(shape)]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def _dtype_ok(expected: str | None, got: str) -> bool:
    # numpy has no bfloat16: such inputs come as float32 and are cast at the model's boundary.
    return expected is None or expected == got or (expected == "bfloat16" and got == "float32")


def _shape_ok(expected: tuple[int, ...] | None, got: tuple[int, ...]) -> bool:
    if expected is None:
        return True
    if len(expected) != len(got):
        return False
    return all(e < 0 or e == g for e, g in zip(expected[1:], got[1:], strict=True))


def _compare(where: str, name: str, array: examples.Array, expected: source.InputSpec, against: str) -> None:
    got = tuple(int(d) for d in array.shape)
    if _dtype_ok(expected.dtype, array.dtype.name) and _shape_ok(expected.shape, got):
        return
    want = expected.dtype or "any dtype"
    if expected.shape is not None:
        want += f" of shape {shape_text(expected.shape)}"
    which = f"input {name!r}" if name == expected.name else f"input {name!r} (model input {expected.name!r})"
    raise errors.InputMismatchError(
        f"{against}: {where}: {which}: expected {want}, got {array.dtype.name} of shape {got}"
    )


def _names(where: str, got: list[str], expected: list[str], against: str, *, ordered: bool) -> None:
    if (got == expected) if ordered else (set(got) == set(expected)):
        return
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing:
        detail = f"lacks input {missing[0]!r}"
    elif extra:
        detail = f"has array {extra[0]!r}, not an input of the model"
    else:
        detail = "has the arrays in another order"
    raise errors.InputMismatchError(f"{against}: {where} {detail}: expected arrays {expected}, got {got}")


def check_model(src: source.SourceModel, max_batch_size: int) -> None:
    """The model must take batches of 1 and of `max_batch_size`: a fixed batch axis cannot."""
    for spec in src.inputs:
        fixed = spec.shape[0] if spec.shape else -1
        if fixed > 0 and {1, max_batch_size} != {fixed}:
            raise errors.InputMismatchError(
                f"{PREFIX}: model input {spec.name!r} has a fixed batch size of {fixed} "
                f"(shape {shape_text(spec.shape or ())}); export it with a dynamic batch axis"
            )


def check_set(
    where: str, samples: examples.Samples, src: source.SourceModel, sig: signature.Signature | None
) -> None:
    """Raise `InputMismatchError` when `samples` (from `where`) do not fit `sig` or the model."""
    got = list(samples.arrays)
    if sig is not None:
        against = "inputs do not match --signature"
        _names(where, got, [s.name for s in sig.inputs], against, ordered=src.kind != "onnx")
        for tensor in sig.inputs:
            want = source.InputSpec(name=tensor.name, dtype=tensor.dtype, shape=(-1, *tensor.shape))
            _compare(where, tensor.name, samples.arrays[tensor.name], want, against)
    if src.kind == "onnx":
        _names(where, got, [s.name for s in src.inputs], PREFIX, ordered=False)
        for spec in src.inputs:
            _compare(where, spec.name, samples.arrays[spec.name], spec, PREFIX)
        return
    required = src.required_inputs if src.required_inputs is not None else len(src.inputs)
    if src.inputs and not required <= len(got) <= len(src.inputs):
        declared = [s.name for s in src.inputs]
        count = f"{required}" if required == len(declared) else f"{required} to {len(declared)}"
        raise errors.InputMismatchError(
            f"{PREFIX}: {where}: expected {count} input array(s), the model's inputs {declared} in order, "
            f"got {len(got)}: {got}"
        )
    for name, spec in zip(got, src.inputs, strict=False):  # torch models take their inputs by position
        _compare(where, name, samples.arrays[name], spec, PREFIX)
