"""S2: ONNX Runtime graph optimization, with transformer fusions where the graph has attention.

The transformer optimizer's Python fusions (Attention, SkipLayerNorm, BiasGelu...) stay portable across
CPUs; for other graphs only BASIC offline optimization runs (constant folding, Conv+BN), because
EXTENDED/ALL results are tied to the machine and provider that produced them.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import errors, runtimes
from . import base

NAME = "onnx-fp32"


def looks_like_transformer(path: Path) -> bool:
    """Softmax fed by MatMul and a layer norm (fused or decomposed) suggest self-attention."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    return {"Softmax", "MatMul"} <= ops and bool(ops & {"LayerNormalization", "ReduceMean"})


def run(src: Path, out: Path) -> base.StageResult:
    """Write the optimized FP32 model to `out`."""
    if (done := base.existing(NAME, out)) is not None:
        return done
    started = time.monotonic()
    try:
        if looks_like_transformer(src):
            fused = _transformer(src, out)
            return base.ok(NAME, out, time.monotonic() - started, optimizer="transformer", fusions=fused)
        _basic(src, out)
        return base.ok(NAME, out, time.monotonic() - started, optimizer="ort-basic")
    except Exception as e:  # ORT's optimizer raises bare Exceptions and ORT errors
        errors.raise_if_storage(e)
        out.unlink(missing_ok=True)
        return base.failed(NAME, f"{type(e).__name__}: {e}", time.monotonic() - started)


def _transformer(src: Path, out: Path) -> str:
    from onnxruntime.transformers import optimizer

    # num_heads/hidden_size 0: detected from the graph. opt_level 0: Python fusions only, no
    # ORT offline pass, so the file stays valid for any CPU.
    model = optimizer.optimize_model(
        str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0, use_gpu=False
    )
    model.save_model_to_file(str(out))
    stats = model.get_fused_operator_statistics()
    return ",".join(f"{k}={v}" for k, v in sorted(stats.items()) if v) or "none"


def _basic(src: Path, out: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(out)
    so.intra_op_num_threads = runtimes.threads()
    so.log_severity_level = 3
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
