"""Loading the user's model: TorchScript, torch.export (.pt2) or ONNX."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import errors

Kind = Literal["torchscript", "exported", "onnx"]


# ONNX Runtime guarantees opset 7 and newer; the newest is what the installed onnx package (and the
# ONNX Runtime released with it) knows.
MIN_ONNX_OPSET = 7


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputSpec:
    """One input as the model file declares it.

    Attributes:
        name: Its name in the model (ONNX graph input, torch.export placeholder, TorchScript argument).
        dtype: numpy dtype name; None when the model does not declare one.
        shape: Batch axis first, -1 for a dynamic dimension; None when the model does not declare one.
    """

    name: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceModel:
    """The model as given, ready to run as the FP32 reference.

    Attributes:
        path: The file given.
        kind: How it was read.
        module: A torch callable for TorchScript and torch.export models; None for ONNX.
        onnx_input_names: Input names of an ONNX source; empty for torch models.
        inputs: Declared inputs in the order the model takes them; for TorchScript only their names.
        required_inputs: How many of `inputs` must be given (TorchScript arguments may have defaults).
        output_names: Declared output names (ONNX); empty when the model does not name them.
        data_files: External-data files an ONNX source refers to (part of what the model is).
    """

    path: Path
    kind: Kind
    module: Any = None
    onnx_input_names: tuple[str, ...] = ()
    inputs: tuple[InputSpec, ...] = ()
    required_inputs: int | None = None
    output_names: tuple[str, ...] = ()
    data_files: tuple[Path, ...] = ()


def max_onnx_opset() -> int:
    """Newest ai.onnx opset the installed onnx package defines."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def load(path: Path) -> SourceModel:
    """Read `path`; raises `ModelFileError` when it is missing or not a model of a known format."""
    if not path.is_file():
        raise errors.ModelFileError(f"model file not found: {path}")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    if not zipfile.is_zipfile(path):
        # TorchScript and .pt2 are zip archives; anything else may still be a serialized ONNX proto.
        return _load_onnx(path)
    if path.suffix == ".pt2" or _has_member(path, "archive_format"):
        return _load_exported(path)
    return _load_torchscript(path)


def _has_member(path: Path, suffix: str) -> bool:
    with zipfile.ZipFile(path) as z:
        return any(n.endswith(suffix) for n in z.namelist())


def _load_onnx(path: Path) -> SourceModel:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError...
        raise errors.ModelFileError(
            f"cannot read model {path}: not a TorchScript, torch.export or valid ONNX file ({_first(e)})"
        ) from e
    _check_opset(path, model)
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError and friends
        raise errors.ModelFileError(
            f"cannot read model {path}: not a TorchScript, torch.export or valid ONNX file ({_first(e)})"
        ) from e
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    locations = {
        e.value
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return SourceModel(
        path=path,
        kind="onnx",
        onnx_input_names=tuple(i.name for i in graph_inputs),
        inputs=tuple(_onnx_spec(i) for i in graph_inputs),
        required_inputs=len(graph_inputs),
        output_names=tuple(o.name for o in model.graph.output),
        data_files=tuple(sorted(path.parent / loc for loc in locations)),
    )


def _check_opset(path: Path, model: Any) -> None:
    newest = max_onnx_opset()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and not MIN_ONNX_OPSET <= entry.version <= newest:
            raise errors.ModelFileError(
                f"model {path} uses ONNX opset {entry.version}; supported opsets are {MIN_ONNX_OPSET} to "
                f"{newest} (convert it with onnx.version_converter)"
            )


def _onnx_spec(value_info: Any) -> InputSpec:
    from onnx import helper

    t = value_info.type.tensor_type
    try:
        dtype: str | None = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
    except Exception:  # types numpy has no name for (bfloat16, float8...): not checked
        dtype = None
    shape = None
    if t.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim)
    return InputSpec(name=value_info.name, dtype=dtype, shape=shape)


def _load_torchscript(path: Path) -> SourceModel:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 deprecates TorchScript itself
            # TorchScript's own unpickler restores TorchScript objects only; weights_only covers the rest.
            with weights_only():
                module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as e:  # torch raises RuntimeError or ValueError for damaged archives
        raise errors.ModelFileError(f"cannot read TorchScript model {path}: {_first(e)}") from e
    module.eval()
    names: tuple[str, ...] = ()
    required = None
    with contextlib.suppress(Exception):  # a module without a scripted forward: nothing declared
        arguments = list(module.forward.schema.arguments)[1:]  # after self
        names = tuple(a.name for a in arguments)
        required = sum(1 for a in arguments if not a.has_default_value())
    return SourceModel(
        path=path,
        kind="torchscript",
        module=module,
        inputs=tuple(InputSpec(name=n) for n in names),
        required_inputs=required,
    )


# torch.load reads this variable on every call and then unpickles only tensors and plain containers, even
# where the caller passed weights_only=False, as torch.export.load does for weights stored pickled (torch
# 2.15): without it, a crafted .pt2 runs any code when it is loaded.
FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
_ALLOW_PICKLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def weights_only() -> Iterator[None]:
    """Within the block, every torch.load in this process unpickles weights only (docs/security.md)."""
    saved = {k: os.environ.get(k) for k in (FORCE_WEIGHTS_ONLY, _ALLOW_PICKLE)}
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    os.environ.pop(_ALLOW_PICKLE, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load_exported(path: Path) -> SourceModel:
    import pickle

    import torch

    try:
        with weights_only():
            program = torch.export.load(str(path))
    except pickle.UnpicklingError as e:
        raise errors.ModelFileError(
            f"cannot read torch.export model {path}: it holds pickled objects other than tensors, and "
            "Thrifty unpickles weights only (a pickle can run code); save it with torch.export.save from a "
            "module whose parameters and buffers are plain tensors"
        ) from e
    except Exception as e:  # damaged or foreign archives
        raise errors.ModelFileError(f"cannot read torch.export model {path}: {_first(e)}") from e
    specs: tuple[InputSpec, ...] = ()
    with contextlib.suppress(Exception):  # an unusual program: its inputs are checked by running it
        specs = _exported_inputs(program)
    return SourceModel(path=path, kind="exported", module=program, inputs=specs, required_inputs=len(specs))


def _exported_inputs(program: Any) -> tuple[InputSpec, ...]:
    """The user inputs of an ExportedProgram with their dtypes and shapes (symbolic dimensions as -1)."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for name in program.graph_signature.user_inputs:
        node = placeholders.get(name)
        value = node.meta.get("val") if node is not None else None
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        if shape is None or dtype is None:
            specs.append(InputSpec(name=name))
            continue
        dims = tuple(d if isinstance(d, int) else -1 for d in shape)
        specs.append(InputSpec(name=name, dtype=str(dtype).removeprefix("torch."), shape=dims))
    return tuple(specs)


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
