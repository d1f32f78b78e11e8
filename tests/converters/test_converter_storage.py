"""A full or read-only artifact store is one clear line, exit 2 and the same message in the Job summary
(which the operator turns into the Converted condition), never an internal error that blames a stage.

Real file systems: the converter runs in a private mount namespace (`unshare -m`) over a tmpfs that is tiny
or read-only, so nothing is mounted on the machine outside the test. Needs root, as the real node does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CONVERT = Path(sys.executable).parent / "thrifty-convert"


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory, converter_models: type[Any]) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("storage")
    module = converter_models.mlp()
    model = converter_models.save_torchscript(module, work / "mlp.pt", converter_models.inputs(4))
    inputs = work / "inputs.npz"
    np.savez(inputs, x=converter_models.inputs(16))
    return model, inputs


def _convert_onto(mount_options: str, mlp: tuple[Path, Path], work: Path) -> tuple[int, str, dict[str, Any]]:
    assert os.geteuid() == 0, "mounting a tmpfs in a private namespace needs root (as the real node does)"
    assert shutil.which("unshare"), "unshare (util-linux) is missing"
    store, summary = work / "store", work / "summary.json"
    store.mkdir()
    command = (
        f"mount -t tmpfs -o {mount_options} thrifty-test {store} && exec {CONVERT} optimize {mlp[0]}"
        f" --inputs {mlp[1]} --out {store}/out --variants onnx-fp32,onnx-int8-dynamic"
        f" --profile-seconds 0.2 --summary-file {summary}"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    last = done.stderr.strip().splitlines()[-1]
    return done.returncode, done.stderr, {"last": last, **json.loads(summary.read_text())}


@pytest.mark.parametrize("size", ["4k", "48k"])
def test_a_full_store_is_one_line_naming_it_with_exit_2(
    mlp: tuple[Path, Path], tmp_path: Path, size: str
) -> None:
    rc, stderr, summary = _convert_onto(f"size={size}", mlp, tmp_path)
    assert rc == 2, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert "No space left on device" in summary["last"]
    assert str(tmp_path / "store" / "out") in summary["last"]
    assert summary["variants"] == []
    assert "No space left on device" in summary["error"]


def test_a_read_only_store_is_refused_before_any_work(mlp: tuple[Path, Path], tmp_path: Path) -> None:
    rc, stderr, summary = _convert_onto("ro", mlp, tmp_path)
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    assert summary["last"].endswith("is not writable: Read-only file system")
    assert "export: running" not in stderr  # refused before the model was even exported
    assert "Read-only file system" in summary["error"]
