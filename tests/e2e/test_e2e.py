"""The S3-compatible artifact store end to end on the real node: the operator (a local process here, with
the store's settings) creates conversion and profiling Jobs whose `thrifty-store` pushes variants to a real
S3 server (moto's, on the bridge's gateway address so that pods reach it), and Triton's init container pulls
the model repository back. tests/e2e/test_real_node.py covers the chart's operator and the volume store.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from operator_runner import apply_manifest, condition, get_json, model_manifest, running_operator, wait_for

from thrifty_operator import names
from thrifty_testbed import deploy, node
from thrifty_testbed.cluster import REPO_ROOT, LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
FEATURES, CLASSES = 16, 4


def _settings() -> dict[str, str]:
    """The operator's settings for pods on the real node: its pools, the local images, requests that fit."""
    return {
        "triton_backend_mode": "python",
        "status_interval_seconds": "2",
        "pool_catalogue": str(REPO_ROOT / "config" / "pools.local.yaml"),
        "converter_image": deploy.image_refs()["converter"],
        "converter_cpu_request": "500m",
        "converter_memory_request": "2Gi",
    }


@pytest.fixture
def model_dir(namespace: str) -> Iterator[pathlib.Path]:
    """A folder pods can read through a hostPath volume (pytest's tmp_path is private to root)."""
    folder = REPO_ROOT / ".testbed" / "e2e-models" / namespace
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        path.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


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
            "tritonImage": deploy.image_refs()["triton-cpu"],
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
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


@pytest.fixture
def s3_store(crds: LocalCluster, namespace: str) -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto's) on loopback, a bucket, and the credentials Secret pods use."""
    import boto3
    from moto.server import ThreadedMotoServer

    # On the gateway address: pods reach this machine there (and only there).
    server = ThreadedMotoServer(ip_address=node.GATEWAY, port=0, verbose=False)
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


def test_s3_artifact_store_carries_variants_from_conversion_to_triton(
    crds: LocalCluster,
    namespace: str,
    s3_store: dict[str, Any],
    model_dir: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    import tritonclient.http as httpclient

    module = _mlp()
    model = _save_torchscript(module, model_dir / "mlp.pt")
    model.chmod(0o644)
    manifest = _manifest("mlp-s3", model)
    manifest["spec"]["optimization"]["variants"] = ["onnx-fp32"]
    manifest["spec"]["serving"]["pools"] = ["cpu-c7i"]
    settings = {
        **_settings(),
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
