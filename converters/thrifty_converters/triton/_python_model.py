"""Triton Python-backend model serving an ONNX Runtime or OpenVINO CPU session.

This file is copied verbatim to `<repo>/<model>/1/model.py`; it runs inside Triton's Python backend stub,
where `triton_python_backend_utils` exists, and never in the converter process. It is configured by
config.pbtxt `parameters`: `runtime` ("onnxruntime" or "openvino"), `model_filename` (beside this file),
optional `intra_op_threads` and, for OpenVINO, optional `inference_precision` ("f32", "f16", "bf16").
Requests the dynamic batcher groups are run as one concatenated batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

Array = npt.NDArray[Any]
Runner = Callable[[dict[str, Array]], list[Array]]


def _onnxruntime_runner(path: Path, outputs: list[str], params: dict[str, str]) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(feeds: dict[str, Array]) -> list[Array]:
        return list(session.run(outputs, feeds))

    return run


def _openvino_runner(path: Path, outputs: list[str], params: dict[str, str]) -> Runner:
    import openvino as ov

    properties: dict[str, str | int] = {}
    if params.get("intra_op_threads"):
        properties["INFERENCE_NUM_THREADS"] = int(params["intra_op_threads"])
    if params.get("inference_precision"):
        # On CPUs with bf16 units the CPU plugin otherwise computes an FP32 IR in bf16 (~1e-2 error).
        properties["INFERENCE_PRECISION_HINT"] = params["inference_precision"]
    compiled = ov.Core().compile_model(str(path), "CPU", properties)
    ports = [compiled.output(name) for name in outputs]

    def run(feeds: dict[str, Array]) -> list[Array]:
        result = compiled(feeds)
        return [np.asarray(result[port]) for port in ports]

    return run


_RUNNERS = {"onnxruntime": _onnxruntime_runner, "openvino": _openvino_runner}


class TritonPythonModel:
    """The class the Python backend instantiates once per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params["model_filename"]
        self._inputs = [tensor["name"] for tensor in config["input"]]
        self._outputs = [tensor["name"] for tensor in config["output"]]
        self._batched = int(config.get("max_batch_size", 0)) > 0
        self._run = _RUNNERS[params["runtime"]](path, self._outputs, params)

    def _feeds(self, request: Any) -> dict[str, Array]:
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self._inputs}

    def _response(self, arrays: list[Array]) -> Any:
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(a))
            for name, a in zip(self._outputs, arrays, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = [self._feeds(request) for request in requests]
        # One concatenated run amortises the call overhead; only possible when non-batch shapes agree.
        shapes = {tuple((name, a.shape[1:]) for name, a in f.items()) for f in feeds}
        if self._batched and len(requests) > 1 and len(shapes) == 1:
            try:
                merged = {name: np.concatenate([f[name] for f in feeds]) for name in self._inputs}
                outputs = self._run(merged)
            except Exception as e:  # every request must get an answer
                return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))) for _ in requests]
            bounds = np.cumsum([len(f[self._inputs[0]]) for f in feeds])[:-1]
            split = [np.split(a, bounds) for a in outputs]
            return [self._response([parts[i] for parts in split]) for i in range(len(requests))]
        responses = []
        for f in feeds:
            try:
                responses.append(self._response(self._run(f)))
            except Exception as e:  # one bad request must not fail the others
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
        return responses
