"""The kubelet stand-in against the real API server: Jobs, volumes, a real tritonserver in a Deployment."""

from __future__ import annotations

import json
import os
import pathlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from thrifty_testbed.cluster import LOCAL_KUBELET_LABEL, LocalCluster
from thrifty_testbed.kubelet import HOLD_VALUE, LocalKubelet

pytestmark = pytest.mark.cluster

LABELS = {LOCAL_KUBELET_LABEL: "true"}

MODEL_PY = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", x)]))
        return responses
"""

CONFIG_PBTXT = """
name: "echo"
backend: "python"
max_batch_size: 0
input [{ name: "x", data_type: TYPE_FP32, dims: [ 4 ] }]
output [{ name: "y", data_type: TYPE_FP32, dims: [ 4 ] }]
instance_group [{ kind: KIND_CPU, count: 1 }]
"""


@pytest.fixture
def kubelet(local_cluster: LocalCluster, namespace: str, tmp_path: pathlib.Path) -> Iterator[LocalKubelet]:
    """A harness of its own for this test's namespace, so parallel runs never share pods."""
    with LocalKubelet(local_cluster.kubeconfig, tmp_path / "state", namespace=namespace) as harness:
        yield harness
        # Finish deletions while the harness still plays kubelet; otherwise pods stay Terminating.
        local_cluster.kubectl(
            "delete", "deployments,jobs,pods", "--all", "-n", namespace, "--timeout=30s", check=False
        )


def _apply(cluster: LocalCluster, namespace: str, *manifests: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(manifests))


def _pods(cluster: LocalCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    result = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def _eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _terminated_pod(cluster: LocalCluster, namespace: str, selector: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        pods = _pods(cluster, namespace, selector)
        done = [p for p in pods if p.get("status", {}).get("phase") in ("Succeeded", "Failed")]
        return done[0] if done else None

    pod: dict[str, Any] = _eventually(finished, what=f"a finished pod {selector}")
    return pod


def _job(name: str, code: str, *, args: list[str] | None = None, policy: str = "File") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "thrifty-converters:dev",
                            "command": ["python", "-c", code],
                            "args": args or [],
                            "terminationMessagePolicy": policy,
                        }
                    ],
                },
            },
        },
    }


def _pod(name: str, code: str, claim: str, mount: str, args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {**LABELS, "app": name}},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            "containers": [
                {
                    "name": "main",
                    "image": "python",
                    "command": ["python", "-c", code],
                    "args": args,
                    "volumeMounts": [{"name": "data", "mountPath": mount}],
                }
            ],
        },
    }


def test_kubelet_completes_job_with_termination_message_when_command_exits_zero(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    code = "import os, sys; open(sys.argv[1], 'w').write('converted ' + os.environ['HOSTNAME'])"
    _apply(local_cluster, namespace, _job("convert", code, args=["/dev/termination-log"]))
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/convert", "--timeout=60s")
    pod = _terminated_pod(local_cluster, namespace, "job-name=convert")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert terminated["message"] == f"converted {pod['metadata']['name']}"
    assert pod["status"]["podIP"].startswith("127.0.1.")


def test_kubelet_fails_pod_with_exit_code_and_log_message_when_command_exits_nonzero(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    code = "import sys; print('out of memory while profiling', file=sys.stderr); sys.exit(3)"
    _apply(local_cluster, namespace, _job("profile", code, policy="FallbackToLogsOnError"))
    pod = _terminated_pod(local_cluster, namespace, "job-name=profile")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert terminated["message"] == "out of memory while profiling"
    local_cluster.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/profile", "--timeout=60s")


def test_kubelet_shares_claim_folder_between_pods_when_mount_paths_differ(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet, tmp_path: pathlib.Path
) -> None:
    # A pre-bound PersistentVolume lets the scheduler place the pods; the harness mounts its hostPath.
    volume = f"{namespace}-data"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": volume,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    persistent_volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "hostPath": {"path": str(tmp_path / "volume")},
            "claimRef": {"namespace": namespace, "name": "models"},
        },
    }
    try:
        _apply(local_cluster, namespace, persistent_volume, claim)
        write = (
            "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(); p.write_text('weights')"
        )
        _apply(local_cluster, namespace, _pod("writer", write, "models", "/data", ["/data/onnx/model.onnx"]))
        writer = _terminated_pod(local_cluster, namespace, "app=writer")
        assert writer["status"]["phase"] == "Succeeded"
        read = (
            "import pathlib, sys; pathlib.Path(sys.argv[2]).write_text(pathlib.Path(sys.argv[1]).read_text())"
        )
        args = ["/models/onnx/model.onnx", "/dev/termination-log"]
        _apply(local_cluster, namespace, _pod("reader", read, "models", "/models", args))
        reader = _terminated_pod(local_cluster, namespace, "app=reader")
        assert reader["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "weights"
        assert (tmp_path / "volume" / "onnx" / "model.onnx").read_text() == "weights"
    finally:
        local_cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)


def _bare_pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {**LABELS, "app": name}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python", **container}],
            **spec,
        },
    }


def test_kubelet_restarts_container_in_same_pod_when_policy_is_on_failure(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    # The emptyDir outlives a container restart, so the second run sees the first run's marker.
    code = "import pathlib, sys; m = pathlib.Path(sys.argv[1]); sys.exit(0 if m.exists() else m.touch() or 1)"
    container = {
        "command": ["python", "-c", code],
        "args": ["/scratch/tried"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    volumes = [{"name": "scratch", "emptyDir": {}}]
    _apply(
        local_cluster, namespace, _bare_pod("retry", container, restartPolicy="OnFailure", volumes=volumes)
    )
    pod = _terminated_pod(local_cluster, namespace, "app=retry")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1


def test_kubelet_runs_init_container_first_when_pod_declares_one(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    fetch = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('fetched')"
    use = "import pathlib, sys; pathlib.Path(sys.argv[2]).write_text(pathlib.Path(sys.argv[1]).read_text())"
    mounts = [{"name": "work", "mountPath": "/work"}]
    init = {"name": "fetch", "image": "python", "command": ["python", "-c", fetch], "args": ["/work/model"]}
    container = {"command": ["python", "-c", use], "args": ["/work/model", "/dev/termination-log"]}
    pod = _bare_pod(
        "staged",
        {**container, "volumeMounts": mounts},
        initContainers=[{**init, "volumeMounts": mounts}],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    _apply(local_cluster, namespace, pod)
    finished = _terminated_pod(local_cluster, namespace, "app=staged")
    assert finished["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert finished["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "fetched"


def test_kubelet_resolves_env_and_config_volume_when_pod_references_them(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    local_cluster.kubectl(
        "create", "configmap", "settings", "-n", namespace, "--from-literal=variant=onnx-int8"
    )
    local_cluster.kubectl(
        "create", "secret", "generic", "creds", "-n", namespace, "--from-literal=token=s3cr3t"
    )
    code = (
        "import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text("
        "' '.join([os.environ['VARIANT'], os.environ['TOKEN'], os.environ['NS'], "
        "pathlib.Path(os.environ['CONFIG'], 'variant').read_text()]))"
    )
    container = {
        "command": ["python", "-c", code],
        "args": ["$(LOG)"],
        "env": [
            {"name": "VARIANT", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "variant"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "CONFIG", "value": "/etc/thrifty"},
            {"name": "LOG", "value": "/dev/termination-log"},
        ],
        "volumeMounts": [{"name": "settings", "mountPath": "/etc/thrifty"}],
    }
    volumes = [{"name": "settings", "configMap": {"name": "settings"}}]
    _apply(local_cluster, namespace, _bare_pod("env", container, volumes=volumes))
    pod = _terminated_pod(local_cluster, namespace, "app=env")
    message = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert message == f"onnx-int8 s3cr3t {namespace} onnx-int8"


def test_kubelet_fails_pod_with_no_entrypoint_when_command_is_empty(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet
) -> None:
    held = _bare_pod("held", {"command": ["python", "-c", "pass"]})
    held["metadata"]["labels"][LOCAL_KUBELET_LABEL] = HOLD_VALUE
    _apply(local_cluster, namespace, held, _bare_pod("bare", {"args": ["--help"]}))
    pod = _terminated_pod(local_cluster, namespace, "app=bare")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "NoEntrypoint"
    # The held pod was bound as early as the other one, yet nothing ran it.
    assert _pods(local_cluster, namespace, "app=held")[0]["status"]["phase"] == "Pending"
    # No kubelet finishes its deletion either.
    local_cluster.kubectl("delete", "pod", "held", "-n", namespace, "--grace-period=0", "--force")


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.triton
def test_kubelet_serves_real_triton_until_pod_is_deleted_when_deployment_runs_tritonserver(
    local_cluster: LocalCluster, namespace: str, kubelet: LocalKubelet, tmp_path: pathlib.Path
) -> None:
    repository = tmp_path / "repository"
    (repository / "echo" / "1").mkdir(parents=True)
    (repository / "echo" / "1" / "model.py").write_text(MODEL_PY)
    (repository / "echo" / "config.pbtxt").write_text(CONFIG_PBTXT)
    container = {
        "name": "triton",
        "image": "nvcr.io/nvidia/tritonserver:25.10-py3",
        "command": ["tritonserver"],
        "args": ["--model-repository=/models", "--exit-timeout-secs=5"],
        "ports": [
            {"name": "http", "containerPort": 8000},
            {"name": "grpc", "containerPort": 8001},
            {"name": "metrics", "containerPort": 8002},
        ],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "echo"}},
            "template": {
                "metadata": {"labels": {**LABELS, "app": "echo"}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [{"name": "models", "hostPath": {"path": str(repository)}}],
                },
            },
        },
    }
    _apply(local_cluster, namespace, deployment)
    local_cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/echo", "--timeout=90s"
    )
    pod = _pods(local_cluster, namespace, "app=echo")[0]
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.0.1.")
    assert _http_status(f"http://{ip}:8000/v2/health/ready") == 200
    assert _http_status(f"http://{ip}:8000/v2/models/echo/ready") == 200
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))

    local_cluster.kubectl("delete", "pod", "-n", namespace, pod["metadata"]["name"], "--timeout=60s")
    assert not _alive(pid)
    assert _http_status(f"http://{ip}:8000/v2/health/ready") == 0
