"""Exceptions of the converter pipeline.

`UserInputError` subclasses mean the caller gave something unusable; the CLI prints their message on
one line and exits 2. `ConverterError` subclasses that are not user errors mean a stage broke.
"""

from __future__ import annotations


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


class OptionError(UserInputError):
    """A command-line option has an invalid value."""


class StageError(ConverterError):
    """A pipeline stage failed for a reason other than bad input."""
