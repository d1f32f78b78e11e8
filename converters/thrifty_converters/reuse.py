"""Artifacts of an earlier `optimize` into the same DIR are reused only when made from the same inputs.

`DIR/digest.json` records `inputs_sha256`, a SHA-256 over everything an artifact depends on: the model file
(and the external-data files an ONNX model refers to), the example and calibration arrays (their content,
whether read from files or generated from the signature), the signature, `--max-batch-size`, `--target`
and the converter's version. It also
records the SHA-256 of every file of every artifact a stage finished.

A later run with the same `inputs_sha256` reuses an artifact (`skipped: output exists`) only when its files
still have the recorded digests; any other file under `work/` and `variants/` (changed, or left by an
interrupted stage) is deleted, so its stage runs again. With a different `inputs_sha256` (another model,
other inputs or options) the earlier run's outputs are deleted and everything is rebuilt: a rebuild costs
minutes, a stale artifact costs a wrong deployment, and refusing would make every edit-and-rerun a manual
clean-up. Only a folder recognisably written by thrifty-convert (it has digest.json or a valid
report.json) is cleared, only the paths listed below, and never one that holds an input of this run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydantic

from thrifty_api import report

from . import errors

MANIFEST = "digest.json"
FORMAT = 1
# What an optimize run (and `profile` after it) writes into DIR; all of it describes one model.
OWNED_DIRS = ("work", "variants", "model_repository", "pools")
OWNED_FILES = ("report.json", "profile-inputs.npz", "model.onnx", "model.onnx.data", "model.onnx_data")
OWNED_GLOBS = ("profile-*.json",)
ARTIFACT_DIRS = ("work", "variants")
_CHUNK = 1 << 20


class Manifest(pydantic.BaseModel):
    """Contents of DIR/digest.json."""

    model_config = pydantic.ConfigDict(extra="ignore")

    format: int = FORMAT
    inputs_sha256: str
    parts: dict[str, str | int | None] = {}
    """What went into `inputs_sha256`, for whoever reads the file."""
    artifacts: dict[str, dict[str, str]] = {}
    """Per artifact (path relative to DIR): SHA-256 of each of its files (the model, OpenVINO's .bin...)."""
    files: list[str] = []
    """Other files this run put into DIR (the source's external data linked beside DIR/model.onnx)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    try:
        return importlib.metadata.version("thrifty-converters")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def arrays_sha256(arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    """SHA-256 of named arrays by content (names, dtypes, shapes, values), not of the file holding them:
    np.savez stamps the time into its archive, so the same arrays saved twice differ as files."""
    h = hashlib.sha256()
    for name, array in arrays.items():
        h.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def inputs_digest(
    model: Path,
    model_data: Sequence[Path],
    sets: Mapping[str, Mapping[str, npt.NDArray[Any]] | None],
    settings: dict[str, str | int | None],
) -> tuple[str, dict[str, str | int | None]]:
    """`inputs_sha256` and its parts: digests of the model, its data and the array `sets`, and `settings`."""
    parts: dict[str, str | int | None] = {
        "format": FORMAT,
        "converter": _version(),
        "model": file_sha256(model),
    }
    for data in model_data:
        parts[f"model_data:{data.name}"] = file_sha256(data) if data.is_file() else "missing"
    for role, arrays in sets.items():
        parts[role] = arrays_sha256(arrays) if arrays is not None else None
    parts |= settings
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), parts


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read(out: Path) -> Manifest | None:
    """DIR/digest.json, or None when it is absent or unreadable."""
    try:
        return Manifest.model_validate_json((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def companions(path: Path) -> list[Path]:
    """The files an artifact consists of: the model file, OpenVINO's .bin, ONNX external data."""
    files = [path]
    if path.suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    files += [p for p in (path.with_name(path.name + s) for s in (".data", "_data")) if p.is_file()]
    return files


def verify(out: Path, manifest: Manifest, rel: str) -> str | None:
    """Why the artifact `rel` does not match its record (None when every file does)."""
    record = manifest.artifacts.get(rel)
    if record is None:
        return f"{rel} is not recorded in {MANIFEST}"
    for name, digest in record.items():
        path = out / name
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != digest:
            return f"{name} changed since it was built (SHA-256 differs from {MANIFEST})"
    return None


class Outputs:
    """The reuse decisions of one optimize run into `out`."""

    def __init__(self, out: Path, digest: str, parts: dict[str, str | int | None], protected: Iterable[Path]):
        self.out = out
        self.manifest = Manifest(inputs_sha256=digest, parts=parts)
        self.protected = [p.resolve() for p in protected]

    def prepare(self) -> bool:
        """Keep the verified artifacts of an earlier run with the same inputs, delete everything else of it.

        Returns whether earlier results of other inputs were cleared.
        """
        old = read(self.out)
        if old is not None and old.inputs_sha256 == self.manifest.inputs_sha256:
            self._keep_verified(old)
            self.save()
            return False
        stale = self._stale(old)
        if stale and old is None and not self._valid_report():
            names = ", ".join(sorted(p.name for p in stale))
            raise errors.OutputDirError(
                f"output folder {self.out} already holds {names} but no readable {MANIFEST}, so "
                "thrifty-convert cannot tell what they were made from; delete them or choose another --out"
            )
        for path in stale:
            self._remove(path)
        self.save()
        return bool(stale)

    def _valid_report(self) -> bool:
        try:
            report.read(self.out / "report.json")
        except (OSError, ValueError):
            return False
        return True

    def _stale(self, old: Manifest | None) -> list[Path]:
        names = [*OWNED_DIRS, *OWNED_FILES, *(old.files if old else [])]
        paths = [self.out / n for n in names]
        paths += [p for g in OWNED_GLOBS for p in sorted(self.out.glob(g))]
        return [p for p in dict.fromkeys(paths) if p.exists() or p.is_symlink()]

    def _keep_verified(self, old: Manifest) -> None:
        kept: set[str] = set()
        for rel in old.artifacts:
            if verify(self.out, old, rel) is None:
                self.manifest.artifacts[rel] = old.artifacts[rel]
                kept |= set(old.artifacts[rel])
        self.manifest.files = list(old.files)
        for folder in ARTIFACT_DIRS:
            root = self.out / folder
            for path in sorted(root.rglob("*")) if root.is_dir() else []:
                if (path.is_file() or path.is_symlink()) and path.relative_to(
                    self.out
                ).as_posix() not in kept:
                    self._remove(path)

    def _remove(self, path: Path) -> None:
        # A symbolic link is removed, not what it points to.
        target = path.parent.resolve() / path.name if path.is_symlink() else path.resolve()
        for p in self.protected:
            if p == target or target in p.parents:
                raise errors.OutputDirError(
                    f"cannot clear the earlier results in {self.out}: {path} is (or holds) the input {p}; "
                    "use another --out"
                )
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            raise errors.OutputDirError(f"cannot remove the earlier result {path}: {e.strerror or e}") from e

    def record(self, path: Path) -> None:
        """Record the artifact at `path` (inside DIR/work or DIR/variants) as built from these inputs."""
        try:
            rel = path.resolve().relative_to(self.out.resolve())
        except ValueError:  # the source model itself (ONNX), not an artifact of this folder
            return
        if not rel.parts or rel.parts[0] not in ARTIFACT_DIRS or not path.is_file():
            return
        files = {p.resolve().relative_to(self.out.resolve()).as_posix(): p for p in companions(path)}
        self.manifest.artifacts[rel.as_posix()] = {n: file_sha256(p) for n, p in files.items() if p.is_file()}

    def add_file(self, name: str) -> None:
        if name not in self.manifest.files:
            self.manifest.files.append(name)

    def save(self) -> None:
        """Write digest.json atomically (a reader never sees half of it)."""
        path = self.out / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.tmp")
        try:
            tmp.write_text(self.manifest.model_dump_json(indent=2) + "\n")
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise errors.OutputDirError(f"cannot write {path}: {e.strerror or e}") from e
