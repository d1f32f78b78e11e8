"""Run the real operator (`kopf run`) as a subprocess against the local cluster, and wait on what it does."""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from thrifty_operator import names
from thrifty_testbed import operator_process
from thrifty_testbed.cluster import LocalCluster

ROOT = pathlib.Path(__file__).resolve().parents[2]


@contextmanager
def running_operator(
    cluster: LocalCluster,
    namespace: str,
    log: pathlib.Path,
    kubeconfig: pathlib.Path | None = None,
    **settings: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator watching `namespace`, with THRIFTY_* settings (1 s status interval unless given)."""
    merged = {"status_interval_seconds": "1", **settings}
    with operator_process.running(
        kubeconfig or cluster.kubeconfig, namespace, log, merged, verbose=True
    ) as proc:
        yield proc


def get_json(cluster: LocalCluster, *args: str) -> Any:
    """`kubectl get ... -o json`, parsed; None when the object does not exist."""
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 120.0, log: pathlib.Path | None = None
) -> Any:
    """Poll `check` until it returns something truthy; fail with the operator log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    tail = ""
    if log and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def condition(om: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """One status condition of an OptimizedModel."""
    for cond in ((om or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return None


def model_manifest(name: str = "minilm", **spec_changes: Any) -> dict[str, Any]:
    manifest = yaml.safe_load((ROOT / "examples" / "minilm.yaml").read_text())
    manifest["metadata"]["name"] = name
    manifest["metadata"]["annotations"] = {}
    for path, value in spec_changes.items():
        node = manifest["spec"]
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return manifest  # type: ignore[no-any-return]


def apply_manifest(cluster: LocalCluster, namespace: str, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(manifest))


def jobs_of(cluster: LocalCluster, namespace: str, component: str) -> list[dict[str, Any]]:
    found = get_json(cluster, "jobs", "-n", namespace, "-l", f"{names.LABEL_COMPONENT}={component}")
    return list((found or {}).get("items", []))


def report_job(cluster: LocalCluster, namespace: str, job: dict[str, Any], summary: dict[str, Any]) -> None:
    """What a finished Job leaves behind: its summary, kept on the Job."""
    body = {"metadata": {"annotations": {names.ANNOTATION_SUMMARY: json.dumps({"v": 1, **summary})}}}
    cluster.kubectl(
        "patch", "job", job["metadata"]["name"], "-n", namespace, "--type=merge", "-p", json.dumps(body)
    )


def ok_variant(name: str, p99: float, tput: float) -> dict[str, Any]:
    return {
        "name": name,
        "format": "onnx",
        "precision": "int8",
        "status": "ok",
        "p99_ms": p99,
        "throughput_per_s": tput,
    }


CPU_PROFILE = {"variants": [ok_variant("onnx-fp32", 30, 40), ok_variant("onnx-int8-dynamic", 20, 60)]}
GPU_SKIPPED = {"variants": [{"name": "tensorrt-fp16", "status": "skipped: no GPU"}]}
GPU_FAST = {"variants": [ok_variant("tensorrt-fp16", 2, 3000)]}


def profile_all(
    cluster: LocalCluster, namespace: str, cpu: dict[str, Any], gpu: dict[str, Any], log: pathlib.Path
) -> None:
    converts = wait_for("a conversion Job", lambda: jobs_of(cluster, namespace, "convert"), log=log)
    report_job(cluster, namespace, converts[0], {"variants": []})
    profiles = wait_for(
        "two profiling Jobs", lambda: len(jobs_of(cluster, namespace, "profile")) == 2, log=log
    )
    assert profiles
    for job in jobs_of(cluster, namespace, "profile"):
        pool = job["metadata"]["labels"][names.LABEL_POOL]
        report_job(cluster, namespace, job, gpu if pool == "gpu-l4" else cpu)


def ready_model(cluster: LocalCluster, namespace: str, name: str = "minilm") -> dict[str, Any] | None:
    om = get_json(cluster, "om", name, "-n", namespace)
    cond = condition(om, "Ready")
    return om if cond and cond["status"] == "True" else None


class TritonLoad:
    """Bounded HTTP load, about `rate` requests/s of one `features`-wide float32 row, on one Triton endpoint
    from a background thread; it stops on exit or after `seconds`, whichever comes first."""

    def __init__(self, url: str, model: str, rate: float, features: int, seconds: float = 300.0) -> None:
        import numpy as np
        import tritonclient.http as http

        self._client = http.InferenceServerClient(url=url, concurrency=4)
        x = np.ones((1, features), dtype=np.float32)
        self._input = http.InferInput("x", list(x.shape), "FP32")
        self._input.set_data_from_numpy(x)
        self._model, self._period, self._seconds = model, 1.0 / rate, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        deadline = time.monotonic() + self._seconds  # never outlives the test by much
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            self._client.infer(self._model, [self._input])
            self.sent += 1
            self._stop.wait(max(0.0, self._period - (time.monotonic() - start)))

    def __enter__(self) -> TritonLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()
