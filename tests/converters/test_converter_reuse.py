"""Reusing an earlier `optimize` output: only artifacts whose digests match DIR/digest.json, else rebuilt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty_api import report
from thrifty_converters import cli, reuse

QUICK = ["--profile-seconds", "0.2", "--max-batch-size", "4", "--variants", "onnx-fp32"]


def _optimize(model: Path, inputs: Path, out: Path, *extra: str) -> report.Report:
    assert cli.main(["optimize", str(model), "--inputs", str(inputs), "--out", str(out), *QUICK, *extra]) == 0
    return report.read(out / "report.json")


def _stages(r: report.Report) -> dict[str, str]:
    return {s.name: s.status for s in r.stages}


def _variant_outputs(out: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "variants" / "onnx-fp32" / "model.onnx"))
    return np.asarray(session.run(None, {"x": x})[0])


def test_second_model_into_the_same_out_is_rebuilt_and_described(
    tmp_path: Path, converter_models: type[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same file name, another model: a path-based "output exists" would reuse the first one's export."""
    import torch

    models = converter_models
    inputs, out, model = tmp_path / "inputs.npz", tmp_path / "out", tmp_path / "model.pt"
    np.savez(inputs, x=models.inputs(16))
    models.save_torchscript(models.mlp(), model, models.inputs(4))
    first = _optimize(model, inputs, out)
    torch.manual_seed(1)
    other = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).eval()
    models.save_torchscript(other, model, models.inputs(4))
    capsys.readouterr()

    second = _optimize(model, inputs, out)

    assert "earlier results are of another model, inputs or options: rebuilding" in capsys.readouterr().err
    assert _stages(second)["export"] == "ok" and _stages(second)["onnx-fp32"] == "ok"
    assert second.options["inputs_sha256"] != first.options["inputs_sha256"]
    assert second.options["inputs_sha256"] == reuse.read(out).inputs_sha256  # type: ignore[union-attr]
    x = models.inputs(8, seed=5)
    with torch.no_grad():
        expected = other(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_variant_outputs(out, x), expected, atol=1e-5)  # the second model's variant
    assert second.selected.variant == "onnx-fp32"
    assert second.variants[0].parity is not None and second.variants[0].parity.passed


@pytest.fixture
def onnx_run(tmp_path: Path, converter_models: type[Any]) -> tuple[Path, Path, Path]:
    """One quick optimize of an ONNX MLP (no export stage)."""
    models = converter_models
    model = models.save_onnx(models.mlp(), tmp_path / "mlp.onnx", models.inputs(4))
    inputs, out = tmp_path / "inputs.npz", tmp_path / "out"
    np.savez(inputs, x=models.inputs(16))
    _optimize(model, inputs, out)
    return model, inputs, out


def test_same_inputs_reuse_only_verified_artifacts(
    onnx_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, inputs, out = onnx_run
    with np.load(inputs) as saved:
        np.savez(inputs, **saved)  # the same arrays in a new file: still the same inputs
    assert _stages(_optimize(model, inputs, out))["onnx-fp32"] == "skipped: output exists"
    artifact = out / "variants" / "onnx-fp32" / "model.onnx"
    artifact.write_bytes(artifact.read_bytes() + b"\0")  # changed behind the converter's back

    again = _optimize(model, inputs, out)

    assert _stages(again)["onnx-fp32"] == "ok"  # rebuilt, not reused
    assert reuse.verify(out, reuse.read(out), "variants/onnx-fp32/model.onnx") is None  # type: ignore[arg-type]
    # Other options that change artifacts change the digest: everything is rebuilt.
    assert _stages(_optimize(model, inputs, out, "--max-batch-size", "2"))["onnx-fp32"] == "ok"


def test_profile_refuses_a_variant_changed_or_missing_since_optimize(
    onnx_run: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = onnx_run[2]
    artifact = out / "variants" / "onnx-fp32" / "model.onnx"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    capsys.readouterr()
    assert cli.main(["profile", str(out), "--profile-seconds", "0.2"]) == cli.EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "variant onnx-fp32" in err[0] and "changed since it was built" in err[0], err
    artifact.unlink()
    assert cli.main(["profile", str(out), "--profile-seconds", "0.2"]) == cli.EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "variants/onnx-fp32/model.onnx is missing" in err[0], err


def test_foreign_folder_and_inputs_inside_out_are_never_cleared(
    tmp_path: Path, converter_models: type[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    models = converter_models
    inputs, out = tmp_path / "inputs.npz", tmp_path / "out"
    np.savez(inputs, x=models.inputs(16))
    (out / "work").mkdir(parents=True)
    (out / "work" / "notes.txt").write_text("not ours")
    model = models.save_onnx(models.mlp(), tmp_path / "mlp.onnx", models.inputs(4))
    args = ["optimize", str(model), "--inputs", str(inputs), "--out", str(out), *QUICK]
    assert cli.main(args) == cli.EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds work but no readable digest.json" in err[0], err
    assert (out / "work" / "notes.txt").is_file()

    # The model given lies where an earlier run of other inputs left its DIR/model.onnx.
    shutil.rmtree(out / "work")
    shutil.copyfile(model, out / "model.onnx")
    (out / reuse.MANIFEST).write_text(json.dumps({"inputs_sha256": "0" * 64}))
    args = ["optimize", str(out / "model.onnx"), "--inputs", str(inputs), "--out", str(out), *QUICK]
    assert cli.main(args) == cli.EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is (or holds) the input" in err[0], err
    assert (out / "model.onnx").is_file()


def test_variants_none_exports_only(tmp_path: Path, converter_models: type[Any]) -> None:
    """What a convert Job of a GPU-only model needs: DIR/model.onnx for the GPU pools, no CPU variant."""
    models = converter_models
    model = models.save_onnx(models.mlp(), tmp_path / "mlp.onnx", models.inputs(4))
    inputs, out = tmp_path / "inputs.npz", tmp_path / "out"
    np.savez(inputs, x=models.inputs(16))
    r = _optimize(model, inputs, out, "--variants", "none")
    assert all(v.status == "skipped: not requested (--variants)" for v in r.variants)
    assert r.selected.variant is None and (out / "model.onnx").is_file()
