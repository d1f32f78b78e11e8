"""The operator's Prometheus metrics: set from a real status, dropped on change and deletion, documented."""

from __future__ import annotations

import json
import pathlib
import re

import prometheus_client
import pytest

from thrifty_api import optimized_model as models
from thrifty_operator import telemetry

ROOT = pathlib.Path(__file__).resolve().parents[2]
# A status the operator wrote in `make demo` (tests/unit/argocd holds objects captured from real runs).
RAW = json.loads((ROOT / "tests" / "unit" / "argocd" / "ready.json").read_text())["status"]
STATUS = models.OptimizedModelStatus.model_validate(RAW)


def _value(metric: str, /, **labels: str) -> float | None:
    return prometheus_client.REGISTRY.get_sample_value(metric, labels)


def test_a_models_status_becomes_its_series() -> None:
    telemetry.record("shop", "search", STATUS)
    model = {"namespace": "shop", "name": "search", "variant": "onnx-int8-dynamic", "pool": "cpu-c7i"}
    assert _value("thrifty_model_spend_rate_per_hour", **model, currency="USD") == pytest.approx(0.357)
    assert _value("thrifty_model_budget", **model, currency="USD", period="hour") == pytest.approx(0.6)
    assert _value("thrifty_model_replicas", **model, state="ready") == 1
    assert _value("thrifty_model_scaling_decision", **model, reason="Steady") == 1
    measured = next(v for v in STATUS.variants if (v.name, v.pool) == ("onnx-int8-dynamic", "cpu-c7i"))
    assert measured.cost_per_million is not None
    assert _value("thrifty_model_cost_per_million_inferences", **model, currency="USD") == pytest.approx(
        float(measured.cost_per_million)
    )
    telemetry.forget("shop", "search")
    assert _value("thrifty_model_replicas", **model, state="ready") is None


def test_a_new_selection_replaces_the_old_series() -> None:
    telemetry.record("shop", "recs", STATUS)
    moved = json.loads(json.dumps(RAW))
    moved["selected"] = {**moved["selected"], "variant": "onnx-fp32"}
    moved["scaling"]["reason"] = "ScaledUp"
    telemetry.record("shop", "recs", models.OptimizedModelStatus.model_validate(moved))
    old = {"namespace": "shop", "name": "recs", "variant": "onnx-int8-dynamic", "pool": "cpu-c7i"}
    new = {**old, "variant": "onnx-fp32"}
    assert _value("thrifty_model_replicas", **old, state="desired") is None
    assert _value("thrifty_model_replicas", **new, state="desired") == 1
    assert _value("thrifty_model_scaling_decision", **new, reason="Steady") is None
    assert _value("thrifty_model_scaling_decision", **new, reason="ScaledUp") == 1
    telemetry.forget("shop", "recs")


def _with_cost(**cost: str) -> models.OptimizedModelStatus:
    raw = json.loads(json.dumps(RAW))
    raw["cost"].update(cost)
    return models.OptimizedModelStatus.model_validate(raw)


def test_a_budgeted_namespace_sums_its_models_and_shows_its_budget() -> None:
    budget = {"thrifty.dev/budget-per-hour": "2", "thrifty.dev/budget-per-month": "900"}
    telemetry.record("team", "a", _with_cost(ratePerHour="0.5", monthToDate="10", projectedMonthEnd="300"))
    telemetry.record("team", "b", _with_cost(ratePerHour="0.25", monthToDate="5", projectedMonthEnd="150"))
    telemetry.record("other", "c", _with_cost(ratePerHour="9"))
    telemetry.namespace_budget("team", budget)
    team = {"namespace": "team", "currency": "USD"}
    assert _value("thrifty_namespace_spend_rate_per_hour", **team) == pytest.approx(0.75)
    assert _value("thrifty_namespace_month_to_date_spend", **team) == pytest.approx(15)
    assert _value("thrifty_namespace_projected_month_spend", **team) == pytest.approx(450)
    assert _value("thrifty_namespace_budget", **team, period="hour") == 2
    assert _value("thrifty_namespace_budget", **team, period="month") == 900
    # A namespace without a budget annotation has no namespace series (bounded: budgeted namespaces only).
    assert _value("thrifty_namespace_spend_rate_per_hour", namespace="other", currency="USD") is None
    telemetry.forget("team", "a")
    assert _value("thrifty_namespace_spend_rate_per_hour", **team) == pytest.approx(0.25)
    telemetry.namespace_budget("team", {"thrifty.dev/budget-per-hour": "not a number"})
    assert _value("thrifty_namespace_budget", **team, period="hour") is None
    assert _value("thrifty_namespace_spend_rate_per_hour", **team) is None
    telemetry.namespace_budget("team", budget)
    telemetry.forget("team", "b")  # the namespace's last model takes its series with it
    assert _value("thrifty_namespace_budget", **team, period="month") is None
    telemetry.forget("other", "c")


def test_a_model_with_both_caps_has_both_budget_series() -> None:
    telemetry.record("shop", "both", _with_cost(budget="0.6/h, 400/month"))
    model = {"namespace": "shop", "name": "both", "variant": "onnx-int8-dynamic", "pool": "cpu-c7i"}
    assert _value("thrifty_model_budget", **model, currency="USD", period="hour") == pytest.approx(0.6)
    assert _value("thrifty_model_budget", **model, currency="USD", period="month") == 400
    telemetry.forget("shop", "both")


def test_reconcile_errors_are_counted_and_reraised() -> None:
    before = _value("thrifty_reconcile_errors_total", handler="test") or 0.0
    with pytest.raises(RuntimeError), telemetry.timed("test"):
        raise RuntimeError("boom")
    assert _value("thrifty_reconcile_errors_total", handler="test") == before + 1
    assert (_value("thrifty_reconcile_duration_seconds_count", handler="test") or 0) >= 1


def test_every_metric_is_documented() -> None:
    documented = set(re.findall(r"^\| `(thrifty_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M))
    exported = {g._name for g in telemetry.per_model_gauges()}
    exported |= {"thrifty_reconcile_duration_seconds", "thrifty_reconcile_errors_total"}
    exported |= {"thrifty_job_duration_seconds", *telemetry.per_namespace_metrics()}
    assert documented == exported


def test_a_finished_job_is_timed_once_by_component_and_outcome() -> None:
    before = _value("thrifty_job_duration_seconds_count", component="convert", outcome="Failed") or 0.0
    telemetry.job_finished("convert", "Failed", 42.0)
    telemetry.job_finished("convert", "Failed", None)  # no start time recorded: not counted
    assert _value("thrifty_job_duration_seconds_count", component="convert", outcome="Failed") == before + 1
