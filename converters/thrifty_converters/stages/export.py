"""S1: export a torch model to ONNX with dynamic batch (and sequence) axes, then check it.

The dynamo exporter goes first (it records shape constraints instead of freezing a trace); the
TorchScript exporter is the fallback. The file is accepted only if ONNX Runtime reproduces the
reference outputs at batch 1 and at the maximum batch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import errors, parity, runtimes
from ..examples import Array, Samples
from ..source import SourceModel
from . import base

OPSET = 18
LEGACY_OPSET = 17  # the TorchScript exporter's best-tested opset
# Exporter messages that name the operator: "aten::fft_fft", "aten.fft_fft.default", "'aten::foo'".
_OPERATOR = re.compile(r"\b(aten|prim|prims|torchvision)(::|\.)([A-Za-z0-9_]+)")


def dynamic_dims(array: Array) -> dict[int, str]:
    """Dynamic axes of one input: batch always; axis 1 of integer inputs (token ids) is the sequence."""
    dims = {0: "batch"}
    if array.dtype.kind in "iu" and array.ndim >= 2:
        dims[1] = "sequence"
    return dims


def run(
    source: SourceModel,
    examples: Samples,
    reference: runtimes.Runner,
    out: Path,
    max_batch: int,
    *,
    output_names: list[str] | None = None,
) -> base.StageResult:
    """Write `out` (model.onnx); raises `ExportError` when no exporter can handle the model.

    `output_names` (from --signature) name the graph outputs when their count matches the model's;
    otherwise they are `output` or `output_<i>`.
    """
    name = "export"
    if source.kind == "onnx":
        return base.skipped(name, "source is ONNX", source.path)
    if (done := base.existing(name, out)) is not None:
        return done
    started = time.monotonic()
    names = list(examples.arrays)
    sample = examples.batch(0, max(2, max_batch))  # not 1: a batch of 1 specializes the batch axis
    ref_out = reference(sample)
    outs = ["output"] if len(ref_out) == 1 else [f"output_{i}" for i in range(len(ref_out))]
    if output_names and len(output_names) == len(ref_out):
        outs = list(output_names)
    attempts: list[tuple[str, Callable[[], None]]] = [
        ("dynamo", lambda: _dynamo(source, sample, names, outs, out)),
        ("torchscript", lambda: _legacy(source, sample, names, outs, out)),
    ]
    problems: list[str] = []
    for exporter, export in attempts:
        out.unlink(missing_ok=True)
        try:
            with base.quiet():
                export()
            _check(out, examples, reference, max_batch)
        except errors.StageError as e:
            problems.append(f"{exporter}: {e}")
            continue
        except Exception as e:  # exporters raise many types; the message is what matters
            errors.raise_if_storage(e)
            problems.append(f"{exporter}: {base.one_line(str(e)) or type(e).__name__}")
            continue
        opset = OPSET if exporter == "dynamo" else LEGACY_OPSET
        details = {"exporter": exporter, "opset": str(opset)}
        if problems:  # why the preferred exporter was not used
            details["fallback_reason"] = base.one_line("; ".join(problems))
        return base.ok(name, out, time.monotonic() - started, **details)
    out.unlink(missing_ok=True)
    joined = "; ".join(problems)
    operator = _operator(joined)
    if operator:
        message = f"model cannot be exported to ONNX: operator {operator} is not supported"
        raise errors.ExportError(message, operator)
    return base.failed(name, joined, time.monotonic() - started)


def _dynamo(
    source: SourceModel, sample: dict[str, Array], names: list[str], outs: list[str], out: Path
) -> None:
    import torch

    module = source.module.module() if source.kind == "exported" else source.module
    shapes = tuple({d: torch.export.Dim.DYNAMIC for d in dynamic_dims(sample[n])} for n in names)
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    program = torch.onnx.export(
        module,
        args,
        dynamo=True,
        dynamic_shapes=shapes,
        input_names=names,
        output_names=outs,
        opset_version=OPSET,
        verbose=False,
    )
    if program is None:
        raise errors.StageError("dynamo exporter returned no program")
    program.save(str(out))


def _legacy(
    source: SourceModel, sample: dict[str, Array], names: list[str], outs: list[str], out: Path
) -> None:
    import torch

    module = source.module.module() if source.kind == "exported" else source.module
    axes: dict[str, dict[int, str]] = {n: dynamic_dims(sample[n]) for n in names}
    axes.update({o: {0: "batch"} for o in outs})
    torch.onnx.export(
        module,
        tuple(torch.from_numpy(sample[n]) for n in names),
        str(out),
        dynamo=False,
        input_names=names,
        output_names=outs,
        dynamic_axes=axes,
        opset_version=LEGACY_OPSET,
    )


def _check(path: Path, examples: Samples, reference: runtimes.Runner, max_batch: int) -> None:
    import onnx

    onnx.checker.check_model(str(path))
    run = runtimes.ort_runner(path, optimize=False)
    for batch in sorted({1, max_batch}):
        feed = examples.batch(0, batch)
        result = parity.compare(reference(feed), run(feed), "fp32")
        if not result.passed:
            raise errors.StageError(f"ONNX output differs from PyTorch at batch {batch}: {result.reason}")


def _operator(text: str) -> str | None:
    match = _OPERATOR.search(text)
    return f"{match.group(1)}::{match.group(3)}" if match else None


def describe(path: Path) -> tuple[list[Any], list[Any]]:
    """ONNX graph inputs and outputs (value infos), initializers excluded."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits], list(model.graph.output)
