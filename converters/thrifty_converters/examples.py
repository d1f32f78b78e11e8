"""Example, calibration and evaluation sets read from .npz files.

Convention: one array per model input, named like the input (ONNX) or in positional order (TorchScript,
torch.export), samples along the first axis. An evaluation set adds a `labels` array.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import errors

LABELS = "labels"
MIN_CALIBRATION_SAMPLES = 16

Array = npt.NDArray[np.generic]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Samples:
    """Arrays keyed by input name, all with the same number of samples."""

    arrays: dict[str, Array]
    labels: Array | None = None

    @property
    def count(self) -> int:
        """Number of samples (length of the first axis)."""
        return int(next(iter(self.arrays.values())).shape[0])

    def batch(self, start: int, size: int) -> dict[str, Array]:
        """Samples [start, start+size), wrapping around so any batch size can be built."""
        idx = np.arange(start, start + size) % self.count
        return {k: np.ascontiguousarray(v[idx]) for k, v in self.arrays.items()}


def load(path: Path, role: str, *, with_labels: bool = False) -> Samples:
    """Read an .npz set; raises `ExamplesFileError` with a one-line reason on any defect."""
    if not path.is_file():
        raise errors.ExamplesFileError(f"{role} file not found: {path}")
    try:
        # Our own handle: np.load leaks the one it opens when the archive is corrupt.
        with path.open("rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise errors.ExamplesFileError(
                    f"{role} file {path} holds one .npy array, not an .npz archive"
                )
            with npz:
                arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise errors.ExamplesFileError(f"{role} file {path} is not a readable .npz: {e}") from e
    labels = arrays.pop(LABELS, None)
    if with_labels and labels is None:
        raise errors.ExamplesFileError(f"{role} file {path} has no '{LABELS}' array")
    if not arrays:
        raise errors.ExamplesFileError(f"{role} file {path} holds no input arrays")
    counts = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise errors.ExamplesFileError(
            f"{role} file {path}: arrays must share a non-empty first axis, got {counts}"
        )
    if labels is not None and labels.shape[:1] != (next(iter(counts.values())),):
        raise errors.ExamplesFileError(f"{role} file {path}: '{LABELS}' length does not match the inputs")
    for k, v in arrays.items():
        if v.dtype.kind not in "biuf":
            raise errors.ExamplesFileError(f"{role} file {path}: array {k!r} has unsupported dtype {v.dtype}")
    return Samples(arrays=arrays, labels=labels)


def require_calibration_size(samples: Samples, path: Path) -> None:
    """Static INT8 needs enough samples for stable activation ranges."""
    if samples.count < MIN_CALIBRATION_SAMPLES:
        raise errors.CalibrationTooSmallError(
            f"calibration set {path} has {samples.count} samples; "
            f"at least {MIN_CALIBRATION_SAMPLES} are needed"
        )
