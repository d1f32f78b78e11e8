"""A model file is untrusted input: loading one must never run code it carries (docs/security.md).

The crafted archive is real: a torch.export .pt2 whose weight entry is a pickle that calls `os.system`, the
attack `torch.export.load` is open to (it unpickles weights marked `use_pickle` with weights_only=False).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty_converters import cli, errors, source


class _Payload:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _weaponize(good: Path, evil: Path, marker: Path) -> None:
    """Copy the .pt2 `good` to `evil` with its first weight replaced by a code-running pickle."""
    import torch

    payload = io.BytesIO()
    torch.save(_Payload(marker), payload)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data/weights/weight_0"):
                data = payload.getvalue()
            elif info.filename.endswith("data/weights/model_weights_config.json"):
                config = json.loads(data)
                for entry in config["config"].values():
                    if entry["path_name"] == "weight_0":
                        entry["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(info, data)


@pytest.fixture
def archives(tmp_path: Path, converter_models: type[Any]) -> tuple[Path, Path, Path]:
    good = converter_models.save_pt2(
        converter_models.mlp(), tmp_path / "good.pt2", converter_models.inputs(4)
    )
    evil, marker = tmp_path / "evil.pt2", tmp_path / "PWNED"
    _weaponize(good, evil, marker)
    return good, evil, marker


def test_the_crafted_archive_runs_its_code_under_a_plain_torch_export_load(
    archives: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control: without the guard the payload runs, so the next tests prove the guard."""
    import torch

    _good, evil, marker = archives
    monkeypatch.delenv(source.FORCE_WEIGHTS_ONLY, raising=False)
    with pytest.raises(Exception):  # noqa: B017 - the program is broken after the payload; any error
        torch.export.load(str(evil))
    assert marker.exists()


def test_loading_a_crafted_pt2_is_a_clear_error_and_runs_nothing(archives: tuple[Path, Path, Path]) -> None:
    _good, evil, marker = archives
    with pytest.raises(errors.ModelFileError, match="pickled objects other than tensors"):
        source.load(evil)
    assert not marker.exists()
    assert source.FORCE_WEIGHTS_ONLY not in os.environ  # the guard does not leak out of the load


def test_thrifty_convert_rejects_a_crafted_pt2_in_one_line_with_exit_2(
    archives: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    converter_models: type[Any],
) -> None:
    _good, evil, marker = archives
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=converter_models.inputs(4))
    rc = cli.main(["optimize", str(evil), "--inputs", str(inputs), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_USER
    assert "Traceback" not in err
    assert "evil.pt2" in err.strip().splitlines()[-1]
    assert not marker.exists()


def test_a_plain_pt2_still_loads_and_runs_under_the_guard(
    archives: tuple[Path, Path, Path], converter_models: type[Any]
) -> None:
    import torch

    good, _evil, _marker = archives
    model = source.load(good)
    x = converter_models.inputs(3)
    out = model.module.module()(torch.from_numpy(x))
    assert out.shape[0] == 3
    assert torch.isfinite(out).all()
