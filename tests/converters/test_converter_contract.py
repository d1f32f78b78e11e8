"""What the operator's Jobs rely on: `--signature`, `--summary-file`, `profile --pool` and DIR/model.onnx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty_api import job_summary
from thrifty_converters import cli, errors, signature

SIGNATURE = json.dumps(
    {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [16]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [4]}],
    }
)
QUICK = ["--profile-seconds", "0.3", "--max-batch-size", "4", "--price-per-hour", "0.357"]


def test_signature_generates_token_ids_masks_and_normal_floats() -> None:
    sig = signature.parse(
        json.dumps(
            {
                "inputs": [
                    {"name": "input_ids", "dtype": "int64", "shape": [-1]},
                    {"name": "attention_mask", "dtype": "int64", "shape": [-1]},
                    {"name": "pixels", "dtype": "float32", "shape": [3, 8]},
                ],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [4]}],
            }
        )
    )
    samples = signature.generate(sig, 5)
    ids, mask, pixels = (samples.arrays[k] for k in ("input_ids", "attention_mask", "pixels"))
    assert ids.shape == (5, signature.DYNAMIC_DIM) and ids.dtype == np.int64
    assert ids.min() > 0 and ids.max() < signature.MAX_TOKEN_ID
    assert (mask == 1).all()
    assert pixels.shape == (5, 3, 8) and pixels.dtype == np.float32
    np.testing.assert_array_equal(signature.generate(sig, 5).arrays["pixels"], pixels)  # seeded


def test_signature_rejects_invalid_json_with_one_line() -> None:
    with pytest.raises(errors.OptionError, match="--signature"):
        signature.parse('{"inputs": []}')


def test_summary_is_trimmed_to_the_termination_message_limit() -> None:
    rows = [
        job_summary.VariantResult(
            name=f"v{i}", status="failed: " + "x" * 900, parity="p" * 120, throughput_per_s=1.0
        )
        for i in range(12)
    ]
    text = job_summary.encode(job_summary.JobSummary(variants=rows))
    assert len(text.encode()) <= job_summary.MAX_BYTES
    data = json.loads(text)
    assert data["v"] == 1 and data["variants"] and "parity" not in data["variants"][0]


def test_optimize_with_signature_writes_summary_repository_and_model_onnx(
    tmp_path: Path, converter_models: type[Any]
) -> None:
    models = converter_models
    model = models.save_torchscript(models.mlp(), tmp_path / "mlp.pt", models.inputs(4))
    out, summary_file = tmp_path / "out", tmp_path / "termination-log"
    args = ["optimize", str(model), "--out", str(out), "--variants", "onnx-fp32", "--signature", SIGNATURE]
    assert cli.main([*args, *QUICK, "--summary-file", str(summary_file)]) == 0
    data = json.loads(summary_file.read_text())
    assert data["v"] == 1 and data["selected"] == "onnx-fp32"
    (row,) = data["variants"]  # variants not requested are left out
    assert row["status"] == "ok" and row["model_name"] == "onnx-fp32" and row["throughput_per_s"] > 0
    assert (out / "model_repository" / "onnx-fp32-py" / "config.pbtxt").is_file()
    assert (out / "model.onnx").is_file()

    profiled = tmp_path / "profile-log"
    rc = cli.main(["profile", str(out), "--pool", "cpu-c7i", *QUICK, "--summary-file", str(profiled)])
    assert rc == 0
    assert json.loads(profiled.read_text())["variants"][0]["status"] == "ok"
    assert (out / "pools" / "cpu-c7i" / "profile.json").is_file()

    gpu_log = tmp_path / "gpu-log"
    gpu = ["optimize", str(out / "model.onnx"), "--out", str(out / "pools" / "gpu-l4"), "--target", "gpu"]
    gpu += ["--variants", "onnx-fp16,tensorrt-fp16", "--signature", SIGNATURE, *QUICK]
    assert cli.main([*gpu, "--summary-file", str(gpu_log)]) == 0
    statuses = {v["name"]: v["status"] for v in json.loads(gpu_log.read_text())["variants"]}
    if not any(s == "ok" for s in statuses.values()):
        assert statuses == {"onnx-fp16": "skipped: no GPU", "tensorrt-fp16": "skipped: no GPU"}


def test_failure_writes_one_line_error_summary(tmp_path: Path) -> None:
    summary_file = tmp_path / "termination-log"
    args = ["optimize", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o"), "--signature", SIGNATURE]
    assert cli.main([*args, "--summary-file", str(summary_file)]) == cli.EXIT_USER
    data = json.loads(summary_file.read_text())
    assert data["v"] == 1 and "model file not found" in data["error"] and "\n" not in data["error"]


def test_optimize_needs_inputs_or_signature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["optimize", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o")])
    assert rc == cli.EXIT_USER
    assert "--signature" in capsys.readouterr().err
