"""Bad input to `thrifty-convert optimize`: one-line error, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty_converters import cli, errors


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = cli.main(["optimize", *args, "--profile-seconds", "0.2", "--max-batch-size", "4"])
    return rc, capsys.readouterr().err


def _assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == cli.EXIT_USER
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error" in line]
    assert len(error_lines) == 1, err
    assert error_lines[0] == err.strip().splitlines()[-1]
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.fixture
def mlp(tmp_path: Path, converter_models: type[Any]) -> tuple[Path, Path]:
    """A TorchScript MLP and matching example inputs."""
    module = converter_models.mlp()
    model = converter_models.save_torchscript(module, tmp_path / "mlp.pt", converter_models.inputs(4))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=converter_models.inputs(16))
    return model, inputs


def test_optimize_fails_cleanly_when_model_file_is_missing(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = _run(capsys, str(tmp_path / "nope.pt"), "--inputs", str(mlp[1]), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "model file not found", "nope.pt")


@pytest.mark.parametrize("name", ["broken.pt", "broken.onnx", "broken.pt2"])
def test_optimize_fails_cleanly_when_model_file_is_corrupt(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    model = tmp_path / name
    model.write_bytes(b"\x00\x01 not a model at all" * 50)
    rc, err = _run(capsys, str(model), "--inputs", str(mlp[1]), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "cannot read model", name)


def test_optimize_fails_cleanly_when_zip_model_is_truncated(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "cut.pt"
    model.write_bytes(mlp[0].read_bytes()[:-200])  # damaged TorchScript archive
    rc, err = _run(capsys, str(model), "--inputs", str(mlp[1]), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "cut.pt")


def test_optimize_names_the_operator_when_model_cannot_be_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], converter_models: type[Any]
) -> None:
    import torch

    class Bessel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.i0(x)  # no ONNX symbolic in either exporter

    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=converter_models.inputs(8))
    model = converter_models.save_torchscript(Bessel(), tmp_path / "i0.pt", converter_models.inputs(4))
    rc, err = _run(capsys, str(model), "--inputs", str(inputs), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "cannot be exported to ONNX", "aten::i0")


def test_optimize_fails_cleanly_when_inputs_do_not_match_model(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((8, 15), np.float32))  # the MLP takes 16 features
    rc, err = _run(capsys, str(mlp[0]), "--inputs", str(wrong), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "inputs do not match the model")


def test_optimize_fails_cleanly_when_npz_is_corrupt(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    rc, err = _run(capsys, str(mlp[0]), "--inputs", str(bad), "--out", str(tmp_path / "o"))
    _assert_one_line_error(rc, err, "not a readable .npz", "bad.npz")


def test_optimize_fails_cleanly_when_calibration_set_is_too_small(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.zeros((4, 16), np.float32))
    out = tmp_path / "o"
    rc, err = _run(
        capsys, str(mlp[0]), "--inputs", str(mlp[1]), "--calibration", str(calib), "--out", str(out)
    )
    _assert_one_line_error(rc, err, "calibration set", "4 samples", "at least 16")


def test_optimize_fails_cleanly_when_output_folder_is_unwritable(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should go")
    rc, err = _run(capsys, str(mlp[0]), "--inputs", str(mlp[1]), "--out", str(blocker / "out"))
    _assert_one_line_error(rc, err, "output folder", "not writable")


def test_optimize_rejects_unknown_variant_names(
    tmp_path: Path, mlp: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = _run(
        capsys, str(mlp[0]), "--inputs", str(mlp[1]), "--out", str(tmp_path / "o"), "--variants", "x"
    )
    _assert_one_line_error(rc, err, "unknown variants")


def test_cli_process_prints_no_traceback_for_bad_input(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: exit 2 and a single stderr line."""
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.zeros((4, 16), np.float32))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "thrifty_converters.cli",
            "optimize",
            str(tmp_path / "missing.onnx"),
            "--inputs",
            str(inputs),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"thrifty-convert: error: model file not found: {tmp_path / 'missing.onnx'}"
    ]


def test_user_errors_share_one_hierarchy() -> None:
    for cls in (
        errors.ModelFileError,
        errors.ExportError,
        errors.InputMismatchError,
        errors.ExamplesFileError,
        errors.CalibrationTooSmallError,
        errors.OutputDirError,
    ):
        assert issubclass(cls, errors.UserInputError)
    assert not issubclass(errors.StageError, errors.UserInputError)
