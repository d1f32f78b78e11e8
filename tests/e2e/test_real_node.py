"""Thrifty as users run it, on the local cluster's real node.

The chart's operator runs in a pod (images from `make images`, in-cluster config, the chart's RBAC); its
conversion and profiling Jobs and its Triton Deployment run in containers in a namespace that enforces the
`restricted` Pod Security profile; models come from a PersistentVolume. The GPU pool stays simulated by KWOK.
"""

from __future__ import annotations

import json
import time
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import yaml
from operator_runner import condition, get_json, wait_for

from thrifty_api import optimized_model as models
from thrifty_operator import names
from thrifty_testbed import demo, deploy, node
from thrifty_testbed.cluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
NAMESPACE = demo.E2E_NAMESPACE
RELEASE, RELEASE_NAMESPACE = demo.RELEASE, demo.RELEASE_NAMESPACE
OPERATOR = "app.kubernetes.io/instance=thrifty,app.kubernetes.io/component=operator"
FEATURES, CLASSES = 16, 4


@pytest.fixture(scope="module")
def operator_pod(local_cluster: LocalCluster) -> str:
    """The chart's operator on the real node, watching the demo's and this module's namespaces."""
    deploy.ensure_namespace(local_cluster, NAMESPACE)
    watched = "{" + ",".join(demo.WATCHED) + "}"
    return deploy.install_operator(
        local_cluster,
        release=RELEASE,
        namespace=RELEASE_NAMESPACE,
        set_values={"watchNamespaces": watched, "statusIntervalSeconds": "1"},
    )


@pytest.fixture(scope="module")
def models_folder(
    local_cluster: LocalCluster, operator_pod: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The host folder of the namespace's `models` claim, holding a small MLP and a corrupt file."""
    folder = deploy.claim_folder(local_cluster, NAMESPACE, "models")
    work = tmp_path_factory.mktemp("models")
    deploy.upload(_save_torchscript(_mlp(), work / "mlp.pt"), folder, "mlp/model.pt")
    corrupt = work / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a TorchScript archive" * 40)
    deploy.upload(corrupt, folder, "corrupt/model.pt")
    return folder


@pytest.fixture
def model_name(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A model name for one test; the model (and with it its children) is deleted afterwards."""
    name = request.node.name.removeprefix("test_").replace("_", "-")[:30].rstrip("-")
    yield name
    local_cluster.kubectl(
        "delete", "om", name, "-n", NAMESPACE, "--ignore-not-found", "--timeout=60s", check=False
    )


def _mlp() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES)
    ).eval()


def _save_torchscript(module: Any, path: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, still supported as input
        torch.jit.save(torch.jit.trace(module, torch.zeros(2, FEATURES)), str(path))
    return path


def _manifest(name: str, source: str) -> dict[str, Any]:
    return {
        "apiVersion": "thrifty.dev/v1alpha1",
        "kind": "OptimizedModel",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "source": {"uri": f"pvc://models/{source}/model.pt", "format": "TorchScript"},
            "signature": {
                "inputs": [{"name": "x", "dtype": "float32", "shape": [FEATURES]}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": [CLASSES]}],
            },
            "optimization": {"variants": ["onnx-fp32"], "latencyTargetMs": 50, "maxBatchSize": 4},
            "serving": {
                "pools": ["cpu-c7i", "gpu-l4"],
                "tritonImage": deploy.image_refs()["triton-cpu"],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                "minReplicas": 1,
                "maxReplicas": 1,
            },
        },
    }


def _apply(cluster: LocalCluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))


def _om(cluster: LocalCluster, name: str) -> Any:
    return get_json(cluster, "om", name, "-n", NAMESPACE)


def _ready(cluster: LocalCluster, name: str) -> Any:
    om = _om(cluster, name)
    ready = condition(om, "Ready")
    if ready and ready["reason"] in ("ConversionFailed", "NoFeasibleVariant", "InvalidSpec"):
        raise AssertionError(f"{name} will not become Ready: {ready}")
    return om if ready and ready["status"] == "True" else None


def _pods(cluster: LocalCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list((get_json(cluster, "pods", "-n", namespace, "-l", selector) or {}).get("items", []))


def _selector(selector: dict[str, Any]) -> str:
    """A LabelSelector as kubectl's `-l` string (matchLabels and In expressions)."""
    terms = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        terms.append(f"{expr['key']} in ({','.join(expr['values'])})")
    return ",".join(terms)


def _restarts(pods: list[dict[str, Any]]) -> int:
    return sum(s.get("restartCount", 0) for p in pods for s in p["status"].get("containerStatuses", []))


def _ready_operator(cluster: LocalCluster, other_than: str) -> str | None:
    for pod in _pods(cluster, RELEASE_NAMESPACE, OPERATOR):
        conditions = pod["status"].get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if ready and pod["metadata"]["name"] != other_than and not pod["metadata"].get("deletionTimestamp"):
            return str(pod["metadata"]["name"])
    return None


def _operator_log(cluster: LocalCluster) -> str:
    return deploy.describe_pods(cluster, RELEASE_NAMESPACE, OPERATOR)


def test_operator_runs_in_a_pod_on_the_real_node_as_the_chart_says(
    local_cluster: LocalCluster, operator_pod: str
) -> None:
    pod = get_json(local_cluster, "pod", operator_pod, "-n", RELEASE_NAMESPACE)
    assert pod["spec"]["nodeName"] == node.NAME
    assert pod["status"]["podIP"].startswith("10.244.0.")
    (container,) = pod["status"]["containerStatuses"]
    assert container["ready"] and container["image"] == deploy.image_refs()["operator"]
    # The restricted profile is enforced where the operator runs, and its pod was admitted.
    labels = get_json(local_cluster, "namespace", RELEASE_NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_pod_rbac_is_exactly_the_charts(local_cluster: LocalCluster, operator_pod: str) -> None:
    """From inside the operator's pod, with its own token: what the chart grants works, the rest is 403."""
    script = (
        "import json,ssl,sys,urllib.request as u,urllib.error as e\n"
        "d='/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "t=open(d+'token').read();c=ssl.create_default_context(cafile=d+'ca.crt')\n"
        "def get(p):\n"
        "  try:\n"
        "    r=u.Request('https://kubernetes.default.svc'+p,headers={'Authorization':'Bearer '+t})\n"
        "    return u.urlopen(r,context=c,timeout=10).status\n"
        "  except e.HTTPError as x:\n"
        "    return x.code\n"
        "print(json.dumps({p:get(p) for p in sys.argv[1:]}))\n"
    )
    allowed = f"/apis/thrifty.dev/v1alpha1/namespaces/{NAMESPACE}/optimizedmodels"
    paths = [allowed, "/api/v1/namespaces/kube-system/secrets", "/api/v1/nodes/" + node.NAME + "/proxy/pods"]
    result = local_cluster.kubectl(
        "exec", "-n", RELEASE_NAMESPACE, operator_pod, "--", "python3", "-c", script, *paths
    )
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == {paths[0]: 200, paths[1]: 403, paths[2]: 403}, codes


def test_model_converts_in_containers_survives_operator_pod_deletion_and_serves(
    local_cluster: LocalCluster, operator_pod: str, models_folder: Any, model_name: str
) -> None:
    import torch
    import tritonclient.http as httpclient

    _apply(local_cluster, _manifest(model_name, "mlp"))
    component = f"{names.LABEL_COMPONENT}=convert"

    def converting() -> Any:
        pods = _pods(local_cluster, NAMESPACE, component)
        return pods if any(p["status"].get("phase") == "Running" for p in pods) else None

    (running,) = wait_for("the conversion pod running", converting, timeout=120)
    (job,) = get_json(local_cluster, "jobs", "-n", NAMESPACE, "-l", component)["items"]
    # The pod that loads the user's file holds no API credentials, and the operator isolated it first
    # (docs/security.md): the namespace's policy predates the Job and selects the pod.
    mounts = [m["mountPath"] for c in running["spec"]["containers"] for m in c.get("volumeMounts", [])]
    assert not [m for m in mounts if m.startswith("/var/run/secrets")], mounts
    policy = get_json(local_cluster, "networkpolicy", names.CONVERTER_NETWORK_POLICY, "-n", NAMESPACE)
    assert policy["metadata"]["creationTimestamp"] <= job["metadata"]["creationTimestamp"]
    assert (policy["spec"]["policyTypes"], policy["spec"].get("egress", [])) == (["Ingress", "Egress"], [])
    selected = _pods(local_cluster, NAMESPACE, _selector(policy["spec"]["podSelector"]))
    assert running["metadata"]["name"] in [p["metadata"]["name"] for p in selected]
    # The operator pod goes away in the middle of the conversion; the Deployment starts another.
    local_cluster.kubectl("delete", "pod", operator_pod, "-n", RELEASE_NAMESPACE, "--wait=false")
    wait_for(
        "a new operator pod ready",
        lambda: _ready_operator(local_cluster, other_than=operator_pod),
        timeout=120,
    )
    om = wait_for(f"{model_name} Ready", lambda: _ready(local_cluster, model_name), timeout=600)
    jobs = get_json(local_cluster, "jobs", "-n", NAMESPACE, "-l", component)["items"]
    assert [j["metadata"]["uid"] for j in jobs] == [job["metadata"]["uid"]], "no second conversion Job"
    assert jobs[0]["status"].get("succeeded") == 1
    # What the operator wrote is exactly the typed API: every field known, every value in its bounds.
    typed = models.OptimizedModel.model_validate(om)
    assert typed.status is not None and typed.status.cost is not None and typed.status.scaling is not None
    status = om["status"]
    assert status["selected"] == {**status["selected"], "variant": "onnx-fp32", "pool": "cpu-c7i"}
    triton = _pods(local_cluster, NAMESPACE, f"{names.LABEL_COMPONENT}=triton")
    assert [p["spec"]["nodeName"] for p in triton] == [node.NAME]
    # The operator's own metrics say the same, through the chart's metrics Service.
    services = get_json(
        local_cluster, "services", "-n", RELEASE_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}"
    )
    (metrics_service,) = [n for s in services["items"] if (n := s["metadata"]["name"]).endswith("-metrics")]
    with (
        deploy.port_forward(local_cluster, RELEASE_NAMESPACE, metrics_service, 8081) as port,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response,
    ):
        scraped = response.read().decode()
    series = (
        f'thrifty_model_replicas{{name="{model_name}",namespace="{NAMESPACE}",pool="cpu-c7i",state="ready",'
        'variant="onnx-fp32"} 1.0'
    )
    assert series in scraped, [line for line in scraped.splitlines() if model_name in line]
    # The operator pod that saw the conversion finish timed it (the first pod was deleted mid-conversion).
    assert 'thrifty_job_duration_seconds_count{component="convert",outcome="Succeeded"}' in scraped

    x = np.random.default_rng(7).standard_normal((3, FEATURES)).astype(np.float32)
    with torch.no_grad():
        expected = _mlp()(torch.from_numpy(x)).numpy()
    service, served_name = names.service(model_name), status["endpoints"]["modelName"]
    with deploy.port_forward(local_cluster, NAMESPACE, service, 8000) as port:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
        try:
            request = httpclient.InferInput("x", list(x.shape), "FP32")
            request.set_data_from_numpy(x)
            served = client.infer(served_name, [request]).as_numpy("logits")
        finally:
            client.close()
    assert served is not None
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=1e-3)
    # The same Service by its DNS name, from a pod.
    url = f"http://{service}.{NAMESPACE}.svc:8000/v2/models/{served_name}/infer"
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [3, FEATURES], "datatype": "FP32", "data": x.flatten().tolist()}]}
    )
    script = (
        "import sys,urllib.request as u\n"
        "print(u.urlopen(u.Request(sys.argv[1],data=sys.argv[2].encode()),timeout=30).read().decode())\n"
    )
    logs = deploy.run_pod(
        local_cluster,
        NAMESPACE,
        "e2e-client",
        deploy.image_refs()["triton-cpu"],
        ["python3", "-c", script, url, body],
    )
    answer = json.loads(logs.strip().splitlines()[-1])
    from_pod = np.asarray(answer["outputs"][0]["data"], dtype=np.float32).reshape(3, CLASSES)
    np.testing.assert_allclose(from_pod, expected, atol=1e-4, rtol=1e-3)

    # Triton's pod is killed: the Deployment replaces it, and the status and an Event say so.
    (first,) = triton
    local_cluster.kubectl(
        "delete", "pod", first["metadata"]["name"], "-n", NAMESPACE, "--grace-period=0", "--force"
    )
    wait_for(
        "Ready=False ReplicasUnavailable",
        lambda: (
            (c := condition(_om(local_cluster, model_name), "Ready")) and c["reason"] == "ReplicasUnavailable"
        ),
        timeout=60,
    )
    wait_for(f"{model_name} Ready again", lambda: _ready(local_cluster, model_name), timeout=180)
    replaced = _pods(local_cluster, NAMESPACE, f"{names.LABEL_COMPONENT}=triton")
    assert [p["metadata"]["uid"] for p in replaced] != [first["metadata"]["uid"]]
    events = get_json(
        local_cluster, "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={model_name}"
    )
    reasons = [e["reason"] for e in events["items"]]
    assert "ReplicasUnavailable" in reasons and reasons.count("Ready") >= 2, reasons
    assert _restarts(_pods(local_cluster, RELEASE_NAMESPACE, OPERATOR)) == 0, _operator_log(local_cluster)


def test_corrupt_model_fails_its_job_once_with_the_converters_message(
    local_cluster: LocalCluster, operator_pod: str, models_folder: Any, model_name: str
) -> None:
    _apply(local_cluster, _manifest(model_name, "corrupt"))

    def failed() -> Any:
        ready = condition(_om(local_cluster, model_name), "Ready")
        return ready if ready and ready["reason"] == "ConversionFailed" else None

    ready = wait_for("ConversionFailed", failed, timeout=300)
    assert ready["status"] == "False" and "cannot read" in ready["message"], ready
    converted = condition(_om(local_cluster, model_name), "Converted")
    assert converted and converted["status"] == "False" and "cannot read" in converted["message"]
    time.sleep(5)  # several operator passes (1 s apart): nothing is retried
    digest = _om(local_cluster, model_name)["status"]["artifacts"]["sourceDigest"]
    selector = f"{names.LABEL_COMPONENT}=convert,{names.LABEL_DIGEST}={digest}"
    (job,) = get_json(local_cluster, "jobs", "-n", NAMESPACE, "-l", selector)["items"]
    assert job["spec"]["backoffLimit"] == 0 and job["status"].get("failed") == 1
    assert len(_pods(local_cluster, NAMESPACE, selector)) == 1, "one attempt, no retry storm"
    assert not get_json(
        local_cluster,
        "jobs",
        "-n",
        NAMESPACE,
        "-l",
        f"{names.LABEL_COMPONENT}=profile,{names.LABEL_DIGEST}={digest}",
    )["items"]
    assert _restarts(_pods(local_cluster, RELEASE_NAMESPACE, OPERATOR)) == 0, _operator_log(local_cluster)


def test_control_plane_restarts_during_conversion_and_scaling_lose_nothing(
    local_cluster: LocalCluster,
    operator_pod: str,
    models_folder: Any,
    model_name: str,
    tmp_path: Any,
) -> None:
    """kube-apiserver and etcd go down mid-conversion, the API server again mid-rollout: the operator in
    its pod rides through (no restart), one conversion Job, one Deployment, the status valid, Ready."""
    # A source of its own: a fresh digest, so this conversion is not one an earlier test left behind.
    deploy.upload(_save_torchscript(_mlp(), tmp_path / "mlp.pt"), models_folder, "faults/model.pt")
    _apply(local_cluster, _manifest(model_name, "faults"))

    def converting() -> Any:
        digest = (_om(local_cluster, model_name).get("status") or {}).get("artifacts", {}).get("sourceDigest")
        if not digest:
            return None
        selector = f"{names.LABEL_COMPONENT}=convert,{names.LABEL_DIGEST}={digest}"
        jobs = get_json(local_cluster, "jobs", "-n", NAMESPACE, "-l", selector)["items"]
        return jobs if jobs and not jobs[0]["status"].get("succeeded") else None

    (job,) = wait_for("the conversion Job", converting, timeout=120)
    restarts = _restarts(_pods(local_cluster, RELEASE_NAMESPACE, OPERATOR))
    local_cluster.restart("kube-apiserver", down_seconds=5)
    local_cluster.restart("etcd", down_seconds=5)
    om = wait_for(f"{model_name} Ready", lambda: _ready(local_cluster, model_name), timeout=600)
    digest = om["status"]["artifacts"]["sourceDigest"]
    jobs = get_json(local_cluster, "jobs", "-n", NAMESPACE, "-l", f"{names.LABEL_DIGEST}={digest}")["items"]
    convert = [j for j in jobs if j["metadata"]["labels"][names.LABEL_COMPONENT] == "convert"]
    assert [j["metadata"]["uid"] for j in convert] == [job["metadata"]["uid"]], "no second conversion Job"
    models.OptimizedModel.model_validate(om)

    # Scaling: two replicas asked for, and the API server restarts while the operator rolls them out.
    (deployment,) = get_json(
        local_cluster, "deployments", "-n", NAMESPACE, "-l", f"{names.LABEL_MODEL}={model_name}"
    )["items"]
    local_cluster.kubectl(
        "patch",
        "om",
        model_name,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"minReplicas": 2, "maxReplicas": 2}}}),
    )
    local_cluster.restart("kube-apiserver", down_seconds=5)

    def two_ready() -> Any:
        om = _ready(local_cluster, model_name)
        if not om or om["status"]["observedGeneration"] != om["metadata"]["generation"]:
            return None
        return om if om["status"].get("replicas", {}).get("ready") == 2 else None

    om = wait_for(f"{model_name} Ready with 2 replicas", two_ready, timeout=300)
    models.OptimizedModel.model_validate(om)
    after = get_json(
        local_cluster, "deployments", "-n", NAMESPACE, "-l", f"{names.LABEL_MODEL}={model_name}"
    )["items"]
    assert [d["metadata"]["uid"] for d in after] == [deployment["metadata"]["uid"]], "one Deployment, kept"
    assert (
        len(
            _pods(
                local_cluster, NAMESPACE, f"{names.LABEL_COMPONENT}=triton,{names.LABEL_MODEL}={model_name}"
            )
        )
        == 2
    )
    assert _restarts(_pods(local_cluster, RELEASE_NAMESPACE, OPERATOR)) == restarts, _operator_log(
        local_cluster
    )


@pytest.mark.parametrize("target", ["converter", "triton-cpu"])
def test_images_stop_on_sigterm_within_two_seconds(
    local_cluster: LocalCluster, operator_pod: str, target: str
) -> None:
    """PID 1 of each image handles SIGTERM (the operator's is covered by the deletion above)."""
    image = deploy.image_refs()[target]
    command = (
        ["thrifty-store", "run", "--", "python3", "-c", "import time; time.sleep(600)"]
        if target == "converter"
        else ["tritonserver", "--model-repository=/tmp", "--model-control-mode=explicit"]
    )
    name = f"sigterm-{target}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "automountServiceAccountToken": False,
            "securityContext": deploy.POD_SECURITY,
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "command": command,
                    "securityContext": deploy.CONTAINER_SECURITY,
                    "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    _apply(local_cluster, manifest)
    local_cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", NAMESPACE, "--timeout=90s")
    time.sleep(2)  # past start-up: the process is in its main loop
    started = time.monotonic()
    local_cluster.kubectl("delete", "pod", name, "-n", NAMESPACE, "--wait=true", "--timeout=60s")
    took = time.monotonic() - started
    assert took < 5, f"{target} took {took:.1f} s to stop on SIGTERM (grace period 30 s)"
