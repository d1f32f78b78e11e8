"""`make bench-operator`: how fast one operator deploys many OptimizedModels, and what it costs.

A dedicated local cluster (KWOK plays every pod, so Triton pods are simulated) gets one model converted and
profiled first ("already converted"); then N models with the same source are created at once. They share the
converted artifacts, so each only needs selection and a Triton Deployment. Measured:

* time until every model is Deployed, and per object (Deployed transition minus creation) p50/p99;
* the operator's peak resident memory (VmHWM of the `kopf run` process);
* API requests per object, from the API server's audit log of the operator's ServiceAccount.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import pathlib
import statistics
import subprocess
import time
from datetime import datetime
from typing import Any

import kubernetes
import yaml
from kubernetes.client import CustomObjectsApi

from . import chart, cluster, nodes, operator_process

ROOT = cluster.REPO_ROOT
NAMESPACE = "thrifty-bench"


def _kubectl_json(local: cluster.LocalCluster, *args: str) -> Any:
    return json.loads(local.kubectl("get", *args, "-o", "json").stdout)


def _model(name: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "minilm.yaml").read_text())
    manifest["metadata"] = {"name": name, "namespace": NAMESPACE}
    # Tiny requests: the benchmark measures the operator, not bin-packing.
    manifest["spec"]["serving"]["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    manifest["spec"]["serving"]["pools"] = ["cpu-c7i"]
    return manifest


def _token_kubeconfig(local: cluster.LocalCluster, out: pathlib.Path) -> pathlib.Path:
    rbac = chart.operator_rbac_manifests(NAMESPACE, "bench")
    local.kubectl("apply", "-f", "-", input_text=chart.dump(rbac))
    account = next(m for m in rbac if m["kind"] == "ServiceAccount")["metadata"]["name"]
    token = local.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=2h").stdout.strip()
    config = yaml.safe_load(local.kubeconfig.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    path = out / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _extra_nodes(local: cluster.LocalCluster, count: int) -> None:
    """Room for the simulated Triton pods: more CPU-pool nodes with a large pod capacity."""
    pool = nodes.NodePool(
        name="cpu-c7i",
        instance_type=nodes.CPU_POOL.instance_type,
        count=count,
        allocatable={**nodes.CPU_POOL.allocatable, "pods": "250"},
    )
    manifests = [nodes.node_manifest(pool, i) for i in range(10, 10 + count)]
    for m in manifests:
        m["metadata"]["name"] = m["metadata"]["name"].replace("cpu-c7i-", "cpu-c7i-bench-")
        m["spec"]["providerID"] = "kwok://" + m["metadata"]["name"]
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(manifests))


def _seed(local: cluster.LocalCluster) -> None:
    """Convert and profile once, as a finished converter would have (its summaries kept on the Jobs)."""
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(_model("seed")))
    summary = {
        "v": 1,
        "variants": [{"name": "onnx-int8-dynamic", "status": "ok", "p99_ms": 12, "throughput_per_s": 90}],
    }
    deadline = time.monotonic() + 120
    done: set[str] = set()
    while time.monotonic() < deadline:
        jobs = _kubectl_json(local, "jobs", "-n", NAMESPACE)["items"]
        for job in jobs:
            name = job["metadata"]["name"]
            if name not in done:
                body = {"metadata": {"annotations": {"thrifty.dev/summary": json.dumps(summary)}}}
                local.kubectl("patch", "job", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(body))
                done.add(name)
        om = _kubectl_json(local, "om", "seed", "-n", NAMESPACE)
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in om.get("status", {}).get("conditions", [])
        ):
            return
        time.sleep(0.5)
    raise SystemExit("bench-operator: the seed model never became Ready")


def _create_all(local: cluster.LocalCluster, manifests: list[dict[str, Any]]) -> None:
    """One POST per object from a few threads, as a GitOps tool syncing a folder would."""
    client = kubernetes.config.new_client_from_config(str(local.kubeconfig))  # type: ignore[no-untyped-call]
    api = CustomObjectsApi(client)

    def create(manifest: dict[str, Any]) -> None:
        api.create_namespaced_custom_object("thrifty.dev", "v1alpha1", NAMESPACE, "optimizedmodels", manifest)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, manifests))


def _rss_kib(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _audit_events(log: pathlib.Path, since: float, until: float = float("inf")) -> list[dict[str, Any]]:
    """The operator's completed requests between `since` and `until` (the audit log keeps only
    ServiceAccounts' traffic)."""
    events = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        stamp = datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()
        if event.get("stage") == "ResponseComplete" and since <= stamp < until:
            events.append(event)
    return events


def _audit_requests(log: pathlib.Path, since: float) -> int:
    return len(_audit_events(log, since))


def _by_call(events: list[dict[str, Any]]) -> dict[str, int]:
    """Requests per `verb resource` (watches included), most first."""
    calls: dict[str, int] = {}
    for event in events:
        key = f"{event.get('verb')} {(event.get('objectRef') or {}).get('resource', '?')}"
        calls[key] = calls.get(key, 0) + 1
    return dict(sorted(calls.items(), key=lambda kv: -kv[1]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    count: int, out: pathlib.Path, timeout: float, namespace_budget: str | None = None, steady: float = 0.0
) -> dict[str, Any]:
    """Run the benchmark on a dedicated cluster; return the figures."""
    out.mkdir(parents=True, exist_ok=True)
    # KWOK nodes only: one machine holds one real node, and the benchmark measures the operator, not pods.
    local = cluster.LocalCluster(ROOT / ".testbed" / "bench-cluster", node=False)
    local.stop()
    print("starting a dedicated local cluster ...", flush=True)
    local.start()
    try:
        return _measure(local, count, out, timeout, namespace_budget, steady)
    finally:
        local.stop()


def _measure(
    local: cluster.LocalCluster,
    count: int,
    out: pathlib.Path,
    timeout: float,
    namespace_budget: str | None,
    steady: float,
) -> dict[str, Any]:
    local.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    local.kubectl("wait", "--for=condition=Established", "crd/optimizedmodels.thrifty.dev", "--timeout=60s")
    local.kubectl("create", "namespace", NAMESPACE)
    if namespace_budget is not None:
        # One budget shared by every model of the namespace: each model's share follows the demand.
        annotation = f"thrifty.dev/budget-per-hour={namespace_budget}"
        local.kubectl("annotate", "namespace", NAMESPACE, annotation)
    _extra_nodes(local, 4)
    kubeconfig = _token_kubeconfig(local, out)
    with operator_process.running(
        kubeconfig, NAMESPACE, out / "operator.log", {"status_interval_seconds": "30"}
    ) as operator:
        result = _drive(local, count, operator, timeout)
        if steady > 0:
            result |= _steady(local, operator, steady)
        result["namespace_budget_per_hour"] = namespace_budget
        return result


def _steady(local: cluster.LocalCluster, operator: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    """Requests per minute once every model is served: the timer passes alone (load, budgets, scaling)."""
    print(f"measuring {seconds:.0f} s of steady state ...", flush=True)
    start = time.time()
    time.sleep(seconds)
    time.sleep(2)  # the audit log's last entries
    events = _audit_events(local.audit_log, start, start + seconds)
    posted: dict[str, int] = {}
    for event in _kubectl_json(local, "events", "-n", NAMESPACE)["items"]:
        stamp = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"]["creationTimestamp"]
        if datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() >= start:
            posted[event["reason"]] = posted.get(event["reason"], 0) + int(event.get("count") or 1)
    return {
        "steady_events_by_reason": dict(sorted(posted.items(), key=lambda kv: -kv[1])),
        "steady_seconds": seconds,
        "steady_api_requests_per_minute": round(len(events) * 60 / seconds, 1),
        "steady_requests_by_call_per_minute": {
            k: round(v * 60 / seconds, 1) for k, v in _by_call(events).items()
        },
        "operator_rss_mb_after_steady": round(_rss_kib(operator.pid, "VmRSS") / 1024, 1),
    }


def _drive(
    local: cluster.LocalCluster, count: int, operator: subprocess.Popen[bytes], timeout: float
) -> dict[str, Any]:
    print("seeding one converted model ...", flush=True)
    _seed(local)
    names = [f"m{i:04d}" for i in range(count)]
    started = time.time()
    print(f"creating {count} OptimizedModels ...", flush=True)
    _create_all(local, [_model(n) for n in names])
    deployed: dict[str, float] = {}
    peak_rss = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(deployed) < count:
        peak_rss = max(peak_rss, _rss_kib(operator.pid, "VmRSS"))
        for om in _kubectl_json(local, "om", "-n", NAMESPACE)["items"]:
            name = om["metadata"]["name"]
            if name == "seed" or name in deployed:
                continue
            for cond in om.get("status", {}).get("conditions", []):
                if cond["type"] == "Deployed" and cond["status"] == "True":
                    created = datetime.fromisoformat(
                        om["metadata"]["creationTimestamp"].replace("Z", "+00:00")
                    )
                    moved = datetime.fromisoformat(cond["lastTransitionTime"].replace("Z", "+00:00"))
                    deployed[name] = (moved - created).total_seconds()
        print(f"  {len(deployed)}/{count} Deployed after {time.time() - started:.1f} s", flush=True)
        time.sleep(2.0)
    all_deployed = time.time() - started
    peak_rss = max(peak_rss, _rss_kib(operator.pid, "VmHWM"))
    time.sleep(2)
    requests = _audit_requests(local.audit_log, started)
    latencies = list(deployed.values())
    result: dict[str, Any] = {
        "objects": count,
        "deployed": len(deployed),
        "all_deployed_seconds": round(all_deployed, 1) if len(deployed) == count else None,
        "per_object_p50_seconds": _percentile(latencies, 0.5) if latencies else None,
        "per_object_p99_seconds": _percentile(latencies, 0.99) if latencies else None,
        "per_object_mean_seconds": round(statistics.fmean(latencies), 2) if latencies else None,
        "operator_peak_rss_mb": round(peak_rss / 1024, 1),
        "api_requests_per_object": round(requests / count, 1),
        "targets": {"all_deployed_within_60s": None, "peak_rss_at_most_250mb": None},
    }
    result["targets"] = {
        "all_deployed_within_60s": result["all_deployed_seconds"] is not None
        and result["all_deployed_seconds"] <= 60,
        "peak_rss_at_most_250mb": result["operator_peak_rss_mb"] <= 250,
    }
    return result


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / ".bench" / "operator")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--namespace-budget", help="annotate the namespace with this budget per hour, shared by every model"
    )
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=0.0,
        help="then count the API requests of this long a steady state",
    )
    args = parser.parse_args()
    result = run(args.count, args.out, args.timeout, args.namespace_budget, args.steady_seconds)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    rows = [
        ("OptimizedModels", result["objects"]),
        ("Deployed", result["deployed"]),
        ("time until all Deployed (s)", result["all_deployed_seconds"]),
        ("per object p50 (s)", result["per_object_p50_seconds"]),
        ("per object p99 (s)", result["per_object_p99_seconds"]),
        ("operator peak RSS (MB)", result["operator_peak_rss_mb"]),
        ("API requests per object", result["api_requests_per_object"]),
    ]
    if "steady_api_requests_per_minute" in result:
        rows.append(("steady-state API requests per minute", result["steady_api_requests_per_minute"]))
        rows += [
            (f"  {call} per minute", rate)
            for call, rate in result["steady_requests_by_call_per_minute"].items()
        ]
    print("\n| metric | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    for target, met in result["targets"].items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
