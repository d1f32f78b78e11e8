"""Uniform callables over PyTorch, ONNX Runtime and OpenVINO: a feed dict in, a list of outputs out."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .examples import Array

Runner = Callable[[dict[str, Array]], list[Array]]


def threads() -> int:
    """Threads each runtime gets: every core of this machine, the same for all so comparisons hold."""
    return max(1, len(os.sched_getaffinity(0)))


def torch_runner(module: Any, names: Sequence[str]) -> Runner:
    """Run a TorchScript module or an ExportedProgram eagerly in FP32, inputs passed positionally."""
    import torch

    torch.set_num_threads(threads())
    call = module.module() if isinstance(module, torch.export.ExportedProgram) else module

    def run(feed: dict[str, Array]) -> list[Array]:
        with torch.inference_mode():
            out = call(*(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names))
        return [t.detach().float().numpy() for t in _flatten(out)]

    return run


def _flatten(out: Any) -> list[Any]:
    if isinstance(out, list | tuple):
        return [t for o in out for t in _flatten(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flatten(o)]
    return [out]


def ort_session(path: Path, *, optimize: bool = True, gpu: bool = False) -> Any:
    """An ONNX Runtime session; `optimize=False` runs the graph as written (reference use).

    `gpu=True` requires the CUDA provider (onnxruntime-gpu) rather than silently falling back to
    the CPU, which would profile the wrong device.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # No spin-waiting between ops: on a shared node (other pods, other Triton instances) spinning
    # threads steal the cores the work needs; measured 2.7x slower INT8 MiniLM with spinning on.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if gpu:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("ONNX Runtime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        return ort.InferenceSession(str(path), so, providers=["CUDAExecutionProvider"])
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_runner(path: Path, *, optimize: bool = True, gpu: bool = False) -> Runner:
    """Run an ONNX file on ONNX Runtime's CPU (or CUDA) provider."""
    sess = ort_session(path, optimize=optimize, gpu=gpu)
    names = [i.name for i in sess.get_inputs()]

    def run(feed: dict[str, Array]) -> list[Array]:
        return [np.asarray(o) for o in sess.run(None, {n: feed[n] for n in names})]

    return run


def ov_runner(xml: Path, precision: str) -> Runner:
    """Run an OpenVINO IR on CPU at `precision` ("f32" or "bf16").

    The hint is explicit because OpenVINO's CPU plugin silently picks bf16 on AMX/avx512_bf16 CPUs,
    which would turn an "fp32" variant into a bf16 one.
    """
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(xml),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads(),
        },
    )
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]

    def run(feed: dict[str, Array]) -> list[Array]:
        result = request.infer({n: feed[n] for n in names}, share_inputs=True)
        return [np.array(result[o]) for o in compiled.outputs]

    return run


def trt_runner(path: Path) -> Runner:
    """Run a serialized TensorRT plan on the GPU through the name-based tensor API (TensorRT 10+).

    Inputs go to the device as torch CUDA tensors, cast to each engine tensor's type; every call sets
    the input shapes (dynamic batch and sequence axes), binds the buffers with `set_tensor_address`,
    enqueues with `execute_async_v3` on a dedicated stream and copies the outputs back as float32
    or their integer type. Host-device copies count in the latency, as they do for Triton's HTTP and
    gRPC clients.
    """
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise RuntimeError(f"TensorRT could not deserialize {path.name} (built for another GPU or version?)")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    dtypes = {n: torch_dtype(np.dtype(trt.nptype(engine.get_tensor_dtype(n)))) for n in names}
    stream: Any = torch.cuda.Stream()  # type: ignore[no-untyped-call]

    def run(feed: dict[str, Array]) -> list[Array]:
        with torch.cuda.stream(stream):
            bound = []  # keep the device tensors alive until the stream is done with them
            for n in inputs:
                t = torch.from_numpy(np.ascontiguousarray(feed[n])).to("cuda", dtypes[n], non_blocking=True)
                context.set_input_shape(n, tuple(t.shape))
                context.set_tensor_address(n, t.data_ptr())
                bound.append(t)
            results = []
            for n in outputs:
                shape = tuple(context.get_tensor_shape(n))
                if any(d < 0 for d in shape):
                    raise RuntimeError(f"output {n!r} has a data-dependent shape {shape} (not supported)")
                out = torch.empty(shape, dtype=dtypes[n], device="cuda")
                context.set_tensor_address(n, out.data_ptr())
                results.append(out)
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see its log)")
        stream.synchronize()
        return [(o.float() if o.is_floating_point() else o).cpu().numpy() for o in results]

    return run


def torch_dtype(dtype: np.dtype[Any]) -> Any:
    """The torch dtype of a NumPy dtype (TensorRT reports engine tensor types as NumPy types)."""
    import torch

    table = {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float16): torch.float16,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.int8): torch.int8,
        np.dtype(np.uint8): torch.uint8,
        np.dtype(np.bool_): torch.bool,
    }
    if dtype not in table:
        raise TypeError(f"no torch dtype for engine tensor type {dtype}")
    return table[dtype]
