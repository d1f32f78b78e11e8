"""A real tritonserver (CPU, from nvidia-pytriton) serving Python-backend variants over HTTP and gRPC."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from thrifty_converters.triton import model_config as tc
from thrifty_converters.triton import repository
from thrifty_converters.triton.distribution import TritonDistribution, find_tritonserver
from thrifty_converters.triton.errors import ServerError
from thrifty_testbed import triton as server
from thrifty_testbed import triton_models as tm

pytestmark = pytest.mark.triton

# A loopback address other than 127.0.0.1: servers bind the address they are given, not every address.
HOST = "127.0.0.7"
ONNX_MODEL = "tiny-py"
OPENVINO_MODEL = "tiny-ov-py"
UNBATCHED_MODEL = "tiny-nobatch-py"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    return tm.build_onnx(tmp_path_factory.mktemp("src") / "tiny.onnx")


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory, onnx_path: Path) -> Iterator[server.TritonServer]:
    pytest.importorskip("tritonclient.grpc")
    try:
        find_tritonserver()
    except ServerError as e:
        pytest.skip(str(e))
    repo = tmp_path_factory.mktemp("repo")
    xml = tm.build_openvino(onnx_path, onnx_path.with_suffix(".xml"))
    # A queue delay long enough for concurrent requests to meet in one batch.
    batching = tc.ServingOptions(max_queue_delay_microseconds=20_000)
    repository.write_python_backend_variant(repo, ONNX_MODEL, tm.variant("tiny", "onnx", onnx_path), batching)
    repository.write_python_backend_variant(repo, OPENVINO_MODEL, tm.variant("tiny-ov", "openvino", xml))
    repository.write_python_backend_variant(
        repo,
        UNBATCHED_MODEL,
        tm.variant("tiny-nobatch", "onnx", onnx_path),
        tc.ServingOptions(batching=False),
    )
    endpoints = server.free_endpoints(HOST)
    with server.run_server(repo, tmp_path_factory.mktemp("work"), endpoints, ready_timeout=90) as running:
        yield running


def _inputs(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, tm.FEATURES)).astype(np.float32)


def _http_infer(url: str, model: str, x: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        tensor = httpclient.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return np.asarray(client.infer(model, [tensor]).as_numpy("y"))
    finally:
        client.close()  # an open keep-alive connection delays server shutdown by --exit-timeout-secs


def test_server_serves_onnx_python_backend_over_http(triton: server.TritonServer, onnx_path: Path) -> None:
    x = _inputs(5, seed=1)

    y = _http_infer(triton.endpoints.http_url, ONNX_MODEL, x)

    np.testing.assert_allclose(y, tm.reference(onnx_path, x), rtol=1e-6, atol=1e-6)


def test_server_serves_openvino_python_backend_over_grpc(
    triton: server.TritonServer, onnx_path: Path
) -> None:
    import tritonclient.grpc as grpcclient

    x = _inputs(tm.MAX_BATCH, seed=2)
    client = grpcclient.InferenceServerClient(triton.endpoints.grpc_url)
    try:
        tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        y = client.infer(OPENVINO_MODEL, [tensor]).as_numpy("y")
        served = client.get_model_config(OPENVINO_MODEL, as_json=True)["config"]
    finally:
        client.close()

    np.testing.assert_allclose(y, tm.reference(onnx_path, x), rtol=1e-5, atol=1e-5)
    assert (served["backend"], served["max_batch_size"]) == ("python", tm.MAX_BATCH)


def test_server_serves_unbatched_model_when_max_batch_size_zero(
    triton: server.TritonServer, onnx_path: Path
) -> None:
    import tritonclient.http as httpclient

    x = _inputs(3, seed=3)

    y = _http_infer(triton.endpoints.http_url, UNBATCHED_MODEL, x)

    np.testing.assert_allclose(y, tm.reference(onnx_path, x), rtol=1e-6, atol=1e-6)
    client = httpclient.InferenceServerClient(triton.endpoints.http_url)
    try:
        assert client.get_model_config(UNBATCHED_MODEL)["max_batch_size"] == 0  # not auto-completed to 4
    finally:
        client.close()


def test_server_answers_each_request_when_dynamic_batcher_merges(
    triton: server.TritonServer, onnx_path: Path
) -> None:
    import tritonclient.http as httpclient

    xs = [_inputs(1 + i % 3, seed=10 + i) for i in range(12)]
    before = server.fetch_metrics(triton.endpoints)
    client = httpclient.InferenceServerClient(triton.endpoints.http_url, concurrency=len(xs))
    try:
        pending = []
        for x in xs:
            tensor = httpclient.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            pending.append(client.async_infer(ONNX_MODEL, [tensor]))
        ys = [p.get_result().as_numpy("y") for p in pending]
    finally:
        client.close()

    for x, y in zip(xs, ys, strict=True):
        np.testing.assert_allclose(y, tm.reference(onnx_path, x), rtol=1e-6, atol=1e-6)
    after = server.fetch_metrics(triton.endpoints)
    requests, executions = (
        _metric(after, name, ONNX_MODEL) - _metric(before, name, ONNX_MODEL)
        for name in ("nv_inference_request_success", "nv_inference_exec_count")
    )
    assert requests == len(xs)
    assert executions < requests  # model.py ran merged batches


def _metric(text: str, name: str, model: str) -> float:
    match = re.search(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {model} missing from /metrics"
    return float(match.group(1))


def test_server_exports_scaling_metrics_when_requests_served(triton: server.TritonServer) -> None:
    for seed in range(3):
        _http_infer(triton.endpoints.http_url, ONNX_MODEL, _inputs(2, seed))

    text = server.fetch_metrics(triton.endpoints)

    assert _metric(text, "nv_inference_request_success", ONNX_MODEL) >= 3
    assert _metric(text, "nv_inference_queue_duration_us", ONNX_MODEL) > 0
    assert _metric(text, "nv_inference_pending_request_count", ONNX_MODEL) == 0  # a gauge: nothing queued now
    assert _metric(text, "nv_inference_count", ONNX_MODEL) >= _metric(
        text, "nv_inference_exec_count", ONNX_MODEL
    )


def test_server_command_binds_every_endpoint_when_host_given(tmp_path: Path) -> None:
    distribution = TritonDistribution(
        binary=Path("/opt/tritonserver"),
        libs_dir=Path("/opt/libs"),
        backends_dir=Path("/opt/backends"),
        caches_dir=Path("/opt/caches"),
        stubs_dir=Path("/opt/stubs"),
    )
    endpoints = server.Endpoints(host="127.0.0.9", http_port=1, grpc_port=2, metrics_port=3)

    command = server.server_command(distribution, tmp_path, endpoints, tmp_path / "b", load_models=["m"])

    for flag in ("--http-address=127.0.0.9", "--grpc-address=127.0.0.9", "--metrics-address=127.0.0.9"):
        assert flag in command
    assert "--model-control-mode=explicit" in command
    assert "--load-model=m" in command
    assert f"--backend-directory={tmp_path / 'b'}" in command


def test_server_binds_only_given_address(triton: server.TritonServer) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", triton.endpoints.http_port))


def test_run_server_raises_with_log_when_model_fails(tmp_path: Path, onnx_path: Path) -> None:
    pytest.importorskip("pytriton")
    model_dir = repository.write_python_backend_variant(
        tmp_path / "repo", "broken", tm.variant("b", "onnx", onnx_path)
    )
    (model_dir / "1" / "model.onnx").unlink()

    with (
        pytest.raises(ServerError, match="exited") as info,
        server.run_server(tmp_path / "repo", tmp_path / "work"),
    ):
        pass

    assert "broken" in info.value.log_tail
