"""The operator's own Prometheus metrics, served on the `metrics` port (THRIFTY_METRICS_PORT).

Per model they mirror what the reconcile just wrote to status (spend, budget, replicas, the selected
variant's cost per million inferences, the last scaling decision); per handler, reconcile durations and
errors. Label values are bounded: a model's namespace and name, the selected variant and pool (one series
per model: an earlier variant's series are removed when it changes), and fixed reason and period sets.
docs/metrics.md lists every metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import prometheus_client as prom

from thrifty_api import optimized_model as models

log = logging.getLogger(__name__)

_MODEL = ("namespace", "name", "variant", "pool")


def _per_model(name: str, documentation: str, *extra: str) -> prom.Gauge:
    """A gauge with one series per model (and the `extra` labels)."""
    return prom.Gauge(name, documentation, [*_MODEL, *extra])


SPEND_RATE = _per_model(
    "thrifty_model_spend_rate_per_hour", "Spend rate of the model's Triton replicas per hour", "currency"
)
MONTH_TO_DATE = _per_model(
    "thrifty_model_month_to_date_spend", "Spend of the model this calendar month (UTC)", "currency"
)
PROJECTED = _per_model(
    "thrifty_model_projected_month_spend",
    "Month-to-date spend plus the current rate to month end",
    "currency",
)
BUDGET = _per_model(
    "thrifty_model_budget", "The model's budget (or its namespace's share) per `period`", "currency", "period"
)
REPLICAS = _per_model("thrifty_model_replicas", "Triton replicas, `state` desired or ready", "state")
COST_PER_MILLION = _per_model(
    "thrifty_model_cost_per_million_inferences",
    "The selected variant's cost of a million inferences",
    "currency",
)
DECISION = _per_model("thrifty_model_scaling_decision", "1 for the last scaling decision's reason", "reason")
RECONCILE_SECONDS = prom.Histogram(
    "thrifty_reconcile_duration_seconds",
    "Time one reconcile of one model took, by kopf handler",
    ["handler"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = prom.Counter(
    "thrifty_reconcile_errors", "Reconciles that raised (kopf retries them), by handler", ["handler"]
)
JOB_SECONDS = prom.Histogram(
    "thrifty_job_duration_seconds",
    "Conversion and profiling Jobs from start to end, by `component` (convert, profile) and `outcome`",
    ["component", "outcome"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
_PER_MODEL = (SPEND_RATE, MONTH_TO_DATE, PROJECTED, BUDGET, REPLICAS, COST_PER_MILLION, DECISION)
_lock = threading.Lock()
_series: dict[tuple[str, str], list[tuple[prom.Gauge, tuple[str, ...]]]] = {}


def serve(port: int) -> None:
    """Serve /metrics on every address of the pod (the chart's NetworkPolicy admits only the scraper). A
    taken port costs the metrics, not the operator: reconciling goes on and the log says why."""
    try:
        prom.start_http_server(port)
    except OSError as err:
        log.error("cannot serve metrics on port %d: %s", port, err)


@contextmanager
def timed(handler: str) -> Iterator[None]:
    """Count a reconcile's duration, and its error if it raises."""
    with RECONCILE_SECONDS.labels(handler).time():
        try:
            yield
        except BaseException:
            RECONCILE_ERRORS.labels(handler).inc()
            raise


def _number(value: Any) -> float | None:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _budget(text: Any) -> tuple[str, float] | None:
    """`0.6/h` or `400/month` as status.cost.budget writes it."""
    amount, _, period = str(text or "").partition("/")
    value = _number(amount)
    if value is None or period not in ("h", "month"):
        return None
    return ("hour" if period == "h" else "month"), value


def _cost_per_million(status: models.OptimizedModelStatus, variant: str, pool: str) -> str | None:
    measured = next((v for v in status.variants if (v.name, v.pool) == (variant, pool)), None)
    return measured.cost_per_million if measured else None


def record(namespace: str, name: str, status: models.OptimizedModelStatus) -> None:
    """Set the model's series from its status (as the reconcile wrote it); drop series it no longer has."""
    selected = status.selected
    model = (namespace, name, selected.variant if selected else "", selected.pool if selected else "")
    cost = status.cost
    currency = cost.currency if cost else "USD"
    values: list[tuple[prom.Gauge, tuple[str, ...], float | None]] = [
        (SPEND_RATE, (*model, currency), _number(cost.rate_per_hour if cost else None)),
        (MONTH_TO_DATE, (*model, currency), _number(cost.month_to_date if cost else None)),
        (PROJECTED, (*model, currency), _number(cost.projected_month_end if cost else None)),
        (COST_PER_MILLION, (*model, currency), _number(_cost_per_million(status, model[2], model[3]))),
    ]
    replicas = status.replicas
    values += [
        (REPLICAS, (*model, "desired"), float(replicas.desired) if replicas else None),
        (REPLICAS, (*model, "ready"), float(replicas.ready) if replicas else None),
    ]
    budget = _budget(cost.budget if cost else None)
    if budget:
        values.append((BUDGET, (*model, currency, budget[0]), budget[1]))
    if status.scaling and status.scaling.reason:
        values.append((DECISION, (*model, status.scaling.reason), 1.0))
    kept = [(gauge, labels) for gauge, labels, value in values if value is not None]
    with _lock:
        for gauge, labels in set(_series.get((namespace, name), [])) - set(kept):
            gauge.remove(*labels)
        for gauge, labels, value in values:
            if value is not None:
                gauge.labels(*labels).set(value)
        _series[(namespace, name)] = kept


def job_finished(component: str, outcome: str, seconds: float | None) -> None:
    """Count one finished Job (once: when the operator keeps its summary on it)."""
    if seconds is not None:
        JOB_SECONDS.labels(component or "unknown", outcome).observe(seconds)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted model."""
    with _lock:
        for gauge, labels in _series.pop((namespace, name), []):
            gauge.remove(*labels)


def per_model_gauges() -> tuple[prom.Gauge, ...]:
    """Every per-model gauge (for the metrics documentation's test)."""
    return _PER_MODEL
