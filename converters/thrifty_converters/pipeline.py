"""`optimize`: export, convert, gate, profile, select and publish, writing report.json.

Stages run in order in one process; each reports ok/skipped/failed and skips work whose artifact an
earlier run left. User-input problems raise `errors.UserInputError` before any heavy work starts.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thrifty_api import report
from thrifty_api import variants as catalogue

from . import artifact, cpu, errors, examples, parity, profiling, runtimes, selection, signature, source
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
        if self.max_batch_size < 1:
            raise errors.OptionError("--max-batch-size must be at least 1")
        if self.price_per_hour <= 0:
            raise errors.OptionError("--price-per-hour must be positive")
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise errors.OptionError("--latency-budget-ms must be positive")


@dataclasses.dataclass(kw_only=True)
class _Inputs:
    samples: examples.Samples
    held_aside: examples.Samples
    calibration: examples.Samples | None
    evaluation: examples.Samples | None
    names: list[str]


def prepare_output(out: Path) -> None:
    """Create `out` and prove it is writable before any long work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise errors.OutputDirError(f"output folder {out} is not writable: {e.strerror or e}") from e


def _load_inputs(opts: Options) -> _Inputs:
    if opts.inputs is not None:
        ex = examples.load(opts.inputs, "inputs")
    elif opts.signature is not None:
        ex = signature.generate(opts.signature, max(2 * opts.max_batch_size, GENERATED_MIN_SAMPLES))
    else:  # Options.__post_init__ rejects this already
        raise errors.OptionError("give example inputs (--inputs) or the model's signature (--signature)")
    calib = None
    if opts.calibration is not None:
        calib = examples.load(opts.calibration, "calibration")
        examples.require_calibration_size(calib, opts.calibration)
    ev = examples.load(opts.eval, "eval", with_labels=True) if opts.eval is not None else None
    for name, other in (("calibration", calib), ("eval", ev)):
        if other is not None and list(other.arrays) != list(ex.arrays):
            raise errors.InputMismatchError(
                f"{name} arrays {list(other.arrays)} differ from the inputs' arrays {list(ex.arrays)}"
            )
    # Export traces the first max-batch samples; parity uses the rest when there are enough.
    b = opts.max_batch_size
    rest = {k: v[b:] for k, v in ex.arrays.items()}
    held = examples.Samples(arrays=rest) if ex.count >= 2 * b else ex
    return _Inputs(samples=ex, held_aside=held, calibration=calib, evaluation=ev, names=list(ex.arrays))


def _reference(src: source.SourceModel, inputs: _Inputs) -> runtimes.Runner:
    """The FP32 reference runner, checked against the example inputs."""
    if src.kind == "onnx":
        if set(src.onnx_input_names) != set(inputs.names):
            raise errors.InputMismatchError(
                f"inputs {inputs.names} do not match the model's inputs {list(src.onnx_input_names)}"
            )
        ref = runtimes.ort_runner(src.path, optimize=False)
    else:
        ref = runtimes.torch_runner(src.module, inputs.names)
    try:
        ref(inputs.samples.batch(0, 1))
    except Exception as e:  # torch/ORT raise RuntimeError, InvalidArgument, TypeError...
        raise errors.InputMismatchError(f"inputs do not match the model: {base.one_line(str(e), 200)}") from e
    return ref


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

    def __init__(self, opts: Options, inputs: _Inputs, say: Progress) -> None:
        self.opts, self.inputs, self.say = opts, inputs, say
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
        ov32 = openvino.fp32(onnx_path, self.path["openvino-fp32"])
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
            fp16 = tensorrt.onnx_fp16(onnx_path, self.work / "fp16.onnx", self.opts.target)
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
    ref = _reference(src, inputs)
    results = _Converter(opts, inputs, say).run(src, ref)
    onnx_io = next((r.output for r in results if r.name == "export" and r.output is not None), None)

    say("parity: reference outputs")
    b = opts.max_batch_size
    ev = _Evaluator(
        opts=opts,
        inputs=inputs,
        say=say,
        ref_out=_run_batched(ref, inputs.held_aside, b),
        ref_metric=None,
        baseline=None,
        specs=_tensor_specs(onnx_io) if onnx_io is not None else None,
    )
    ev.ref_metric = ev.metric(ref)
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
        _link_onnx(onnx_io, opts.out)
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
        return None, {}
    try:
        from .triton import repository  # owned by the serving work; may be absent
    except ImportError:
        say("triton: skipped: triton repository writer unavailable")
        return None, {n: "skipped: triton repository writer unavailable" for n in artifacts}
    status: dict[str, str] = {}
    repo.mkdir(parents=True, exist_ok=True)
    for name, art in artifacts.items():
        try:
            written = [repository.write_variant(repo, repository.native_model_name(art), art)]
            if art.device == "cpu" and art.format in repository.PYTHON_RUNTIMES:
                written.append(
                    repository.write_python_backend_variant(repo, repository.python_model_name(art), art)
                )
            status[name] = "ok: " + ", ".join(str(Path(w).relative_to(repo.parent)) for w in written)
        except Exception as e:  # the writer validates per backend; one bad variant must not stop the rest
            status[name] = f"failed: {base.one_line(str(e), 200)}"
        say(f"triton {name}: {status[name]}")
    return repo, status


def _link_onnx(onnx_path: Path, out: Path) -> None:
    """Make the exported ONNX available as DIR/model.onnx: GPU pools build their variants from it."""
    target = out / "model.onnx"
    if target.resolve() == onnx_path.resolve():
        return
    # External-data files keep their names: the graph refers to them by relative location.
    sidecars = [onnx_path.with_name(onnx_path.name + s) for s in (".data", "_data")]
    for src, dst in [(onnx_path, target), *((p, out / p.name) for p in sidecars)]:
        if not src.is_file():
            continue
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, dst)


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
