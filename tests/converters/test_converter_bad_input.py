"""Bad input to `thrifty-convert`: one-line error, exit status 2, no traceback, before any heavy work."""

from __future__ import annotations

import math
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from thrifty_converters import checks, cli, errors


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


# --- Every user mistake: exit EXIT_USER, exactly one line on stderr, no traceback, before any heavy work ---

OUT = "OUT"  # replaced by a fresh folder per case


def _save_onnx(path: Path, opset: int = 17, batch: str | int = "N") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [numpy_helper.from_array(np.ones((16, 4), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _fake_optimize_output(folder: Path, converter_models: type[Any]) -> Path:
    """What `profile` reads (report.json, profile-inputs.npz) with one passing variant whose file is gone."""
    from thrifty_api import report

    folder.mkdir()
    np.savez(folder / "profile-inputs.npz", x=converter_models.inputs(4))
    row = report.Variant(
        name="onnx-fp32",
        format="onnx",
        precision="fp32",
        device="cpu",
        status="ok",
        path="variants/onnx-fp32/model.onnx",
    )
    machine = report.Machine(hostname="h", cpu="c", threads=1, cpu_flags=[], gpu=False)
    result = report.Report(
        model=str(folder / "absent.pt"),
        target="cpu",
        machine=machine,
        options={},
        stages=[],
        baseline=report.Baseline(
            name="b", latency_ms=report.Latency(), throughput_per_s=None, batch_size=None
        ),
        variants=[row],
        selected=report.Selected(variant="onnx-fp32", reason="test"),
    )
    report.write(result, folder / "report.json")
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, converter_models: type[Any]) -> dict[str, str]:
    """Models and sets, good and bad, built once for the cases below."""
    import torch

    models = converter_models
    d = tmp_path_factory.mktemp("bad")
    module = models.mlp()

    class Log(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x)  # NaN for the negative half of standard-normal inputs

    x = models.inputs(16)
    nan, inf = x.copy(), np.concatenate([models.inputs(16), x])
    nan[3, 5], inf[23, 0] = np.nan, np.inf
    sets: dict[str, dict[str, np.ndarray]] = {
        "inputs": {"x": x},
        "nan": {"x": nan},
        "calib_inf": {"x": inf},
        "calib_f64": {"x": models.inputs(32).astype(np.float64)},
        "f64": {"x": x.astype(np.float64)},
        "w15": {"x": np.zeros((16, 15), np.float32)},
        "y": {"y": x},
        "xy": {"x": x, "y": x},
        "labels_2d": {"x": x, "labels": np.zeros((16, 2), np.int64)},
        "labels_short": {"x": x, "labels": np.zeros(15, np.int64)},
        "labels_neg": {"x": x, "labels": -np.ones(16, np.int64)},
        "labels_nan": {"x": x, "labels": np.full(16, np.nan)},
        "labels_big": {"x": x, "labels": np.full(16, 9, np.int64)},
    }
    paths = {name: str(d / f"{name}.npz") for name in sets}
    for name, arrays in sets.items():
        np.savez(paths[name], **arrays)  # type: ignore[arg-type]
    with zipfile.ZipFile(d / "zip.npz", "w") as z:
        z.writestr("hello.txt", "not an array")
    (d / "text.npz").write_text("not an archive")
    return paths | {
        "zip": str(d / "zip.npz"),
        "text": str(d / "text.npz"),
        "ts": str(models.save_torchscript(module, d / "mlp.pt", models.inputs(4))),
        "pt2": str(models.save_pt2(module, d / "mlp.pt2", models.inputs(4))),
        "onnx": str(models.save_onnx(module, d / "mlp.onnx", models.inputs(4))),
        "log": str(models.save_torchscript(Log(), d / "log.pt", models.inputs(4))),
        "opset99": str(_save_onnx(d / "opset99.onnx", opset=99)),
        "opset1": str(_save_onnx(d / "opset1.onnx", opset=1)),
        "batch4": str(_save_onnx(d / "batch4.onnx", batch=4)),
        "profile_dir": str(_fake_optimize_output(d / "optimized", models)),
    }


_FILE_FLAGS = ("--inputs", "--calibration", "--eval")


def _opt(model: str, *args: str, out: bool = True) -> list[str]:
    """An optimize command line of the table below; `@name` stands for the path of `files[name]`."""
    marked = [f"@{a}" if i and args[i - 1] in _FILE_FLAGS else a for i, a in enumerate(args)]
    return ["optimize", f"@{model}", *(["--out", OUT] if out else []), *marked]


_SIG_INT = '{"inputs": [{"name": "x", "dtype": "int64", "shape": [16]}]}'
_SIG_Z = '{"inputs": [{"name": "z", "dtype": "float32", "shape": [16]}]}'
_SIG_HUGE = '{"inputs": [{"name": "x", "dtype": "float32", "shape": [100000, 100000]}]}'

BAD_INPUT = [
    # Numeric options: range-checked before any file is opened.
    ("price-nan", _opt("ts", "--inputs", "inputs", "--price-per-hour", "nan"), ["--price-per-hour", "'nan'"]),
    (
        "price-neg-inf",
        _opt("ts", "--inputs", "inputs", "--price-per-hour", "-inf"),
        ["--price-per-hour", "finite"],
    ),
    ("price-negative", _opt("ts", "--inputs", "inputs", "--price-per-hour", "-1e5"), ["at least 0"]),
    (
        "drop-negative",
        _opt("ts", "--inputs", "inputs", "--max-metric-drop", "-1"),
        ["--max-metric-drop", "'-1'"],
    ),
    ("drop-percent", _opt("ts", "--inputs", "inputs", "--max-metric-drop", "5"), ["at most 1", "fraction"]),
    (
        "batch-huge",
        _opt("ts", "--inputs", "inputs", "--max-batch-size", "1e12"),
        ["--max-batch-size", "1 to 1024"],
    ),
    ("batch-zero", _opt("ts", "--inputs", "inputs", "--max-batch-size", "0"), ["--max-batch-size", "'0'"]),
    ("batch-fraction", _opt("ts", "--inputs", "inputs", "--max-batch-size", "2.5"), ["whole number"]),
    ("batch-text", _opt("ts", "--inputs", "inputs", "--max-batch-size", "abc"), ["whole number", "'abc'"]),
    ("seconds-zero", _opt("ts", "--inputs", "inputs", "--profile-seconds", "0"), ["--profile-seconds"]),
    ("seconds-inf", _opt("ts", "--inputs", "inputs", "--profile-seconds", "inf"), ["--profile-seconds"]),
    ("seconds-huge", _opt("ts", "--inputs", "inputs", "--profile-seconds", "1e9"), ["at most 600"]),
    (
        "budget-negative",
        _opt("ts", "--inputs", "inputs", "--latency-budget-ms", "-5"),
        ["--latency-budget-ms"],
    ),
    ("budget-nan", _opt("ts", "--inputs", "inputs", "--latency-budget-ms", "nan"), ["--latency-budget-ms"]),
    # Variants, and what they need.
    (
        "variants-empty",
        _opt("ts", "--inputs", "inputs", "--variants", ""),
        ["--variants is empty", "onnx-fp32"],
    ),
    ("variants-commas", _opt("ts", "--inputs", "inputs", "--variants", " , "), ["--variants is empty"]),
    (
        "variants-unknown",
        _opt("ts", "--inputs", "inputs", "--variants", "onnx-fp32,x"),
        ["unknown variants", "'x'"],
    ),
    (
        "static-without-calibration",
        _opt("ts", "--inputs", "inputs", "--variants", "onnx-fp32,onnx-int8-static"),
        ["onnx-int8-static needs --calibration"],
    ),
    # Usage mistakes argparse finds: one line too, not the usage text.
    ("target-unknown", _opt("ts", "--inputs", "inputs", "--target", "tpu"), ["--target", "'tpu'"]),
    ("out-missing", _opt("ts", "--inputs", "inputs", out=False), ["required", "--out"]),
    ("flag-unknown", _opt("ts", "--inputs", "inputs", "--bogus"), ["unrecognized", "--bogus"]),
    # Example sets: numbers, labels and file formats.
    ("inputs-nan", _opt("ts", "--inputs", "nan"), ["array 'x'", "NaN/Inf", "(nan)", "index [3, 5]"]),
    (
        "calibration-inf",
        _opt("ts", "--inputs", "inputs", "--calibration", "calib_inf"),
        ["calibration file", "array 'x'", "(inf)", "index [23, 0]"],
    ),
    (
        "calibration-dtype",
        _opt("ts", "--inputs", "inputs", "--calibration", "calib_f64"),
        ["calibration file", "expected float32", "got float64"],
    ),
    (
        "labels-2d",
        _opt("ts", "--inputs", "inputs", "--eval", "labels_2d"),
        ["'labels' must be 1-D", "(16, 2)"],
    ),
    (
        "labels-short",
        _opt("ts", "--inputs", "inputs", "--eval", "labels_short"),
        ["'labels'", "(16,)", "(15,)"],
    ),
    (
        "labels-negative",
        _opt("ts", "--inputs", "inputs", "--eval", "labels_neg"),
        ["'labels'", "class indices"],
    ),
    ("labels-nan", _opt("ts", "--inputs", "inputs", "--eval", "labels_nan"), ["'labels'", "NaN/Inf"]),
    (
        "labels-above-classes",
        _opt("ts", "--inputs", "inputs", "--eval", "labels_big"),
        ["up to 9", "4 classes"],
    ),
    ("npz-is-other-zip", _opt("ts", "--inputs", "zip"), ["zip archive but not an .npz", "hello.txt"]),
    ("npz-is-text", _opt("ts", "--inputs", "text"), ["not an .npz archive"]),
    # The model: opsets, and inputs against what it declares ("expected ... got ...", naming the input).
    ("onnx-opset-99", _opt("opset99", "--inputs", "inputs"), ["opset 99", "supported opsets are 7 to"]),
    ("onnx-opset-1", _opt("opset1", "--inputs", "inputs"), ["opset 1;", "supported opsets are 7 to"]),
    (
        "onnx-fixed-batch",
        _opt("batch4", "--inputs", "inputs"),
        ["'x' has a fixed batch size of 4", "dynamic"],
    ),
    ("onnx-input-missing", _opt("onnx", "--inputs", "y"), ["lacks input 'x'", "['y']"]),
    (
        "onnx-shape",
        _opt("onnx", "--inputs", "w15"),
        ["input 'x'", "expected float32 of shape (N, 16)", "got float32 of shape (16, 15)"],
    ),
    ("onnx-dtype", _opt("onnx", "--inputs", "f64"), ["input 'x'", "expected float32", "got float64"]),
    (
        "pt2-shape",
        _opt("pt2", "--inputs", "w15"),
        ["input 'x'", "expected float32 of shape (N, 16)", "(16, 15)"],
    ),
    ("pt2-dtype", _opt("pt2", "--inputs", "f64"), ["input 'x'", "expected float32", "got float64"]),
    ("torchscript-shape", _opt("ts", "--inputs", "w15"), ["'x' float32 of shape (N, 15)", "1x15 and 16x32"]),
    (
        "torchscript-input-count",
        _opt("ts", "--inputs", "xy"),
        ["expected 1 input array(s)", "['input']", "got 2"],
    ),
    ("torchscript-dtype", _opt("ts", "--inputs", "f64"), ["input 'x'", "expected float32", "got float64"]),
    (
        "signature-dtype",
        _opt("ts", "--inputs", "inputs", "--signature", _SIG_INT),
        ["--signature", "input 'x'", "expected int64", "got float32"],
    ),
    (
        "signature-names",
        _opt("ts", "--inputs", "inputs", "--signature", _SIG_Z),
        ["--signature", "lacks input 'z'"],
    ),
    ("signature-too-big", _opt("ts", "--signature", _SIG_HUGE), ["--signature", "GiB", "--inputs"]),
    (
        "model-output-nan",
        _opt("log", "--inputs", "inputs"),
        ["model's output 0", "nan", "sample 4", "finite outputs"],
    ),
    # profile
    ("profile-price-nan", ["profile", "@profile_dir", "--price-per-hour", "nan"], ["--price-per-hour"]),
    ("profile-batch-huge", ["profile", "@profile_dir", "--max-batch-size", "4096"], ["--max-batch-size"]),
    (
        "profile-variant-file-missing",
        ["profile", "@profile_dir"],
        ["variant onnx-fp32", "variants/onnx-fp32/model.onnx", "missing"],
    ),
]


@pytest.mark.parametrize(("argv", "needles"), [pytest.param(a, n, id=i) for i, a, n in BAD_INPUT])
def test_every_user_mistake_is_one_line_and_the_user_exit_code(
    argv: list[str],
    needles: list[str],
    files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    resolved = [str(tmp_path / "out") if a == OUT else files[a[1:]] if a.startswith("@") else a for a in argv]
    if resolved[0] == "optimize" and "--max-batch-size" not in resolved:
        resolved += ["--max-batch-size", "4"]
    rc = cli.main(resolved)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == cli.EXIT_USER, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("thrifty-convert: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out" / "work").exists()  # found before any conversion


# --- Numeric flags, property-tested: exit 0 only for valid values, EXIT_USER and one line otherwise ---

_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_VALUES = st.one_of(
    _FLOATS,
    st.floats(min_value=-2.0, max_value=1100.0),  # near the bounds, where off-by-one mistakes live
    st.integers(min_value=-3, max_value=1100),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0.0, -0.0, 1.0, 1024.0, 1025.0, 600.0, 600.0001, 1e-300, 5e-324, 1e6, 1e308]),
)


def _valid(flag: str, x: float) -> bool:
    if not math.isfinite(x):
        return False
    if flag == "--max-batch-size":
        return x == int(x) and 1 <= x <= checks.MAX_BATCH_SIZE
    low, high, open_low = {
        "--price-per-hour": (0.0, checks.MAX_PRICE_PER_HOUR, False),
        "--max-metric-drop": (0.0, 1.0, False),
        "--profile-seconds": (0.0, checks.MAX_PROFILE_SECONDS, True),
        "--latency-budget-ms": (0.0, checks.MAX_LATENCY_BUDGET_MS, True),
    }[flag]
    return (low < x if open_low else low <= x) and x <= high


def _stub_report() -> Any:
    from thrifty_api import report

    return report.Report(
        model="m",
        target="cpu",
        machine=report.Machine(hostname="h", cpu="c", threads=1, cpu_flags=[], gpu=False),
        options={},
        stages=[],
        baseline=report.Baseline(
            name="b", latency_ms=report.Latency(), throughput_per_s=None, batch_size=None
        ),
        variants=[],
        selected=report.Selected(variant=None, reason="stub"),
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["optimize", "profile"]),
    flag=st.sampled_from(
        [
            "--price-per-hour",
            "--max-metric-drop",
            "--max-batch-size",
            "--profile-seconds",
            "--latency-budget-ms",
        ]
    ),
    value=_VALUES,
)
def test_numeric_flags_accept_only_finite_in_range_values(
    command: str,
    flag: str,
    value: float | int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thrifty_converters import pipeline, reprofile

    if command == "profile" and flag == "--max-metric-drop":
        flag = "--price-per-hour"  # profile has no metric gate
    calls: list[object] = []

    def fake(*args: object, **kwargs: object) -> Any:  # the work itself is not what is tested here
        calls.append(args)
        return _stub_report()

    monkeypatch.setattr(pipeline, "optimize_model", fake)
    monkeypatch.setattr(reprofile, "run", fake)
    text = repr(value) if isinstance(value, float) else str(value)
    if command == "optimize":
        argv = ["optimize", str(tmp_path / "m.pt"), "--signature", _SIG_INT, "--out", str(tmp_path / "out")]
    else:
        argv = ["profile", str(tmp_path / "out")]
    argv += [flag, text]
    capsys.readouterr()
    rc = cli.main(argv)
    err = capsys.readouterr().err
    valid = _valid(flag, float(value))
    event("valid" if valid else "invalid")
    if valid:
        assert rc == 0, err
        assert len(calls) == 1 and err == ""
    else:
        assert rc == cli.EXIT_USER
        assert not calls
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"thrifty-convert: error: {flag} must be"), err
        assert "Traceback" not in err
