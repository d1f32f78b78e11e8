"""Exceptions of the converter pipeline.

`UserInputError` subclasses mean the caller gave something unusable; the CLI prints their message on
one line and exits 2. `ConverterError` subclasses that are not user errors mean a stage broke.
"""

from __future__ import annotations

import errno
import os
import tempfile


class ConverterError(Exception):
    """Base class of every error the converter raises on purpose."""


class UserInputError(ConverterError):
    """The model, the example files or the options given cannot be used."""


class ModelFileError(UserInputError):
    """The model file is missing, unreadable or of an unknown format."""


class ExportError(UserInputError):
    """The model cannot be exported to ONNX, e.g. because of an unsupported operator."""

    def __init__(self, message: str, operator: str | None = None) -> None:
        super().__init__(message)
        self.operator = operator


class InputMismatchError(UserInputError):
    """The example inputs do not fit the model (names, count, dtypes or shapes)."""


class ExamplesFileError(UserInputError):
    """An .npz file is missing, corrupt or has unusable arrays."""


class CalibrationTooSmallError(UserInputError):
    """The calibration set has fewer samples than static quantization needs."""


class OutputDirError(UserInputError):
    """The output folder cannot be created or written."""


class StorageError(UserInputError):
    """The artifact store or the scratch space is full or read-only: nothing the model or options can fix."""


# A full or read-only file system fails every later write too: the run stops with one clear message instead
# of blaming the stage that happened to write first.
_STORAGE = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its quota", errno.EROFS: "is read-only"}


def storage_cause(e: BaseException) -> OSError | None:
    """The full or read-only file system behind `e`, if that is what broke."""
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE:
            return current
        current = current.__cause__ or current.__context__
    return None


# Folders this run writes to (the output folder), to name the one that is full when the error does not.
_OUTPUTS: list[str] = []


def watch_storage(folder: os.PathLike[str] | str) -> None:
    """Remember `folder` as one this run writes to, so that a full-disk error can name it."""
    if os.fspath(folder) not in _OUTPUTS:  # one process may convert many times (tests, the CLI's callers)
        _OUTPUTS.append(os.fspath(folder))


def _exhausted(folder: str) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return bool(stat.f_flag & os.ST_RDONLY) or stat.f_bavail * stat.f_frsize < 1 << 20


def _inside(path: str, folder: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(folder).rstrip(os.sep) + os.sep)


def raise_if_storage(e: BaseException) -> None:
    """Raise `StorageError` when `e` (or what caused it) is a full or read-only file system."""
    cause = storage_cause(e)
    if cause is None:
        return
    state = _STORAGE.get(cause.errno or 0, "failed")
    scratch = tempfile.gettempdir()
    where = os.fsdecode(cause.filename) if cause.filename else None
    if where is None:
        # Exporters and quantizers often drop the file name: find the folder that has no room left.
        where = next((f for f in [*_OUTPUTS, scratch] if _exhausted(f)), None)
    output = where is not None and any(where == f or _inside(where, f) for f in _OUTPUTS)
    if where and not output and (where == scratch or _inside(where, scratch)):
        what = f"the scratch space {scratch} {state} (give it more: converter.ephemeralStorage)"
    elif where:
        what = f"the output folder (the artifact store) {state} at {where} (free space or enlarge the volume)"
    else:
        what = f"a file system {state}: the artifact store or the scratch space"
    raise StorageError(f"cannot write: {what}: {cause.strerror or cause}") from e


class OptionError(UserInputError):
    """A command-line option has an invalid value."""


class StageError(ConverterError):
    """A pipeline stage failed for a reason other than bad input."""
