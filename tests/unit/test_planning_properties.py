"""Whatever the API server admits plans into a condition, never an exception, and into a status it accepts.

Specs are generated from the generated CRD's own OpenAPI schema (hypothesis-jsonschema), without its CEL
rules, so the planner is also tried on what only CEL would have refused (an older object, a cluster without
the rule). Job summaries, load samples and budget annotations are drawn adversarially (NaN, infinities,
negative and huge numbers, garbage text). Every planned status must validate against the CRD's status schema
and serialise as strict JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import pathlib
from typing import Any

import hypothesis
import jsonschema
import pydantic
import yaml
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import config, manifests, names, pool_pricing, status_io
from thrifty_operator.cost import metrics
from thrifty_operator.planning import observed
from thrifty_operator.planning import plan as planner

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "thrifty.dev_optimizedmodels.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
CATALOGUE = pools.parse((ROOT / "config" / "pools.local.yaml").read_text())
SETTINGS = config.Settings()
OWNER = manifests.Owner(name="m", namespace="ns", uid="uid-1")
NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
PROPERTIES = hypothesis.settings(
    max_examples=int(os.environ.get("THRIFTY_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)


def _json_schema(node: Any) -> Any:
    """The structural OpenAPI schema as plain JSON Schema: Kubernetes extensions and formats dropped."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes") and k != "format"}
    if "properties" in out:
        out["properties"] = {name: _json_schema(sub) for name, sub in out["properties"].items()}
        # The API server prunes (strictly: rejects) unknown fields.
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _json_schema(out["items"])
    return out


SPEC_SCHEMA = _json_schema(SCHEMA["properties"]["spec"])
STATUS_VALIDATOR = jsonschema.Draft7Validator(_json_schema(SCHEMA["properties"]["status"]))

_numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
)
_variant_results = st.fixed_dictionaries(
    {"name": st.sampled_from(["onnx-fp32", "onnx-int8-dynamic", "openvino-bf16", "tensorrt-fp16", "x" * 80])},
    optional={
        "status": st.sampled_from(["ok", "skipped: no GPU", "failed: cosine 0.2", ""]),
        "p50_ms": _numbers,
        "p99_ms": _numbers,
        "throughput_per_s": _numbers,
        "size_bytes": st.one_of(st.integers(min_value=-10, max_value=2**70), st.none()),
        "parity": st.one_of(st.none(), st.text(max_size=400)),
    },
)
# A termination message as a Job may leave it: a summary (JSON allows NaN as Python writes it) or garbage.
_messages = st.one_of(
    st.lists(_variant_results, max_size=6).map(
        lambda rows: json.dumps({"v": 1, "variants": [{"status": "ok", **r} for r in rows]})
    ),
    st.text(max_size=200),
    st.none(),
)
_annotations = st.dictionaries(
    st.sampled_from([models.BUDGET_PER_HOUR_ANNOTATION, models.BUDGET_PER_MONTH_ANNOTATION]),
    st.one_of(st.from_regex(models.BUDGET_PATTERN, fullmatch=True), st.text(max_size=12)),
)
_samples = st.one_of(
    st.none(),
    st.builds(
        metrics.LoadSample,
        request_rate=st.floats(min_value=0, max_value=1e7),
        queue_us_per_request=st.floats(min_value=0, max_value=1e9),
    ),
)


def _with_known_pools(spec: dict[str, Any], chosen: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    if chosen:
        out["serving"]["pools"] = chosen
    return out


_specs = st.builds(
    _with_known_pools,
    from_schema(SPEC_SCHEMA),
    st.lists(st.sampled_from([p.name for p in CATALOGUE.pools]), max_size=3, unique=True),
)


def _plan(
    spec: models.OptimizedModelSpec,
    stored: models.OptimizedModelStatus,
    children: observed.Observed,
    load: observed.Load | None = None,
) -> planner.Plan:
    result = planner.plan(
        owner=OWNER,
        generation=1,
        spec=spec,
        stored=status_io.read(status_io.dump(stored)),
        observed=children,
        catalogue=CATALOGUE,
        settings=SETTINGS,
        price_of=pool_pricing.spec_replica_price,
        load=load,
    )
    raw = status_io.dump(result.status)
    json.dumps(raw, allow_nan=False)  # strict JSON: the API server refuses NaN and infinities
    errors = sorted(STATUS_VALIDATOR.iter_errors(raw), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    ready = next(c for c in result.status.conditions if c.type == "Ready")
    assert ready.reason and ready.message
    return result


def _finished(spec: models.OptimizedModelSpec, messages: list[str | None]) -> dict[str, observed.JobState]:
    digest = names.artifact_digest(spec)
    jobs = {names.convert_job(digest): observed.JobState(phase="Succeeded", message=messages[0])}
    for i, pool in enumerate(spec.serving.pools):
        jobs[names.profile_job(pool, digest)] = observed.JobState(
            phase="Succeeded", message=messages[(i + 1) % len(messages)]
        )
    return jobs


@PROPERTIES
@hypothesis.given(raw=_specs)
def test_every_spec_the_crd_admits_validates_in_the_typed_model(raw: dict[str, Any]) -> None:
    try:
        models.OptimizedModelSpec.model_validate(raw)
    except pydantic.ValidationError as err:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"the CRD admits what the model rejects: {err}") from err


@PROPERTIES
@hypothesis.given(
    raw=_specs,
    messages=st.lists(_messages, min_size=1, max_size=4),
    annotations=_annotations,
    namespace_annotations=_annotations,
    sample=_samples,
    ready=st.one_of(st.none(), st.integers(min_value=0, max_value=2000)),
)
def test_every_admitted_spec_plans_into_a_condition_and_a_valid_status(
    raw: dict[str, Any],
    messages: list[str | None],
    annotations: dict[str, str],
    namespace_annotations: dict[str, str],
    sample: metrics.LoadSample | None,
    ready: int | None,
) -> None:
    spec = models.OptimizedModelSpec.model_validate(raw)
    first = _plan(spec, models.OptimizedModelStatus(), observed.Observed(jobs={}, deployment=None))
    jobs = _finished(spec, messages)
    measured = _plan(spec, first.status, observed.Observed(jobs=jobs, deployment=None))
    deployment = observed.DeploymentState(
        replicas=ready or 0,
        ready_replicas=ready or 0,
        updated_replicas=ready or 0,
        variant=measured.status.selected.variant if measured.status.selected else None,
        pool=measured.status.selected.pool if measured.status.selected else None,
        rolled_out=True,
    )
    load = observed.Load(
        now=NOW,
        annotations=annotations,
        namespace_annotations=namespace_annotations,
        namespace_demand={"m": 1.0, "other": 2.0},
        sample=sample,
        ready_replicas=ready,
    )
    children = observed.Observed(jobs=jobs, deployment=deployment)
    scaled = _plan(spec, measured.status, children, load)
    later = dataclasses.replace(load, now=NOW + datetime.timedelta(minutes=1))
    again = _plan(spec, scaled.status, children, later)
    if again.status.cost is not None:
        assert math.isfinite(float(again.status.cost.month_to_date))
