"""`optimize`: export, convert, gate, profile, select and publish, writing report.json.

Stages run in order in one process; each reports ok/skipped/failed and skips work whose artifact an
earlier run left. User-input problems raise `errors.UserInputError` before any heavy work starts.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thrifty_api import report
from thrifty_api import variants as catalogue

from . import (
    artifact,
    checks,
    cpu,
    errors,
    examples,
    fit,
    parity,
    profiling,
    reuse,
    runtimes,
    selection,
    signature,
    source,
)
from .stages import base, export, openvino, optimize, quantize, tensorrt

BASELINE = "baseline"  # key of the reference runner among the profiled ones; no variant has this name

Progress = Callable[[str], None]
# Samples generated from --signature when no --inputs file is given (export + held-aside parity sets).
GENERATED_MIN_SAMPLES = 16


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """Everything `optimize` needs; the CLI builds it from its arguments."""

    model: Path
    out: Path
    inputs: Path | None = None
    signature: signature.Signature | None = None
    calibration: Path | None = None
    eval: Path | None = None
    target: catalogue.Device = "cpu"
    variants: tuple[str, ...] = catalogue.ALL
    latency_budget_ms: float | None = None
    max_batch_size: int = 8
    price_per_hour: float = 1.0
    max_metric_drop: float = parity.MAX_RELATIVE_METRIC_DROP
    profile_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.inputs is None and self.signature is None:
            raise errors.OptionError("give example inputs (--inputs) or the model's signature (--signature)")
        unknown = sorted(set(self.variants) - set(catalogue.ALL))
        if unknown:
            raise errors.OptionError(f"unknown variants {unknown}; choose from {', '.join(catalogue.ALL)}")
        if self.target not in ("cpu", "gpu"):
            raise errors.OptionError(f"--target must be cpu or gpu, not {self.target!r}")
        checks.max_batch_size(self.max_batch_size)
        checks.price_per_hour(self.price_per_hour)
        checks.max_metric_drop(self.max_metric_drop)
        checks.profile_seconds(self.profile_seconds)
        checks.latency_budget_ms(self.latency_budget_ms)


@dataclasses.dataclass(kw_only=True)
class _Inputs:
    samples: examples.Samples
    held_aside: examples.Samples
    calibration: examples.Samples | None
    evaluation: examples.Samples | None
    names: list[str]
    where: dict[str, str]  # set ("inputs", "calibration", "eval") -> where it came from, for messages

    def sets(self) -> list[tuple[str, examples.Samples]]:
        """(where, samples) of every set given."""
        found = [("inputs", self.samples), ("calibration", self.calibration), ("eval", self.evaluation)]
        return [(self.where[k], v) for k, v in found if v is not None]


def prepare_output(out: Path) -> None:
    """Create `out` and prove it is writable before any long work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
        errors.watch_storage(out)
    except OSError as e:
        raise errors.OutputDirError(f"output folder {out} is not writable: {e.strerror or e}") from e


def _load_inputs(opts: Options) -> _Inputs:
    """Read (or generate) the sets; every file-level defect is a user error before the model is opened."""
    where = {"inputs": f"inputs file {opts.inputs}"}
    if opts.inputs is not None:
        ex = examples.load(opts.inputs, "inputs")
    elif opts.signature is not None:
        where["inputs"] = "inputs generated from --signature"
        ex = signature.generate(opts.signature, max(2 * opts.max_batch_size, GENERATED_MIN_SAMPLES))
    else:  # Options.__post_init__ rejects this already
        raise errors.OptionError("give example inputs (--inputs) or the model's signature (--signature)")
    calib = None
    if opts.calibration is not None:
        calib = examples.load(opts.calibration, "calibration")
        examples.require_calibration_size(calib, opts.calibration)
        where["calibration"] = f"calibration file {opts.calibration}"
    ev = None
    if opts.eval is not None:
        ev = examples.load(opts.eval, "eval", with_labels=True)
        where["eval"] = f"eval file {opts.eval}"
    for name, other in (("calibration", calib), ("eval", ev)):
        if other is None:
            continue
        if list(other.arrays) != list(ex.arrays):
            raise errors.InputMismatchError(
                f"{name} arrays {list(other.arrays)} differ from the inputs' arrays {list(ex.arrays)}"
            )
        for k, v in other.arrays.items():
            mine = ex.arrays[k]
            if v.dtype != mine.dtype or v.ndim != mine.ndim:
                like = fit.shape_text((-1, *mine.shape[1:]))
                raise errors.InputMismatchError(
                    f"{where[name]}: array {k!r}: expected {mine.dtype} with {mine.ndim} axes like the "
                    f"inputs' (shape {like}), got {v.dtype} of shape {v.shape}"
                )
    # Export traces the first max-batch samples; parity uses the rest when there are enough.
    b = opts.max_batch_size
    rest = {k: v[b:] for k, v in ex.arrays.items()}
    held = examples.Samples(arrays=rest) if ex.count >= 2 * b else ex
    return _Inputs(
        samples=ex, held_aside=held, calibration=calib, evaluation=ev, names=list(ex.arrays), where=where
    )


def _reference(src: source.SourceModel, inputs: _Inputs, opts: Options) -> runtimes.Runner:
    """The FP32 reference runner, checked against one sample of every set."""
    fit.check_model(src, opts.max_batch_size)
    for where, samples in inputs.sets():
        fit.check_set(where, samples, src, opts.signature)
    if src.kind == "onnx":
        try:
            ref = runtimes.ort_runner(src.path, optimize=False)
        except Exception as e:  # ORT raises Fail, InvalidGraph, NotImplemented... for models it cannot load
            raise errors.ModelFileError(
                f"ONNX Runtime cannot load model {src.path}: {base.one_line(str(e), 200)}"
            ) from e
    else:
        ref = runtimes.torch_runner(src.module, inputs.names)
    for where, samples in inputs.sets():
        feed = samples.batch(0, 1)
        try:
            ref(feed)
        except Exception as e:  # torch/ORT raise RuntimeError, InvalidArgument, TypeError...
            raise errors.InputMismatchError(_does_not_fit(src, where, feed, e)) from e
    return ref


def _does_not_fit(src: source.SourceModel, where: str, feed: dict[str, examples.Array], e: Exception) -> str:
    """What a failed run of the model on one sample says, naming the inputs given."""
    got = ", ".join(
        f"{k!r} {v.dtype.name} of shape {fit.shape_text((-1, *v.shape[1:]))}" for k, v in feed.items()
    )
    weights = _weights_dtype(src)
    for k, v in feed.items():
        if weights is not None and v.dtype.kind == "f" and v.dtype.name != weights:
            return (
                f"{fit.PREFIX}: {where}: input {k!r}: expected {weights} (the dtype of the model's weights), "
                f"got {v.dtype.name}; the model says: {_cause(str(e))}"
            )
    return f"{fit.PREFIX}: {where}: got {got}; the model says: {_cause(str(e))}"


def _weights_dtype(src: source.SourceModel) -> str | None:
    if src.kind == "onnx" or src.module is None:
        return None
    try:
        module = src.module.module() if src.kind == "exported" else src.module
        dtype = next((p.dtype for p in module.parameters() if p.dtype.is_floating_point), None)
    except Exception:  # no parameters() on this callable: nothing to say
        return None
    return str(dtype).removeprefix("torch.") if dtype is not None else None


# "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x15 and 16x32)" at the end of a TorchScript
# interpreter traceback: the cause, after lines of TorchScript source.
_CAUSE = re.compile(r"^\s*(?:[A-Za-z_.]*(?:Error|Exception)): (.+)$")


def _cause(text: str) -> str:
    causes = [m.group(1) for line in text.splitlines() if (m := _CAUSE.match(line))]
    return base.one_line(causes[-1] if causes else text, 200)


def _output_names(src: source.SourceModel, sig: signature.Signature | None, count: int) -> list[str]:
    if sig is not None and len(sig.outputs) == count:
        return [o.name for o in sig.outputs]
    if len(src.output_names) == count:
        return list(src.output_names)
    return ["" for _ in range(count)]


def _require_finite_outputs(
    outputs: list[np.ndarray[Any, Any]], names: list[str], where: str, first_sample: int
) -> None:
    """The reference model's outputs on a set must be finite: no variant can be checked against NaN."""
    for i, out in enumerate(outputs):
        index = examples.first_nonfinite(out)
        if index is None:
            continue
        label = f"output {i}" + (f" {names[i]!r}" if names[i] else "")
        sample = first_sample + index[0] if index else first_sample
        raise errors.InputMismatchError(
            f"the model's {label} is {out[index]} at index {list(index)} on sample {sample} of the {where}; "
            "it must give finite outputs for its example inputs"
        )


def _reference_outputs(
    src: source.SourceModel, ref: runtimes.Runner, inputs: _Inputs, opts: Options
) -> list[np.ndarray[Any, Any]]:
    """The reference outputs on the held-aside samples, after checking every example gives finite outputs."""
    b = opts.max_batch_size
    held = _run_batched(ref, inputs.held_aside, b)
    names = _output_names(src, opts.signature, len(held))
    split = inputs.held_aside is not inputs.samples
    _require_finite_outputs(held, names, inputs.where["inputs"], b if split else 0)
    if split:  # the samples export traces with
        first = examples.Samples(arrays={k: v[:b] for k, v in inputs.samples.arrays.items()})
        _require_finite_outputs(_run_batched(ref, first, b), names, inputs.where["inputs"], 0)
    return held


def _reference_metric(
    src: source.SourceModel, ref: runtimes.Runner, inputs: _Inputs, opts: Options
) -> float | None:
    """Top-1 accuracy of the reference on the eval set (None without one), which must suit the metric."""
    ev = inputs.evaluation
    if ev is None or ev.labels is None:
        return None
    outputs = _run_batched(ref, ev, opts.max_batch_size)
    where = inputs.where["eval"]
    _require_finite_outputs(outputs, _output_names(src, opts.signature, len(outputs)), where, 0)
    scores = outputs[0]
    if scores.ndim != 2:
        raise errors.InputMismatchError(
            f"--eval needs class scores of shape (N, classes) from the model's first output, which has shape "
            f"{fit.shape_text((-1, *scores.shape[1:]))}"
        )
    if ev.labels.size and int(ev.labels.max()) >= scores.shape[1]:
        raise errors.InputMismatchError(
            f"{where}: 'labels' go up to {int(ev.labels.max())} "
            f"but the model scores {scores.shape[1]} classes"
        )
    return parity.accuracy(scores, ev.labels)


def _run_batched(
    runner: runtimes.Runner, samples: examples.Samples, batch: int
) -> list[np.ndarray[Any, Any]]:
    parts: list[list[np.ndarray[Any, Any]]] = []
    for start in range(0, samples.count, batch):
        size = min(batch, samples.count - start)
        parts.append(runner(samples.batch(start, size)))
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def _tensor_specs(onnx_path: Path) -> tuple[list[artifact.TensorSpec], list[artifact.TensorSpec]]:
    from onnx import helper

    def spec(vi: Any) -> artifact.TensorSpec:
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
        dims[:1] = [-1]  # the batch axis is always dynamic
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        return artifact.TensorSpec(name=vi.name, dtype=dtype, shape=tuple(dims))

    ins, outs = export.describe(onnx_path)
    return [spec(i) for i in ins], [spec(o) for o in outs]


def _size(path: Path) -> int:
    if path.suffix == ".xml":
        return path.stat().st_size + path.with_suffix(".bin").stat().st_size
    return path.stat().st_size


def runner_for(name: str, path: Path) -> runtimes.Runner:
    """A runner for a variant's artifact on the device it targets."""
    kind = catalogue.BY_NAME[name]
    fmt, precision, device = kind.format, kind.precision, kind.device
    if fmt == "tensorrt":
        return runtimes.trt_runner(path)
    if fmt == "openvino":
        # fp32 must stay f32. int8 runs its unquantized layers as OpenVINO does by default: bf16
        # where the CPU has it; its gate is cosine/top-1, not elementwise, either way.
        reduced = precision != "fp32" and openvino.cpu_supports_bf16()
        return runtimes.ov_runner(path, "bf16" if reduced else "f32")
    return runtimes.ort_runner(path, gpu=device == "gpu")


class _Converter:
    """Runs the conversion stages in dependency order, recording each result once."""

    def __init__(self, opts: Options, inputs: _Inputs, say: Progress, store: reuse.Outputs) -> None:
        self.opts, self.inputs, self.say, self.store = opts, inputs, say, store
        self.work = opts.out / "work"
        self.work.mkdir(exist_ok=True)
        self.path: dict[str, Path] = {
            n: opts.out / "variants" / n / catalogue.BY_NAME[n].file for n in catalogue.ALL
        }
        for p in self.path.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        self.wanted = set(opts.variants)
        self.results: list[base.StageResult] = []

    def record(self, r: base.StageResult) -> base.StageResult:
        self.results.append(r)
        self.say(f"{r.name}: {r.status}")
        return self.keep(r)

    def keep(self, r: base.StageResult) -> base.StageResult:
        """Record a finished artifact's digests, so a later run with the same inputs may reuse it."""
        if r.status == "ok" and r.output is not None:
            self.store.record(r.output)
            self.store.save()
        return r

    def want(self, name: str) -> bool:
        if name in self.wanted:
            self.say(f"{name}: running")
            return True
        self.record(base.skipped(name, "not requested (--variants)"))
        return False

    def run(self, src: source.SourceModel, ref: runtimes.Runner) -> list[base.StageResult]:
        self.say("export: running")
        sig = self.opts.signature
        exp = self.record(
            export.run(
                src,
                self.inputs.samples,
                ref,
                self.work / "model.onnx",
                self.opts.max_batch_size,
                output_names=[o.name for o in sig.outputs] if sig else None,
            )
        )
        if not exp.usable or exp.output is None:
            for n in self.opts.variants:
                self.record(base.skipped(n, "export failed"))
            return self.results
        self.onnx_cpu(exp.output)
        self.openvino(exp.output)
        self.gpu(exp.output)
        return self.results

    def onnx_cpu(self, onnx_path: Path) -> None:
        fp32_path = onnx_path
        if self.want("onnx-fp32"):
            opt = self.record(optimize.run(onnx_path, self.path["onnx-fp32"]))
            fp32_path = opt.output if opt.usable and opt.output is not None else onnx_path
        if self.want("onnx-int8-dynamic"):
            # Quantize the fused graph: Attention becomes QAttention, which dynamic INT8 speeds up most.
            int8 = quantize.dynamic(fp32_path, self.path["onnx-int8-dynamic"])
            if not int8.usable and fp32_path != onnx_path:
                # Some fusions (BiasGelu after the TorchScript exporter) leave tensors without the type
                # information the quantizer needs; the unfused export quantizes, only slower.
                plain = quantize.dynamic(onnx_path, self.path["onnx-int8-dynamic"])
                if plain.usable:
                    why = base.one_line(int8.status.removeprefix("failed: "), 200)
                    int8 = dataclasses.replace(plain, details={**plain.details, "fused_graph_failed": why})
            self.record(int8)
        if self.want("onnx-int8-static"):
            self.record(
                quantize.static(onnx_path, self.work, self.path["onnx-int8-static"], self.inputs.calibration)
            )

    def openvino(self, onnx_path: Path) -> None:
        names = ("openvino-fp32", "openvino-bf16", "openvino-int8")
        if not self.wanted & set(names):
            for n in names:
                self.want(n)
            return
        self.say("openvino-fp32: running")
        ov32 = self.keep(openvino.fp32(onnx_path, self.path["openvino-fp32"]))
        if self.want("openvino-fp32"):
            self.record(ov32)
        for n in names[1:]:
            if not self.want(n):
                continue
            if not ov32.usable or ov32.output is None:
                self.record(base.skipped(n, "OpenVINO FP32 conversion failed"))
            elif n == "openvino-bf16":
                self.record(openvino.bf16(ov32.output, self.path[n]))
            else:
                transformer = optimize.looks_like_transformer(onnx_path)
                self.record(openvino.int8(ov32.output, self.path[n], self.inputs.calibration, transformer))

    def gpu(self, onnx_path: Path) -> None:
        fp16: base.StageResult | None = None
        if self.want("onnx-fp16"):
            fp16 = self.record(tensorrt.onnx_fp16(onnx_path, self.path["onnx-fp16"], self.opts.target))
        if not self.want("tensorrt-fp16"):
            return
        if fp16 is None:
            fp16 = self.keep(tensorrt.onnx_fp16(onnx_path, self.work / "fp16.onnx", self.opts.target))
        b = self.opts.max_batch_size
        shapes: dict[str, tuple[tuple[int, ...], ...]] = {
            k: ((1, *v.shape[1:]), (b, *v.shape[1:]), (b, *v.shape[1:]))
            for k, v in self.inputs.samples.arrays.items()
        }
        plan_src = fp16.output if fp16.usable else None
        self.record(tensorrt.tensorrt_fp16(plan_src, self.path["tensorrt-fp16"], self.opts.target, shapes))


@dataclasses.dataclass(kw_only=True)
class _Evaluator:
    """Gates (parity, task metric) each variant, then completes the passing ones with their profile."""

    opts: Options
    inputs: _Inputs
    say: Progress
    ref_out: list[np.ndarray[Any, Any]]
    ref_metric: float | None
    baseline: profiling.BatchProfile | None
    specs: tuple[list[artifact.TensorSpec], list[artifact.TensorSpec]] | None
    candidates: list[selection.Candidate] = dataclasses.field(default_factory=list)
    artifacts: dict[str, artifact.VariantArtifact] = dataclasses.field(default_factory=dict)
    runners: dict[str, runtimes.Runner] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Path] = dataclasses.field(default_factory=dict)

    def feed_for(self, batch: int) -> dict[str, examples.Array]:
        return self.inputs.samples.batch(0, batch)

    def metric(self, runner: runtimes.Runner) -> float | None:
        ev = self.inputs.evaluation
        if ev is None or ev.labels is None:
            return None
        return parity.accuracy(_run_batched(runner, ev, self.opts.max_batch_size)[0], ev.labels)

    def gate(self, runner: runtimes.Runner, precision: str) -> tuple[str, report.Parity]:
        check = parity.compare(
            self.ref_out, _run_batched(runner, self.inputs.held_aside, self.opts.max_batch_size), precision
        )
        metric = self.metric(runner)
        gate = report.Parity(**dataclasses.asdict(check), metric=metric, metric_baseline=self.ref_metric)
        if not check.passed:
            return f"failed: parity: {check.reason}", gate
        ref_metric, drop = self.ref_metric, self.opts.max_metric_drop
        if (
            metric is not None
            and ref_metric is not None
            and not parity.metric_drop_ok(ref_metric, metric, drop)
        ):
            return (
                f"failed: accuracy {metric:.4f} vs baseline {ref_metric:.4f} drops more than {drop:.1%}",
                gate,
            )
        return "ok", gate

    def gate_stage(self, r: base.StageResult) -> report.Variant:
        """Parity and task-metric gate; a passing variant's runner is kept for profiling."""
        kind = catalogue.BY_NAME[r.name]
        fmt, precision, device = kind.format, kind.precision, kind.device
        row: dict[str, Any] = {"name": r.name, "format": fmt, "precision": precision, "device": device}
        if not r.usable or r.output is None:
            return report.Variant(**row, status=r.status)
        row |= {"path": str(r.output.relative_to(self.opts.out)), "size_bytes": _size(r.output)}
        self.say(f"{r.name}: parity")
        try:
            runner = runner_for(r.name, r.output)
            status, row["parity"] = self.gate(runner, precision)
        except Exception as e:  # a variant that cannot run fails; the others go on
            errors.raise_if_storage(e)
            return report.Variant(**row, status=f"failed: cannot run: {base.one_line(str(e), 200)}")
        if status == "ok":
            self.runners[r.name] = runner
            self.outputs[r.name] = r.output
        return report.Variant(**row, status=status)

    def complete(self, v: report.Variant, prof: list[profiling.BatchProfile]) -> report.Variant:
        """Add a passing variant's profile, apply the latency budget and make it a candidate."""
        best = profiling.best_within_budget(prof, self.opts.latency_budget_ms)
        update: dict[str, Any] = {"profile": [batch_row(p) for p in prof]}
        if best is None:
            budget = self.opts.latency_budget_ms
            update["status"] = f"failed: p99 above the {budget} ms budget at every batch size"
            return v.model_copy(update=update)
        update |= {
            "latency_ms": report.Latency(p50=best.p50_ms, p99=best.p99_ms),
            "throughput_per_s": best.throughput_per_s,
            "batch_size": best.batch_size,
            "cost_per_million": selection.cost_per_million(self.opts.price_per_hour, best.throughput_per_s),
            "speedup_vs_baseline": best.throughput_per_s / self.baseline.throughput_per_s
            if self.baseline
            else None,
        }
        self.candidates.append(
            selection.Candidate(name=v.name, throughput_per_s=best.throughput_per_s, p99_ms=best.p99_ms)
        )
        if self.specs is not None:
            self.artifacts[v.name] = artifact.VariantArtifact(
                name=v.name,
                format=v.format,
                precision=v.precision,
                path=self.outputs[v.name],
                inputs=self.specs[0],
                outputs=self.specs[1],
                max_batch_size=self.opts.max_batch_size,
                device=v.device,
            )
        return v.model_copy(update=update)


def optimize_model(opts: Options, say: Progress) -> report.Report:
    """Run the whole pipeline for `opts`; returns the report it also wrote to DIR/report.json."""
    prepare_output(opts.out)
    inputs = _load_inputs(opts)
    src = source.load(opts.model)
    ref = _reference(src, inputs, opts)
    # Silently: a user error found here is the only line on stderr.
    ref_out = _reference_outputs(src, ref, inputs, opts)
    ref_metric = _reference_metric(src, ref, inputs, opts)
    store = _outputs(opts, src, inputs)
    if store.prepare():
        say(f"output folder {opts.out}: earlier results are of another model, inputs or options: rebuilding")
    results = _Converter(opts, inputs, say, store).run(src, ref)
    onnx_io = next((r.output for r in results if r.name == "export" and r.output is not None), None)

    b = opts.max_batch_size
    ev = _Evaluator(
        opts=opts,
        inputs=inputs,
        say=say,
        ref_out=ref_out,
        ref_metric=ref_metric,
        baseline=None,
        specs=_tensor_specs(onnx_io) if onnx_io is not None else None,
    )
    gated = [ev.gate_stage(r) for r in results if r.name in catalogue.BY_NAME]
    say("profile: baseline and passing variants, side by side")
    profiles = profiling.side_by_side(
        {BASELINE: ref, **ev.runners}, ev.feed_for, sorted({1, b}), max_seconds_per_batch=opts.profile_seconds
    )
    base_prof = profiles[BASELINE]
    ev.baseline = profiling.best_within_budget(base_prof, opts.latency_budget_ms)
    rows = [ev.complete(v, profiles[v.name]) if v.name in ev.runners else v for v in gated]

    chosen, why = selection.select(ev.candidates, opts.price_per_hour)
    repo, triton = _publish(opts.out / "model_repository", ev.artifacts, say)
    if opts.target == "cpu" and onnx_io is not None:
        for name in _link_onnx(onnx_io, opts.out):
            store.add_file(name)
        store.save()
    rows = [v.model_copy(update={"triton": triton[v.name]}) if v.name in triton else v for v in rows]
    best = ev.baseline
    result = report.Report(
        model=str(opts.model.resolve()),
        target=opts.target,
        machine=machine(),
        options={
            "latency_budget_ms": opts.latency_budget_ms,
            "max_batch_size": opts.max_batch_size,
            "price_per_hour": opts.price_per_hour,
            "max_metric_drop": opts.max_metric_drop,
            "variants": ",".join(opts.variants),
            "inputs": str(opts.inputs) if opts.inputs else "generated from --signature",
            "calibration": str(opts.calibration) if opts.calibration else None,
            "eval": str(opts.eval) if opts.eval else None,
            "inputs_sha256": store.manifest.inputs_sha256,
        },
        stages=[_stage_row(r, opts.out) for r in results],
        baseline=report.Baseline(
            name="pytorch-fp32-eager" if src.kind != "onnx" else "onnxruntime-fp32-unoptimized",
            latency_ms=report.Latency(p50=best.p50_ms, p99=best.p99_ms) if best else report.Latency(),
            throughput_per_s=best.throughput_per_s if best else None,
            batch_size=best.batch_size if best else None,
            metric=ev.ref_metric,
            profile=[batch_row(p) for p in base_prof],
        ),
        variants=rows,
        selected=report.Selected(variant=chosen, reason=why),
        model_repository=str(repo.relative_to(opts.out)) if repo else None,
    )
    _save_profile_inputs(opts.out, inputs.samples, b)
    report.write(result, opts.out / "report.json")
    return result


def _outputs(opts: Options, src: source.SourceModel, inputs: _Inputs) -> reuse.Outputs:
    """What this run's artifacts depend on, as the reuse record of DIR (see `reuse`)."""
    sig = opts.signature
    calibration = inputs.calibration.arrays if inputs.calibration is not None else None
    digest, parts = reuse.inputs_digest(
        src.path,
        src.data_files,
        {"inputs": inputs.samples.arrays, "calibration": calibration},
        {
            "signature": reuse.text_sha256(sig.model_dump_json()) if sig is not None else None,
            "max_batch_size": opts.max_batch_size,
            "target": opts.target,
        },
    )
    given = [opts.model, *src.data_files, *(p for p in (opts.inputs, opts.calibration, opts.eval) if p)]
    return reuse.Outputs(opts.out, digest, parts, given)


def _stage_row(r: base.StageResult, out: Path) -> report.Stage:
    inside = r.output is not None and r.output.resolve().is_relative_to(out.resolve())
    return report.Stage(
        name=r.name,
        status=r.status,
        seconds=round(r.seconds, 3),
        output=str(r.output.resolve().relative_to(out.resolve())) if inside and r.output else None,
        details=r.details,
    )


def batch_row(p: profiling.BatchProfile) -> report.BatchProfile:
    return report.BatchProfile(
        batch_size=p.batch_size,
        latency_ms=report.Latency(p50=p.p50_ms, p99=p.p99_ms),
        throughput_per_s=p.throughput_per_s,
        stable=p.stable,
        iterations=p.iterations,
    )


def _publish(
    repo: Path, artifacts: dict[str, artifact.VariantArtifact], say: Progress
) -> tuple[Path | None, dict[str, str]]:
    """Write each passing variant into the Triton repository through the Triton package's writer.

    A variant is the model `<variant>` for its native backend and, for CPU ONNX and OpenVINO variants,
    also `<variant>-py` for the Python backend (the only one in the CPU tritonserver of nvidia-pytriton).
    """
    if not artifacts:
        _prune(repo, set())
        return None, {}
    try:
        from .triton import repository  # owned by the serving work; may be absent
    except ImportError:
        say("triton: skipped: triton repository writer unavailable")
        return None, {n: "skipped: triton repository writer unavailable" for n in artifacts}
    status: dict[str, str] = {}
    written: set[str] = set()
    repo.mkdir(parents=True, exist_ok=True)
    for name, art in artifacts.items():
        try:
            dirs = [repository.write_variant(repo, repository.native_model_name(art), art)]
            if art.device == "cpu" and art.format in repository.PYTHON_RUNTIMES:
                dirs.append(
                    repository.write_python_backend_variant(repo, repository.python_model_name(art), art)
                )
            written |= {Path(d).name for d in dirs}
            status[name] = "ok: " + ", ".join(str(Path(d).relative_to(repo.parent)) for d in dirs)
        except Exception as e:  # the writer validates per backend; one bad variant must not stop the rest
            errors.raise_if_storage(e)
            status[name] = f"failed: {base.one_line(str(e), 200)}"
        say(f"triton {name}: {status[name]}")
    _prune(repo, written)
    return repo, status


def _prune(repo: Path, keep: set[str]) -> None:
    """Remove models an earlier run published that this one did not: the repository matches the report."""
    if not repo.is_dir():
        return
    for model_dir in repo.iterdir():
        if model_dir.is_dir() and not model_dir.name.startswith(".") and model_dir.name not in keep:
            shutil.rmtree(model_dir, ignore_errors=True)


def _link_onnx(onnx_path: Path, out: Path) -> list[str]:
    """Make the exported ONNX available as DIR/model.onnx: GPU pools build their variants from it.

    Returns the names of the files put into DIR.
    """
    target = out / "model.onnx"
    if target.resolve() == onnx_path.resolve():
        return []
    # External-data files keep their names: the graph refers to them by relative location.
    sidecars = [onnx_path.with_name(onnx_path.name + s) for s in (".data", "_data")]
    placed: list[str] = []
    for src, dst in [(onnx_path, target), *((p, out / p.name) for p in sidecars)]:
        if not src.is_file():
            continue
        placed.append(dst.name)
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, dst)
    return placed


def _save_profile_inputs(out: Path, ex: examples.Samples, batch: int) -> None:
    """Keep one max-size batch so `thrifty-convert profile DIR` can re-profile on another node."""
    np.savez(out / "profile-inputs.npz", **ex.batch(0, batch))


def machine() -> report.Machine:
    interesting = {
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_bf16",
        "amx_int8",
        "amx_tile",
    }
    return report.Machine(
        hostname=socket.gethostname(),
        cpu=platform.processor() or platform.machine(),
        threads=runtimes.threads(),
        cpu_flags=sorted(cpu.flags() & interesting),
        gpu=cpu.has_gpu(),
        load_average_1m=round(os.getloadavg()[0], 2),
    )
