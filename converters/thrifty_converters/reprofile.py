"""`thrifty-convert profile DIR`: re-measure an optimize output's passing variants on this machine.

The operator runs this as a Job per node pool, so selection uses the pool's own numbers. Parity is
not re-checked (it does not depend on the node for the CPU variants); the result is written to
DIR/pools/<pool>/profile.json (with `--pool`) or DIR/profile-<hostname>.json, with the schema of report.json.
"""

from __future__ import annotations

import socket
from pathlib import Path

from thrifty_api import report

from . import checks, errors, examples, pipeline, profiling, reuse, runtimes, selection, source

Progress = pipeline.Progress


def run(
    out: Path,
    budget_ms: float | None,
    price_per_hour: float,
    seconds: float,
    say: Progress,
    *,
    pool: str | None = None,
    max_batch_size: int | None = None,
) -> report.Report:
    """Re-profile every variant of DIR whose status is ok; returns and writes the new report.

    `max_batch_size` caps the batch sizes measured (default: the one `optimize` used).
    """
    if max_batch_size is not None:
        checks.max_batch_size(max_batch_size)
    checks.price_per_hour(price_per_hour)
    checks.latency_budget_ms(budget_ms)
    checks.profile_seconds(seconds)
    path = out / "report.json"
    if not path.is_file():
        raise errors.UserInputError(f"{out} has no report.json; run `thrifty-convert optimize` first")
    try:
        old = report.read(path)
    except ValueError as e:
        raise errors.UserInputError(f"{path} is not a valid report: {str(e).splitlines()[0]}") from e
    manifest = reuse.read(out)
    recorded = old.options.get("inputs_sha256")
    if manifest is not None and recorded is not None and recorded != manifest.inputs_sha256:
        raise errors.UserInputError(
            f"{path} and {out / reuse.MANIFEST} describe different optimize runs; "
            "run `thrifty-convert optimize` again"
        )
    passing = [v for v in old.variants if v.status == "ok" and v.path is not None]
    for v in passing:
        _require_artifact(out, v, manifest)
    ex = examples.load(out / "profile-inputs.npz", "profile inputs")
    max_batch = max_batch_size or ex.count
    batches = sorted({1, max_batch})

    def feed_for(batch: int) -> dict[str, examples.Array]:
        return ex.batch(0, batch)

    runners: dict[str, runtimes.Runner] = {}
    model = Path(old.model)
    absent = _baseline_absent(model, manifest)
    if absent is None:
        src = source.load(model)
        runners[pipeline.BASELINE] = (
            runtimes.ort_runner(src.path, optimize=False)
            if src.kind == "onnx"
            else runtimes.torch_runner(src.module, list(ex.arrays))
        )
    for v in passing:
        runners[v.name] = pipeline.runner_for(v.name, out / (v.path or ""))
    say("profile: baseline and variants, side by side")
    profiles = profiling.side_by_side(runners, feed_for, batches, max_seconds_per_batch=seconds)
    base_prof = profiles.get(pipeline.BASELINE, [])
    base_best = profiling.best_within_budget(base_prof, budget_ms) if base_prof else None
    rows: list[report.Variant] = []
    candidates: list[selection.Candidate] = []
    for v in old.variants:
        if v.name not in profiles:
            rows.append(v)
            continue
        prof = profiles[v.name]
        best = profiling.best_within_budget(prof, budget_ms)
        update: dict[str, object] = {"profile": [pipeline.batch_row(p) for p in prof]}
        if best is None:
            update |= {"status": f"failed: p99 above the {budget_ms} ms budget at every batch size"}
            update |= {"latency_ms": report.Latency(), "throughput_per_s": None, "cost_per_million": None}
        else:
            update |= {
                "latency_ms": report.Latency(p50=best.p50_ms, p99=best.p99_ms),
                "throughput_per_s": best.throughput_per_s,
                "batch_size": best.batch_size,
                "cost_per_million": selection.cost_per_million(price_per_hour, best.throughput_per_s),
                "speedup_vs_baseline": best.throughput_per_s / base_best.throughput_per_s
                if base_best
                else None,
            }
            candidates.append(
                selection.Candidate(name=v.name, throughput_per_s=best.throughput_per_s, p99_ms=best.p99_ms)
            )
        rows.append(v.model_copy(update=update))
    chosen, why = selection.select(candidates, price_per_hour)
    baseline = report.Baseline(
        name=old.baseline.name
        if base_best
        else f"{old.baseline.name} ({f'not measured: {absent}' if absent else 'above the latency budget'})",
        latency_ms=report.Latency(p50=base_best.p50_ms, p99=base_best.p99_ms)
        if base_best
        else report.Latency(),
        throughput_per_s=base_best.throughput_per_s if base_best else None,
        batch_size=base_best.batch_size if base_best else None,
        metric=old.baseline.metric,
        profile=[pipeline.batch_row(p) for p in base_prof],
    )
    options = dict(old.options) | {
        "latency_budget_ms": budget_ms,
        "price_per_hour": price_per_hour,
        "max_batch_size": max_batch,
        "pool": pool,
    }
    new = old.model_copy(
        update={
            "machine": pipeline.machine(),
            "options": options,
            "baseline": baseline,
            "variants": rows,
            "selected": report.Selected(variant=chosen, reason=why),
        }
    )
    if pool is not None:
        where = out / "pools" / pool
        where.mkdir(parents=True, exist_ok=True)
        report.write(new, where / "profile.json")
    else:
        report.write(new, out / f"profile-{socket.gethostname()}.json")
    return new


def _require_artifact(out: Path, v: report.Variant, manifest: reuse.Manifest | None) -> None:
    """A passing variant's files must be there, and be what `optimize` built and checked."""
    rel = v.path or ""
    for path in reuse.companions(out / rel) if (out / rel).is_file() else [out / rel]:
        if not path.is_file():
            raise errors.UserInputError(
                f"variant {v.name}: file {path} is missing; run `thrifty-convert optimize` into {out} again"
            )
    if manifest is not None:
        why = reuse.verify(out, manifest, rel)
        if why is not None:
            raise errors.UserInputError(
                f"variant {v.name}: {why}; run `thrifty-convert optimize` into {out} again"
            )


def _baseline_absent(model: Path, manifest: reuse.Manifest | None) -> str | None:
    """Why the reference model cannot be the baseline (None when it can)."""
    if not model.is_file():
        return "model file absent"
    if manifest is not None and manifest.parts.get("model") not in (None, reuse.file_sha256(model)):
        return "model file changed since optimize"
    return None
