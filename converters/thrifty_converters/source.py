"""Loading the user's model: TorchScript, torch.export (.pt2) or ONNX."""

from __future__ import annotations

import dataclasses
import warnings
import zipfile
from pathlib import Path
from typing import Any, Literal

from . import errors

Kind = Literal["torchscript", "exported", "onnx"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceModel:
    """The model as given, ready to run as the FP32 reference.

    Attributes:
        path: The file given.
        kind: How it was read.
        module: A torch callable for TorchScript and torch.export models; None for ONNX.
        onnx_input_names: Input names of an ONNX source; empty for torch models.
    """

    path: Path
    kind: Kind
    module: Any = None
    onnx_input_names: tuple[str, ...] = ()


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
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError...
        raise errors.ModelFileError(
            f"cannot read model {path}: not a TorchScript, torch.export or valid ONNX file ({_first(e)})"
        ) from e
    initializers = {i.name for i in model.graph.initializer}
    names = tuple(i.name for i in model.graph.input if i.name not in initializers)
    return SourceModel(path=path, kind="onnx", onnx_input_names=names)


def _load_torchscript(path: Path) -> SourceModel:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 deprecates TorchScript itself
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as e:  # torch raises RuntimeError or ValueError for damaged archives
        raise errors.ModelFileError(f"cannot read TorchScript model {path}: {_first(e)}") from e
    module.eval()
    return SourceModel(path=path, kind="torchscript", module=module)


def _load_exported(path: Path) -> SourceModel:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as e:  # damaged or foreign archives
        raise errors.ModelFileError(f"cannot read torch.export model {path}: {_first(e)}") from e
    return SourceModel(path=path, kind="exported", module=program)


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
