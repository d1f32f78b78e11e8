"""Thrifty as users run it, on the local cluster's real node: the chart's operator in a pod, images from
`make images`, models on a PersistentVolume, Services reached by port-forward and by DNS from a pod.

Shared by the demo and the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from . import chart, cluster, images

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}
# The restricted Pod Security profile, for pods the testbed starts itself (the model upload, clients).
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


class DeployError(RuntimeError):
    """A step failed; the message says which and where to look."""


def image_refs() -> dict[str, str]:
    """target → local image ref, from what `make images` recorded."""
    record = images.load_record()
    missing = [t for t in images.TARGETS if t not in record]
    if missing:
        raise DeployError(f"no image for {', '.join(missing)}: run `make images`")
    return {t: str(record[t]["ref"]) for t in images.TARGETS}


def _split(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def chart_image_values() -> dict[str, str]:
    """`--set` values pointing the chart at the local images (never pulled: containerd has them)."""
    refs = image_refs()
    values = {"image.pullPolicy": "IfNotPresent"}
    for key, target in (("image", "operator"), ("converter.image", "converter")):
        repository, tag = _split(refs[target])
        values[f"{key}.repository"] = repository
        values[f"{key}.tag"] = tag
    return values


def ensure_namespace(local: cluster.LocalCluster, name: str, labels: Mapping[str, str] = RESTRICTED) -> None:
    """Create `name` (idempotent) with Pod Security `restricted` enforced."""
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))


def install_operator(
    local: cluster.LocalCluster,
    *,
    release: str = "thrifty",
    namespace: str = "thrifty-system",
    set_values: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> str:
    """`helm upgrade --install` the chart with the local values and images; wait until the operator pod
    is Ready on the real node; return the pod's name."""
    ensure_namespace(local, namespace)
    # Images built since the cluster started (make images) reach the node's containerd first.
    local.node.import_images(say=lambda line: None)
    values = chart_image_values() | dict(set_values or {})
    chart.helm(
        "upgrade",
        "--install",
        release,
        str(chart.CHART_DIR),
        "--namespace",
        namespace,
        *chart.value_args([chart.LOCAL_VALUES], values),
        "--take-ownership",
        "--wait=false",
        kubeconfig=local.kubeconfig,
    )
    local.kubectl("wait", "--for=condition=Established", "crd/optimizedmodels.thrifty.dev", "--timeout=60s")
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
    result = local.kubectl(
        "rollout",
        "status",
        "deployment",
        "-n",
        namespace,
        "-l",
        selector,
        f"--timeout={int(timeout)}s",
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(
            f"the operator Deployment did not become ready: {result.stderr.strip()}\n"
            + describe_pods(local, namespace, selector)
        )
    return operator_pod(local, namespace, selector)


def operator_pod(local: cluster.LocalCluster, namespace: str, selector: str) -> str:
    """The running, ready operator pod's name."""
    pods = json.loads(local.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)
    for pod in pods["items"]:
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
        )
        if ready and not pod["metadata"].get("deletionTimestamp"):
            return str(pod["metadata"]["name"])
    raise DeployError(f"no ready operator pod in {namespace}\n" + describe_pods(local, namespace, selector))


def describe_pods(local: cluster.LocalCluster, namespace: str, selector: str | None = None) -> str:
    """Pod phases, container states and the last log lines, for failure messages."""
    args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    result = local.kubectl(*args, check=False)
    if result.returncode != 0:
        return result.stderr
    lines = []
    for pod in json.loads(result.stdout)["items"]:
        name = pod["metadata"]["name"]
        states = [json.dumps(s.get("state")) for s in pod["status"].get("containerStatuses", [])]
        lines.append(f"{name}: {pod['status'].get('phase')} {' '.join(states)}")
        logs = local.kubectl("logs", name, "-n", namespace, "--tail=15", "--all-containers", check=False)
        lines.append(logs.stdout.strip() or logs.stderr.strip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- model files


def claim_folder(local: cluster.LocalCluster, namespace: str, claim: str, size: str = "2Gi") -> pathlib.Path:
    """Create the PersistentVolumeClaim (idempotent), wait until it is bound and return the host folder of
    its hostPath volume, where the testbed can put files that pods then read from `pvc://<claim>/...`."""
    manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = json.loads(local.kubectl("get", "pvc", claim, "-n", namespace, "-o", "json").stdout)
        volume = found["spec"].get("volumeName")
        if found["status"].get("phase") == "Bound" and volume:
            pv = json.loads(local.kubectl("get", "pv", volume, "-o", "json").stdout)
            folder = pathlib.Path(pv["spec"]["hostPath"]["path"])
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        time.sleep(0.5)
    raise DeployError(f"claim {namespace}/{claim} was not bound within 60 s")


def upload(source: pathlib.Path, folder: pathlib.Path, relative: str) -> pathlib.Path:
    """Copy `source` to `folder/relative` (unless the same file is there), readable by the pods' user."""
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        partial.rename(target)
    for path in [target, *target.relative_to(folder).parents]:
        (folder / path).chmod(0o755 if (folder / path).is_dir() else 0o644)
    return target


# ---------------------------------------------------------------------------------------- reaching Services


@contextlib.contextmanager
def port_forward(local: cluster.LocalCluster, namespace: str, service: str, port: int) -> Iterator[int]:
    """`kubectl port-forward svc/<service> :<port>`; yields the local port on 127.0.0.1."""
    argv = [str(local.bin_dir / "kubectl"), f"--kubeconfig={local.kubeconfig}", "port-forward"]
    argv += ["-n", namespace, f"svc/{service}", f":{port}", "--address=127.0.0.1"]
    # The context manager closes the pipe too (an open one warns when collected).
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            found = re.search(r"127\.0\.0\.1:(\d+) ->", line)
            if not found:
                raise DeployError(f"kubectl port-forward svc/{service} failed: {line.strip()}")
            yield int(found.group(1))
        finally:
            proc.terminate()


def run_pod(
    local: cluster.LocalCluster,
    namespace: str,
    name: str,
    image: str,
    command: list[str],
    timeout: float = 120,
) -> str:
    """Run a one-off pod (restricted profile) to completion and return its log; fails on a non-zero exit."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "thrifty-client"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "securityContext": CONTAINER_SECURITY,
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "128Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                }
            ],
        },
    }
    local.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true", check=False)
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    deadline = time.monotonic() + timeout
    phase = "Pending"
    while time.monotonic() < deadline:
        pod = json.loads(local.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
        phase = pod["status"].get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = local.kubectl("logs", name, "-n", namespace, check=False).stdout
    if phase != "Succeeded":
        raise DeployError(f"pod {namespace}/{name} ended {phase}:\n{logs[-2000:]}")
    return logs
