"""End-to-end runs of `thrifty-convert` on a tiny MLP, plus the pure parts (parity, selection, profiling)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty_api import report, variants
from thrifty_converters import artifact, cli, cpu, parity, profiling, selection
from thrifty_converters.stages import export

QUICK = ["--profile-seconds", "0.4", "--max-batch-size", "4"]


def _optimize(model: Path, files: dict[str, Path], out: Path, *extra: str) -> int:
    args = ["optimize", str(model), "--out", str(out), *QUICK, *extra]
    for key, path in files.items():
        args += [f"--{key}", str(path)]
    return cli.main(args)


@pytest.fixture(scope="module")
def full_run(
    tmp_path_factory: pytest.TempPathFactory, converter_models: type[Any]
) -> tuple[Path, dict[str, Path], Path]:
    """One optimize run with every variant on a TorchScript MLP (shared by the tests below)."""
    models = converter_models
    folder = tmp_path_factory.mktemp("mlp")
    module = models.mlp()
    model = models.save_torchscript(module, folder / "mlp.pt", models.inputs(4))
    files = models.sets(folder, module)
    # A relative --out, as users type it: stages must not depend on the current folder.
    with contextlib.chdir(folder):
        assert _optimize(model, files, Path("out")) == 0
    return model, files, folder / "out"


def _report(out: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((out / "report.json").read_text())
    return data


def test_optimize_writes_report_with_required_keys(full_run: tuple[Path, dict[str, Path], Path]) -> None:
    data = _report(full_run[2])
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert isinstance(data["baseline"], dict) and data["baseline"]["throughput_per_s"] > 0
    rows = data["variants"]
    assert isinstance(rows, list) and [v["name"] for v in rows] == list(variants.ALL)
    for v in rows:
        for key in (
            "name",
            "format",
            "precision",
            "status",
            "parity",
            "latency_ms",
            "throughput_per_s",
            "size_bytes",
        ):
            assert key in v
        assert set(v["latency_ms"]) == {"p50", "p99"}
    assert set(data["selected"]) == {"variant", "reason"}
    report.read(full_run[2] / "report.json")  # validates against the pydantic schema


def test_optimize_runs_every_cpu_stage_when_calibration_given(
    full_run: tuple[Path, dict[str, Path], Path],
) -> None:
    stages = {s["name"]: s["status"] for s in _report(full_run[2])["stages"]}  # type: ignore[attr-defined]
    assert stages["export"] == "ok"
    for name in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "openvino-fp32", "openvino-int8"):
        assert stages[name] == "ok", (name, stages[name])
    bf16 = "ok" if _ov_bf16() else "skipped: CPU has no BF16 support (needs avx512_bf16 or AMX)"
    assert stages["openvino-bf16"] == bf16


def _ov_bf16() -> bool:
    from thrifty_converters.stages import openvino

    return openvino.cpu_supports_bf16()


@pytest.mark.skipif(cpu.has_gpu(), reason="asserts the no-GPU behaviour; the gpu tier covers GPU machines")
def test_gpu_stages_report_skipped_no_gpu_when_machine_has_none(
    full_run: tuple[Path, dict[str, Path], Path],
) -> None:
    rows = {v.name: v for v in report.read(full_run[2] / "report.json").variants}
    assert rows["onnx-fp16"].status == "skipped: no GPU"
    assert rows["tensorrt-fp16"].status == "skipped: no GPU"


def test_fp32_variants_pass_elementwise_parity(full_run: tuple[Path, dict[str, Path], Path]) -> None:
    rows = {v.name: v for v in report.read(full_run[2] / "report.json").variants}
    for name in ("onnx-fp32", "openvino-fp32"):
        p = rows[name].parity
        assert p is not None and p.passed and p.max_abs_error is not None
        assert p.max_abs_error <= parity.FP32_ATOL * 10
        assert rows[name].status == "ok"
        assert rows[name].latency_ms.p50 is not None and rows[name].throughput_per_s


def test_selection_picks_the_cheapest_passing_variant(full_run: tuple[Path, dict[str, Path], Path]) -> None:
    r = report.read(full_run[2] / "report.json")
    passing = [v for v in r.variants if v.status == "ok"]
    assert passing and r.selected.variant is not None
    cheapest = min(passing, key=lambda v: v.cost_per_million or float("inf"))
    assert r.selected.variant == cheapest.name
    for v in r.variants:
        if v.parity is not None and not v.parity.passed:
            assert v.status.startswith("failed: parity") and v.name != r.selected.variant


def test_passing_variants_are_written_to_the_triton_repository(
    full_run: tuple[Path, dict[str, Path], Path],
) -> None:
    r = report.read(full_run[2] / "report.json")
    assert r.model_repository == "model_repository"
    for v in r.variants:
        if v.status == "ok":
            assert v.triton is not None and v.triton.startswith("ok"), (v.name, v.triton)
            assert (full_run[2] / "model_repository" / v.name / "config.pbtxt").is_file()
        else:
            assert v.triton is None


def test_optimize_skips_stages_when_outputs_exist(
    full_run: tuple[Path, dict[str, Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, files, out = full_run
    assert _optimize(model, files, out, "--variants", "onnx-fp32,onnx-int8-dynamic") == 0
    stages = {s.name: s.status for s in report.read(out / "report.json").stages}
    assert stages["export"] == "skipped: output exists"
    assert stages["onnx-fp32"] == "skipped: output exists"
    assert stages["openvino-fp32"] == "skipped: not requested (--variants)"
    # Not a TTY under pytest: plain progress lines on stderr.
    assert "thrifty-convert: onnx-fp32: skipped: output exists" in capsys.readouterr().err


def test_profile_subcommand_reprofiles_passing_variants(full_run: tuple[Path, dict[str, Path], Path]) -> None:
    out = full_run[2]
    assert cli.main(["profile", str(out), "--profile-seconds", "0.3"]) == 0
    written = list(out.glob("profile-*.json"))
    assert len(written) == 1
    r = report.read(written[0])
    assert r.baseline.throughput_per_s and r.selected.variant is not None


@pytest.mark.parametrize("kind", ["pt2", "onnx"])
def test_optimize_accepts_torch_export_and_onnx_models(
    tmp_path: Path, kind: str, converter_models: type[Any]
) -> None:
    models = converter_models
    module = models.mlp()
    save = models.save_pt2 if kind == "pt2" else models.save_onnx
    model = save(module, tmp_path / f"mlp.{kind}", models.inputs(4))
    files = models.sets(tmp_path, module)
    del files["calibration"], files["eval"]
    assert _optimize(model, files, tmp_path / "out", "--variants", "onnx-fp32") == 0
    r = report.read(tmp_path / "out" / "report.json")
    stages = {s.name: s.status for s in r.stages}
    assert stages["export"] == ("ok" if kind == "pt2" else "skipped: source is ONNX")
    assert r.selected.variant == "onnx-fp32"


def test_export_marks_batch_and_sequence_axes_dynamic() -> None:
    assert export.dynamic_dims(np.zeros((2, 128), np.int64)) == {0: "batch", 1: "sequence"}
    assert export.dynamic_dims(np.zeros((2, 1, 8, 8), np.float32)) == {0: "batch"}


def test_parity_fp32_fails_when_error_exceeds_tolerance() -> None:
    ref = [np.ones((4, 3), np.float32)]
    assert parity.compare(ref, [ref[0] + 5e-5], "fp32").passed
    bad = parity.compare(ref, [ref[0] + 1e-2], "fp32")
    assert not bad.passed and "atol" in bad.reason


def test_parity_reduced_precision_uses_cosine_or_top1() -> None:
    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((32, 10)).astype(np.float32)]
    assert parity.compare(ref, [ref[0] * 1.01 + 1e-3], "int8").passed
    noise = parity.compare(ref, [rng.standard_normal((32, 10)).astype(np.float32)], "int8")
    assert not noise.passed and noise.mean_cosine < 0.5
    assert not parity.compare(ref, [np.full_like(ref[0], np.nan)], "bf16").passed


def test_metric_gate_allows_one_percent_relative_drop() -> None:
    assert parity.metric_drop_ok(0.90, 0.895, 0.01)
    assert not parity.metric_drop_ok(0.90, 0.88, 0.01)


def test_selection_minimises_cost_per_million() -> None:
    assert selection.cost_per_million(3.6, 1000.0) == pytest.approx(1.0)
    chosen, why = selection.select(
        [
            selection.Candidate(name="slow", throughput_per_s=100.0, p99_ms=5.0),
            selection.Candidate(name="fast", throughput_per_s=400.0, p99_ms=9.0),
            selection.Candidate(name="infeasible", throughput_per_s=None, p99_ms=None),
        ],
        price_per_hour=2.0,
    )
    assert chosen == "fast" and "cost per million" in why
    assert selection.select([], 1.0)[0] is None


def test_best_within_budget_respects_p99() -> None:
    rows = [
        profiling.BatchProfile(
            batch_size=1, p50_ms=1, p99_ms=2, throughput_per_s=500, stable=True, iterations=9
        ),
        profiling.BatchProfile(
            batch_size=8, p50_ms=5, p99_ms=20, throughput_per_s=1600, stable=True, iterations=9
        ),
    ]
    best = profiling.best_within_budget(rows, 10.0)
    assert best is not None and best.batch_size == 1
    assert profiling.best_within_budget(rows, None) == rows[1]
    assert profiling.best_within_budget(rows, 1.0) is None


def test_profile_measures_a_runner_with_stability_flag(converter_models: type[Any]) -> None:
    models = converter_models

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [feed["x"] @ np.ones((16, 4), np.float32)]

    rows = profiling.profile(run, lambda b: {"x": models.inputs(b)}, [1, 4], max_seconds_per_batch=0.3)
    assert [r.batch_size for r in rows] == [1, 4]
    assert all(r.p50_ms <= r.p99_ms and r.throughput_per_s > 0 and r.iterations >= 3 for r in rows)


def test_variant_artifact_validates_and_freezes(tmp_path: Path) -> None:
    spec = artifact.TensorSpec(name="x", dtype="float32", shape=(-1, 16))
    art = artifact.VariantArtifact(
        name="onnx-fp32",
        format="onnx",
        precision="fp32",
        path=tmp_path / "model.onnx",
        inputs=[spec],
        outputs=[artifact.TensorSpec(name="y", dtype="float32", shape=(-1, 4))],
        max_batch_size=8,
        device="cpu",
    )
    assert isinstance(art.inputs, tuple) and hash(art)
    with pytest.raises(ValueError, match="dtype"):
        artifact.TensorSpec(name="x", dtype="float", shape=(-1,))
    with pytest.raises(ValueError, match="max_batch_size"):
        artifact.VariantArtifact(**{**art.__dict__, "max_batch_size": 0})


def test_gpu_stage_reports_missing_package_as_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from thrifty_converters.stages import tensorrt

    monkeypatch.setattr(cpu, "has_gpu", lambda: True)  # pretend, to reach the package check
    monkeypatch.setattr(tensorrt, "_missing", lambda module: f"{module} is not installed")
    result = tensorrt.tensorrt_fp16(tmp_path / "fp16.onnx", tmp_path / "model.plan", "gpu", {})
    assert result.status == "skipped: tensorrt is not installed"
    assert (
        tensorrt.onnx_fp16(tmp_path / "m.onnx", tmp_path / "fp16.onnx", "cpu").status
        == "skipped: target is cpu"
    )


# A feature every sample carries at this value sets the range dynamic INT8 quantizes activations
# over: its step, at least ALWAYS_ON / 255 ~ 3.9, is 3.9x the largest other feature (|x| <= 1),
# so those all quantize to the zero point. Every sample then reaches the INT8 MatMul as the same
# vector and gets the same class. That is a property of 8-bit quantization, not of a CPU's rounding.
ALWAYS_ON = 1000.0
# Eval samples keep a float64 top-1 margin of at least this. FP32 rounds each class score (16
# terms, |terms| summing to at most 1014) by at most 16 * 2**-24 * 1014 ~ 1e-3 in any summation
# order, with or without FMA, so a margin by at most 2e-3: no FP32 runtime on any CPU can reorder
# the top two classes.
MIN_MARGIN = 0.1
CLASSES_EVAL = 16  # eval samples per class: balanced, so one constant class scores exactly 1/4


def _always_on_feature_classifier(folder: Path, converter_models: type[Any]) -> tuple[Path, dict[str, Path]]:
    """A linear classifier whose classes INT8 cannot tell apart but FP32 always can.

    Feature 0 is ALWAYS_ON in every sample and weighs 1.0 in every class, so it adds the same
    ~1000 to every class score: the scores keep a cosine near 1 under any error, and only the
    small features (|x| <= 1) decide the class. Returns the TorchScript model and its sets, the
    eval labels from float64 scores.
    """
    import torch

    n, classes = converter_models.FEATURES, converter_models.CLASSES
    rng = np.random.default_rng(7)
    weight = np.ones((classes, n))
    weight[:, 1:] = rng.uniform(-0.9, 0.9, (classes, n - 1))
    pool = np.full((4096, n), ALWAYS_ON)
    pool[:, 1:] = rng.uniform(-1.0, 1.0, (len(pool), n - 1))
    pool, weight = pool.astype(np.float32), weight.astype(np.float32)
    scores = pool.astype(np.float64) @ weight.astype(np.float64).T  # the model's exact inputs and weights
    top2 = np.sort(scores, axis=1)[:, -2:]
    label = scores.argmax(axis=1)
    clear = top2[:, 1] - top2[:, 0] >= MIN_MARGIN
    picked = np.concatenate([np.flatnonzero(clear & (label == c))[:CLASSES_EVAL] for c in range(classes)])
    assert len(picked) == classes * CLASSES_EVAL  # the pool holds enough clear samples of each class
    # The premise above: the other features sit below half a quantization step of every batch.
    assert np.abs(pool[:, 1:]).max() < ALWAYS_ON / 255 / 2
    layer = torch.nn.Linear(n, classes, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
    module = layer.eval()
    rest = np.setdiff1d(np.arange(len(pool)), picked)[:48]
    files = {"inputs": folder / "inputs.npz", "eval": folder / "eval.npz"}
    np.savez(files["inputs"], x=pool[rest])
    np.savez(files["eval"], x=pool[picked], labels=label[picked])
    model = converter_models.save_torchscript(module, folder / "always_on.pt", pool[rest][:4])
    return model, files


def test_variant_losing_accuracy_fails_and_is_never_selected(
    tmp_path: Path, converter_models: type[Any]
) -> None:
    model, files = _always_on_feature_classifier(tmp_path, converter_models)
    # Any gate between FP32's drop (none: every margin survives FP32) and INT8's (3/4: it
    # predicts one class of four balanced ones) must fail INT8 and pass FP32; take one in between.
    gate = ["--max-metric-drop", "0.5"]
    assert _optimize(model, files, tmp_path / "out", "--variants", "onnx-fp32,onnx-int8-dynamic", *gate) == 0
    r = report.read(tmp_path / "out" / "report.json")
    assert r.baseline.metric is not None and r.baseline.metric > 0.99  # PyTorch gets every label
    rows = {v.name: v for v in r.variants}
    fp32, int8 = rows["onnx-fp32"], rows["onnx-int8-dynamic"]
    assert fp32.status == "ok" and fp32.parity is not None and fp32.parity.passed
    assert fp32.parity.metric is not None and fp32.parity.metric > 0.99
    # Parity passes (the shared score keeps the cosine near 1): the accuracy gate alone catches it.
    assert int8.parity is not None and int8.parity.passed, int8.parity
    assert int8.parity.metric is not None and int8.parity.metric < 0.5
    assert int8.parity.metric_baseline == r.baseline.metric
    assert int8.status.startswith("failed: accuracy") and "more than 50.0%" in int8.status, int8.status
    assert int8.throughput_per_s is None and int8.triton is None
    assert not (tmp_path / "out" / "model_repository" / "onnx-int8-dynamic").exists()
    assert r.selected.variant == "onnx-fp32"


def _heavy_tailed_model(path: Path) -> Path:
    """x -> MatMul -> Exp -> MatMul: the second MatMul's input has a range one 8-bit scale cannot hold."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((32, 32)).astype(np.float32)
    w2 = (rng.standard_normal((32, 8)) / 4).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
            helper.make_node("Exp", ["h"], ["e"], name="heavy_tail"),
            helper.make_node("MatMul", ["e", "w2"], ["y"], name="second"),
        ],
        "heavy_tail",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_static_int8_keeps_the_most_sensitive_node_in_float_when_full_quantization_disagrees(
    tmp_path: Path,
) -> None:
    import onnx

    from thrifty_converters.examples import Samples
    from thrifty_converters.stages import quantize

    src = _heavy_tailed_model(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    calibration = Samples(arrays={"x": (rng.standard_normal((64, 32)) / 2).astype(np.float32)})
    (tmp_path / "work").mkdir()
    result = quantize.static(src, tmp_path / "work", tmp_path / "q.onnx", calibration)
    assert result.status == "ok"
    assert float(result.details["full_quantization_cosine"]) < parity.MIN_COSINE
    assert float(result.details["cosine"]) >= parity.MIN_COSINE
    assert result.details["nodes_in_float"] == "1 of 2"
    qdq = onnx.load(str(tmp_path / "q.onnx"))
    dequantized = {o for n in qdq.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    second = next(n for n in qdq.graph.node if n.name == "second")
    first = next(n for n in qdq.graph.node if n.name == "first")
    assert not set(second.input) & dequantized  # left in float
    assert set(first.input) & dequantized  # still quantized
    assert not list((tmp_path / "work").glob("sensitivity-*.onnx"))
