"""The whole pipeline on the local cluster: the real operator, real converter Jobs and a real Triton.

The kubelet stand-in runs this namespace's pods as local processes: `thrifty-convert` for the conversion and
profiling Jobs (the GPU pool's Job reports `skipped: no GPU` on a machine without one) and tritonserver from
nvidia-pytriton for the Deployment, which the test then queries over HTTP at the pod's IP.
"""

from __future__ import annotations

import json
import pathlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from operator_runner import apply_manifest, condition, get_json, model_manifest, running_operator, wait_for

from thrifty_operator import names
from thrifty_testbed.cluster import LocalCluster
from thrifty_testbed.kubelet import LocalKubelet

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ROOT = pathlib.Path(__file__).resolve().parents[2]
FEATURES, CLASSES = 16, 4
SETTINGS = {
    "triton_backend_mode": "python",
    "extra_pod_labels": json.dumps({"testbed.thrifty.dev/kubelet": "local"}),
    "status_interval_seconds": "2",
}


@pytest.fixture
def kubelet(crds: LocalCluster, namespace: str, tmp_path: pathlib.Path) -> Iterator[LocalKubelet]:
    """The kubelet stand-in for this test's namespace only."""
    with LocalKubelet(crds.kubeconfig, tmp_path / "kubelet", namespace=namespace) as harness:
        yield harness
        # Finish deletions while the harness still plays kubelet; otherwise pods stay Terminating.
        crds.kubectl(
            "delete", "deployments,jobs,pods", "--all", "-n", namespace, "--timeout=30s", check=False
        )


def _mlp() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES)
    ).eval()


def _save_torchscript(module: Any, path: pathlib.Path) -> pathlib.Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, still supported as input
        torch.jit.save(torch.jit.trace(module, torch.zeros(2, FEATURES)), str(path))
    return path


def _manifest(name: str, model: pathlib.Path) -> dict[str, Any]:
    return model_manifest(
        name,
        source__uri=f"file://{model}",
        signature={
            "inputs": [{"name": "x", "dtype": "float32", "shape": [FEATURES]}],
            "outputs": [{"name": "logits", "dtype": "float32", "shape": [CLASSES]}],
        },
        optimization={
            "variants": ["onnx-fp32", "onnx-int8-dynamic"],
            "latencyTargetMs": 50,
            "maxBatchSize": 4,
        },
        serving={
            "pools": ["cpu-c7i", "gpu-l4"],
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            "minReplicas": 1,
            "maxReplicas": 1,
        },
    )


def _ready_status(cluster: LocalCluster, namespace: str, name: str) -> Any:
    om = get_json(cluster, "om", name, "-n", namespace)
    ready = condition(om, "Ready")
    if ready and ready["status"] == "True":
        return om
    if ready and ready["reason"] in ("ConversionFailed", "NoFeasibleVariant"):
        raise AssertionError(f"{name} will not become Ready: {ready}")
    return None


def _triton_ip(cluster: LocalCluster, namespace: str) -> str | None:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=triton") or {}
    for pod in pods.get("items", []):
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        if ready and pod["status"].get("podIP"):
            return str(pod["status"]["podIP"])
    return None


def _agrees(variant: str, served: np.ndarray, expected: np.ndarray) -> None:
    if variant.endswith("fp32"):
        np.testing.assert_allclose(served, expected, atol=1e-4, rtol=1e-3)
        return
    # Reduced precision: the same direction and the same class, as the converter's parity gate.
    cosine = (served * expected).sum(1) / (np.linalg.norm(served, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() > 0.99, cosine
    np.testing.assert_array_equal(served.argmax(1), expected.argmax(1))


@pytest.mark.triton
def test_model_becomes_ready_and_serves_what_torch_computes(
    crds: LocalCluster, namespace: str, kubelet: LocalKubelet, tmp_path: pathlib.Path
) -> None:
    import torch
    import tritonclient.http as httpclient

    module = _mlp()
    model = _save_torchscript(module, tmp_path / "mlp.pt")
    log = tmp_path / "operator.log"
    with running_operator(crds, namespace, log, **SETTINGS):
        apply_manifest(crds, namespace, _manifest("mlp", model))
        om = wait_for("Ready=True", lambda: _ready_status(crds, namespace, "mlp"), timeout=240, log=log)
        ip = wait_for("a ready Triton pod", lambda: _triton_ip(crds, namespace), timeout=60, log=log)
    status = om["status"]
    variant, model_name = status["selected"]["variant"], status["endpoints"]["modelName"]
    assert status["selected"]["pool"] == "cpu-c7i"
    assert model_name == f"{variant}-py"
    # Without --variants for the GPU pool, its Job builds FP16 ONNX; here it has no GPU to build on.
    gpu = {v["name"]: v["status"] for v in status["variants"] if v["pool"] == "gpu-l4"}
    assert gpu and set(gpu.values()) == {"skipped: no GPU"}, status["variants"]
    cpu = {v["name"]: v for v in status["variants"] if v["pool"] == "cpu-c7i"}
    assert set(cpu) == {"onnx-fp32", "onnx-int8-dynamic"}
    assert all(float(v["throughputPerSecond"]) > 0 for v in cpu.values())

    x = np.random.default_rng(7).standard_normal((3, FEATURES)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    client = httpclient.InferenceServerClient(url=f"{ip}:8000")
    try:
        assert client.is_model_ready(model_name)
        request = httpclient.InferInput("x", list(x.shape), "FP32")
        request.set_data_from_numpy(x)
        served = client.infer(model_name, [request]).as_numpy("logits")
    finally:
        client.close()
    assert served is not None and served.shape == (3, CLASSES)
    _agrees(variant, served, expected)
    assert "Traceback" not in log.read_text()


def test_unreachable_and_corrupt_models_fail_conversion_once_with_a_clear_message(
    crds: LocalCluster, namespace: str, kubelet: LocalKubelet, tmp_path: pathlib.Path
) -> None:
    corrupt = tmp_path / "corrupt" / "model.pt"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"PK\x03\x04 this is not a TorchScript archive" * 40)
    missing = tmp_path / "missing" / "model.pt"
    missing.parent.mkdir()
    expected = {"missing": "model file not found", "corrupt": "cannot read"}
    log = tmp_path / "operator.log"
    with running_operator(crds, namespace, log, **SETTINGS):
        apply_manifest(crds, namespace, _manifest("missing", missing))
        apply_manifest(crds, namespace, _manifest("corrupt", corrupt))

        def failed(name: str) -> dict[str, Any] | None:
            ready = condition(get_json(crds, "om", name, "-n", namespace), "Ready")
            return ready if ready and ready["reason"] == "ConversionFailed" else None

        conditions = {
            n: wait_for(f"{n}: ConversionFailed", lambda n=n: failed(n), 180, log) for n in expected
        }
    for name, needle in expected.items():
        assert conditions[name]["status"] == "False"
        assert needle in conditions[name]["message"], conditions[name]
    jobs = get_json(crds, "jobs", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=convert")["items"]
    assert len(jobs) == 2
    for job in jobs:
        assert job["spec"]["backoffLimit"] == 0
        assert job["status"].get("failed") == 1, job["status"]
    pods = get_json(crds, "pods", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=convert")["items"]
    assert len(pods) == 2  # one attempt each: no retries
    assert not get_json(crds, "jobs", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}=profile")["items"]
    text = log.read_text()
    assert "Traceback" not in text


@pytest.fixture
def s3_store(crds: LocalCluster, namespace: str) -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto's) on loopback, a bucket, and the credentials Secret pods use."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    creds = {
        "AWS_ACCESS_KEY_ID": "thrifty",
        "AWS_SECRET_ACCESS_KEY": "thrifty-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    client = boto3.client(
        "s3",
        endpoint_url=creds["AWS_ENDPOINT_URL"],
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="thrifty")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "thrifty-artifacts-s3", "namespace": namespace},
        "stringData": creds,
    }
    crds.kubectl("apply", "-f", "-", input_text=json.dumps(secret))
    yield {"endpoint": creds["AWS_ENDPOINT_URL"], "client": client}  # type: ignore[misc]
    server.stop()


@pytest.mark.triton
def test_s3_artifact_store_carries_variants_from_conversion_to_triton(
    crds: LocalCluster,
    namespace: str,
    kubelet: LocalKubelet,
    s3_store: dict[str, Any],
    tmp_path: pathlib.Path,
) -> None:
    import tritonclient.http as httpclient

    module = _mlp()
    model = _save_torchscript(module, tmp_path / "mlp.pt")
    manifest = _manifest("mlp-s3", model)
    manifest["spec"]["optimization"]["variants"] = ["onnx-fp32"]
    manifest["spec"]["serving"]["pools"] = ["cpu-c7i"]
    settings = {
        **SETTINGS,
        "artifact_store": "s3",
        "artifact_s3_uri": "s3://thrifty/artifacts",
        "artifact_s3_secret": "thrifty-artifacts-s3",
    }
    log = tmp_path / "operator.log"
    with running_operator(crds, namespace, log, **settings):
        apply_manifest(crds, namespace, manifest)
        om = wait_for("Ready=True", lambda: _ready_status(crds, namespace, "mlp-s3"), timeout=240, log=log)
        ip = wait_for("a ready Triton pod", lambda: _triton_ip(crds, namespace), timeout=60, log=log)
    digest = om["status"]["artifacts"]["sourceDigest"]
    assert om["status"]["artifacts"]["uri"] == f"s3://thrifty/artifacts/{digest}"
    listed = s3_store["client"].list_objects_v2(
        Bucket="thrifty", Prefix=f"artifacts/{digest}/model_repository/"
    )
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert f"artifacts/{digest}/model_repository/onnx-fp32-py/config.pbtxt" in keys
    assert get_json(crds, "pvc", "-n", namespace)["items"] == [], "the S3 store needs no volume claim"
    x = np.random.default_rng(3).standard_normal((2, FEATURES)).astype(np.float32)
    import torch

    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    client = httpclient.InferenceServerClient(url=f"{ip}:8000")
    try:
        request = httpclient.InferInput("x", list(x.shape), "FP32")
        request.set_data_from_numpy(x)
        served = client.infer("onnx-fp32-py", [request]).as_numpy("logits")
    finally:
        client.close()
    assert served is not None
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=1e-3)
