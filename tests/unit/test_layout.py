"""Packaging rules: the operator imports without torch, and `operator/` never shadows the stdlib module."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_operator_folder_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    import operator

    assert hasattr(operator, "itemgetter"), "the standard library's operator module is shadowed"


def test_operator_imports_without_heavy_frameworks() -> None:
    code = (
        "import sys, importlib, pkgutil, thrifty_operator\n"
        "for m in pkgutil.walk_packages(thrifty_operator.__path__, 'thrifty_operator.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = sorted({'torch', 'onnxruntime', 'openvino', 'tensorrt', 'matplotlib'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_operator_distribution_does_not_depend_on_torch() -> None:
    from importlib import metadata

    requires = metadata.requires("thrifty-operator") or []
    core = [r for r in requires if "extra ==" not in r]
    assert core and not any(r.lower().startswith(("torch", "onnx", "openvino", "tensorrt")) for r in core)
