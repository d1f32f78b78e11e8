"""Fixtures for the converter pipeline tests: tiny models and input sets built in temporary folders.

The helpers live in `ConverterModels`, handed out by the `converter_models` fixture, so test modules
need no import path tricks.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest


class ConverterModels:
    """Builders for tiny models and .npz sets."""

    FEATURES = 16
    CLASSES = 4

    @staticmethod
    def mlp() -> object:
        """A small classifier MLP with fixed weights."""
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(ConverterModels.FEATURES, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, ConverterModels.CLASSES),
        ).eval()

    @staticmethod
    def inputs(n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, ConverterModels.FEATURES)).astype(np.float32)

    @staticmethod
    def save_torchscript(module: object, path: Path, example: np.ndarray) -> Path:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # TorchScript is deprecated, still supported as input
            torch.jit.save(torch.jit.trace(module, torch.from_numpy(example[:2])), str(path))
        return path

    @staticmethod
    def save_pt2(module: object, path: Path, example: np.ndarray) -> Path:
        import torch

        program = torch.export.export(
            module, (torch.from_numpy(example[:2]),), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
        )
        torch.export.save(program, str(path))
        return path

    @staticmethod
    def save_onnx(module: object, path: Path, example: np.ndarray) -> Path:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(example[:2]),),
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
            )
        return path

    @staticmethod
    def sets(folder: Path, module: object) -> dict[str, Path]:
        """Examples (48), calibration (32) and an eval set labelled by the model itself."""
        import torch

        x = ConverterModels.inputs(48)
        files = {
            "inputs": folder / "inputs.npz",
            "calibration": folder / "calib.npz",
            "eval": folder / "eval.npz",
        }
        np.savez(files["inputs"], x=x)
        np.savez(files["calibration"], x=ConverterModels.inputs(32, seed=1))
        ev = ConverterModels.inputs(64, seed=2)
        with torch.no_grad():
            labels = module(torch.from_numpy(ev)).argmax(1).numpy()  # type: ignore[operator]
        np.savez(files["eval"], x=ev, labels=labels)
        return files


@pytest.fixture(scope="session")
def converter_models() -> type[ConverterModels]:
    """The model and data-set builders."""
    return ConverterModels
