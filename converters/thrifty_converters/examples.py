"""Example, calibration and evaluation sets read from .npz files.

Convention: one array per model input, named like the input (ONNX) or in positional order (TorchScript,
torch.export), samples along the first axis. An evaluation set adds a `labels` array.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import errors

LABELS = "labels"
MIN_CALIBRATION_SAMPLES = 16
_NPY_MAGIC = b"\x93NUMPY"

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
    """Read an .npz set; raises `ExamplesFileError` with a one-line reason on any defect.

    Every array must be numeric and finite (the first NaN/Inf is named with its index); `labels` (with
    `with_labels`) must be 1-D with one non-negative whole class index per sample.
    """
    if not path.is_file():
        raise errors.ExamplesFileError(f"{role} file not found: {path}")
    where = f"{role} file {path}"
    arrays = _read(path, where)
    labels = arrays.pop(LABELS, None)
    if with_labels and labels is None:
        raise errors.ExamplesFileError(f"{where} has no '{LABELS}' array")
    if not arrays:
        raise errors.ExamplesFileError(f"{where} holds no input arrays")
    counts = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise errors.ExamplesFileError(f"{where}: arrays must share a non-empty first axis, got {counts}")
    for k, v in arrays.items():
        if v.dtype.kind not in "biuf":
            raise errors.ExamplesFileError(f"{where}: array {k!r} has unsupported dtype {v.dtype}")
        require_finite(v, f"{where}: array {k!r}")
    if labels is not None and with_labels:
        _check_labels(labels, next(iter(counts.values())), where)
    elif labels is not None and labels.shape[:1] != (next(iter(counts.values())),):
        raise errors.ExamplesFileError(f"{where}: '{LABELS}' length does not match the inputs")
    return Samples(arrays=arrays, labels=labels)


def _read(path: Path, where: str) -> dict[str, Array]:
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(_NPY_MAGIC))
    except OSError as e:
        raise errors.ExamplesFileError(f"{where} cannot be read: {e.strerror or e}") from e
    if magic == _NPY_MAGIC:
        raise errors.ExamplesFileError(f"{where} holds one .npy array, not an .npz archive")
    if not magic.startswith(b"PK"):
        raise errors.ExamplesFileError(f"{where} is not an .npz archive (not a zip file)")
    try:
        # Our own handle: np.load leaks the one it opens when the archive is corrupt.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except MemoryError:
        raise
    except Exception as e:  # zipfile, zlib and numpy's format reader raise many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise errors.ExamplesFileError(f"{where} is not a readable .npz: {first}") from e
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):  # np.load hands back the bytes of members that are not .npy
            raise errors.ExamplesFileError(
                f"{where} is a zip archive but not an .npz: {k!r} is not a .npy array"
            )
    return arrays


def first_nonfinite(array: Array) -> tuple[int, ...] | None:
    """Index of the first NaN or Inf in `array` (None when it has none, or holds no floats)."""
    if array.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), array.shape))


def require_finite(array: Array, what: str) -> None:
    """Raise `ExamplesFileError` naming `what` and the first bad index when `array` holds NaN or Inf."""
    index = first_nonfinite(array)
    if index is not None:
        count = int(np.count_nonzero(~np.isfinite(array)))
        raise errors.ExamplesFileError(
            f"{what} holds {count} NaN/Inf value{'s' if count > 1 else ''}, the first ({array[index]}) "
            f"at index {list(index)}; inputs must be finite"
        )


def _check_labels(labels: Array, count: int, where: str) -> None:
    if labels.ndim != 1 or labels.shape[0] != count:
        raise errors.ExamplesFileError(
            f"{where}: '{LABELS}' must be 1-D with one class index per sample, shape ({count},), "
            f"got shape {labels.shape}"
        )
    if labels.dtype.kind not in "biuf":
        raise errors.ExamplesFileError(f"{where}: '{LABELS}' has unsupported dtype {labels.dtype}")
    require_finite(labels, f"{where}: '{LABELS}'")
    values = labels.astype(np.float64)
    if not bool(np.all(values == np.floor(values))) or (values.size and values.min() < 0):
        raise errors.ExamplesFileError(f"{where}: '{LABELS}' must hold class indices (whole numbers >= 0)")


def require_calibration_size(samples: Samples, path: Path) -> None:
    """Static INT8 needs enough samples for stable activation ranges."""
    if samples.count < MIN_CALIBRATION_SAMPLES:
        raise errors.CalibrationTooSmallError(
            f"calibration set {path} has {samples.count} samples; "
            f"at least {MIN_CALIBRATION_SAMPLES} are needed"
        )
