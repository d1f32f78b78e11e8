"""Model repository layout and config.pbtxt, checked against Triton's ModelConfig protobuf schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty_converters.triton import model_config as tc
from thrifty_converters.triton import repository
from thrifty_converters.triton.errors import InvalidModelConfigError
from thrifty_testbed import triton_models as tm


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    src = tmp_path_factory.mktemp("src")
    onnx_path = tm.build_onnx(src / "tiny.onnx")
    plan = src / "tiny.plan"
    plan.write_bytes(b"serialized engine")  # TensorRT needs a GPU to build; the writer only copies it
    return {"onnx": onnx_path, "openvino": tm.build_openvino(onnx_path, src / "tiny.xml"), "tensorrt": plan}


@pytest.mark.parametrize(
    ("fmt", "device", "backend", "platform", "files"),
    [
        ("onnx", "cpu", "onnxruntime", "onnxruntime_onnx", ["model.onnx"]),
        ("openvino", "cpu", "openvino", "", ["model.bin", "model.xml"]),
        ("tensorrt", "gpu", "tensorrt", "tensorrt_plan", ["model.plan"]),
    ],
)
def test_write_variant_writes_native_backend_layout_when_format_given(
    tmp_path: Path,
    models: dict[str, Path],
    fmt: str,
    device: str,
    backend: str,
    platform: str,
    files: list[str],
) -> None:
    variant = tm.variant(f"tiny-{fmt}", fmt, models[fmt], device=device)

    model_dir = repository.write_variant(tmp_path, repository.native_model_name(variant), variant)

    assert model_dir == tmp_path / f"tiny-{fmt}"
    assert sorted(p.name for p in (model_dir / "1").iterdir()) == files
    config = repository.validate_model(model_dir, variant)
    assert (config.name, config.backend, config.platform) == (f"tiny-{fmt}", backend, platform)
    assert config.max_batch_size == tm.MAX_BATCH
    assert [list(t.dims) for t in config.input] == [[tm.FEATURES]]  # batch dim implicit
    assert config.input[0].data_type == tc.model_config_pb2.TYPE_FP32
    group = tc.model_config_pb2.ModelInstanceGroup
    kind = group.KIND_GPU if device == "gpu" else group.KIND_CPU
    assert config.instance_group[0].kind == kind
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.model_warmup[0].batch_size == tm.MAX_BATCH
    assert config.model_warmup[0].inputs["x"].zero_data


def test_write_python_backend_variant_serves_session_when_cpu_onnx(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    variant = tm.variant("tiny", "onnx", models["onnx"])

    model_dir = repository.write_python_backend_variant(
        tmp_path, repository.python_model_name(variant), variant, intra_op_threads=1
    )

    assert model_dir.name == "tiny-py"
    assert sorted(p.name for p in (model_dir / "1").iterdir()) == ["model.onnx", "model.py"]
    config = repository.validate_model(model_dir, variant)
    assert (config.backend, config.platform) == ("python", "")
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert params == {"runtime": "onnxruntime", "model_filename": "model.onnx", "intra_op_threads": "1"}


def test_write_python_backend_variant_rejects_when_gpu_or_tensorrt(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    with pytest.raises(InvalidModelConfigError, match="CPU onnx or openvino"):
        repository.write_python_backend_variant(
            tmp_path, "m", tm.variant("t", "tensorrt", models["tensorrt"], "gpu")
        )
    with pytest.raises(InvalidModelConfigError, match="CPU onnx or openvino"):
        repository.write_python_backend_variant(tmp_path, "m", tm.variant("t", "onnx", models["onnx"], "gpu"))


def test_render_config_keeps_explicit_zero_when_batching_off(tmp_path: Path, models: dict[str, Path]) -> None:
    variant = tm.variant("tiny", "onnx", models["onnx"])
    options = tc.ServingOptions(batching=False, warmup=False)

    model_dir = repository.write_variant(tmp_path, "tiny", variant, options)

    text = (model_dir / "config.pbtxt").read_text()
    assert "max_batch_size: 0" in text  # proto3 would drop it; auto-complete would then batch
    config = tc.validate_config(text, variant=variant)
    assert [list(t.dims) for t in config.input] == [[-1, tm.FEATURES]]  # batch dim explicit
    assert not config.HasField("dynamic_batching")


def test_write_variant_replaces_model_when_written_twice(tmp_path: Path, models: dict[str, Path]) -> None:
    variant = tm.variant("tiny", "onnx", models["onnx"])
    repository.write_variant(tmp_path, "tiny", variant)
    (tmp_path / "tiny" / "1" / "stale.txt").write_text("old")

    repository.write_variant(tmp_path, "tiny", variant, tc.ServingOptions(instance_count=2))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging leftovers
    assert not (tmp_path / "tiny" / "1" / "stale.txt").exists()
    assert tc.parse_config((tmp_path / "tiny" / "config.pbtxt").read_text()).instance_group[0].count == 2


def test_write_variant_rejects_when_name_unsafe(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(InvalidModelConfigError, match="model name"):
        repository.write_variant(tmp_path, "../escape", tm.variant("tiny", "onnx", models["onnx"]))


def test_parse_config_rejects_when_field_unknown() -> None:
    with pytest.raises(InvalidModelConfigError, match="does not parse"):
        tc.parse_config('name: "m"\nmax_batch: 4\n')


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name: "m" platform: "tensorrt_plan" backend: "onnxruntime"', "must go with backend 'tensorrt'"),
        ('name: "m" backend: "python" platform: "onnxruntime_onnx"', "python backend takes no platform"),
        ('name: "m" backend: "tensorrt" instance_group { kind: KIND_CPU }', "needs KIND_GPU"),
        (
            'name: "m" backend: "onnxruntime" dynamic_batching { }',
            "dynamic_batching needs max_batch_size > 0",
        ),
        (
            'name: "m" backend: "onnxruntime" input { name: "x" data_type: TYPE_FP32 }',
            "dims must not be empty",
        ),
        (
            'name: "m" max_batch_size: 8 backend: "onnxruntime" '
            'input { name: "x" data_type: TYPE_FP32 dims: [-1, 4] }',
            "dims [-1, 4] must be [4]",
        ),
    ],
)
def test_validate_config_reports_problem_when_semantics_broken(text: str, problem: str) -> None:
    variant = tm.variant("m", "onnx", Path("unused.onnx"))

    with pytest.raises(InvalidModelConfigError) as info:
        tc.validate_config(text, variant=variant)

    assert any(problem in p for p in info.value.problems), info.value.problems


def test_validate_config_reports_missing_files_when_model_dir_given(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    model_dir = repository.write_variant(tmp_path, "tiny", tm.variant("tiny", "openvino", models["openvino"]))
    (model_dir / "1" / "model.bin").unlink()

    with pytest.raises(InvalidModelConfigError, match=r"1/model.bin must exist"):
        repository.validate_model(model_dir)
