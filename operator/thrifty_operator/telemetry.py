"""The operator's own Prometheus metrics, served on the `metrics` port (THRIFTY_METRICS_PORT).

Per model they mirror what the reconcile just wrote to status (spend, budget, replicas, the selected
variant's cost per million inferences, the last scaling decision); per namespace with a budget annotation,
its models' spend summed and the namespace's budget; per handler, reconcile durations and errors. Label
values are bounded: a model's namespace and name, the selected variant and pool (one series per model: an
earlier variant's series are removed when it changes), a budgeted namespace, and fixed reason and period
sets. docs/metrics.md lists every metric.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import prometheus_client as prom
from prometheus_client.core import GaugeMetricFamily

from thrifty_api import optimized_model as models

from .cost import budgets

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


@dataclasses.dataclass(frozen=True)
class _Spend:
    """One model's money figures as its last reconcile wrote them, for its namespace's sums."""

    currency: str
    rate_per_hour: float | None
    month_to_date: float | None
    projected_month_end: float | None


# Model → its spend; namespace → its budget annotations, as the last timer pass of a served model read them.
_spend: dict[tuple[str, str], _Spend] = {}
_namespace_budgets: dict[str, budgets.Budget] = {}


_NAMESPACE_SUMS = {
    "thrifty_namespace_spend_rate_per_hour": (
        "rate_per_hour",
        "Spend rate of the namespace's models per hour",
    ),
    "thrifty_namespace_month_to_date_spend": (
        "month_to_date",
        "Spend of the namespace's models this calendar month (UTC)",
    ),
    "thrifty_namespace_projected_month_spend": (
        "projected_month_end",
        "The namespace's month-to-date spend plus its models' rate to month end",
    ),
}
_NAMESPACE_BUDGET = ("thrifty_namespace_budget", "The namespace's budget annotation per `period`")


class _Namespaces:
    """Per-namespace series, computed at scrape time from `_spend` and `_namespace_budgets`: a sum is never
    stale, and a namespace that loses its budget or its last model loses its series."""

    def describe(self) -> list[GaugeMetricFamily]:
        """The metric names, so that the registry refuses a clash."""
        return [GaugeMetricFamily(name, text) for name, (_, text) in _NAMESPACE_SUMS.items()] + [
            GaugeMetricFamily(*_NAMESPACE_BUDGET)
        ]

    def collect(self) -> list[GaugeMetricFamily]:
        """For each budgeted namespace: its models' figures summed (per currency) and its budget."""
        labels = ["namespace", "currency"]
        sums = {
            name: GaugeMetricFamily(name, text, labels=labels) for name, (_, text) in _NAMESPACE_SUMS.items()
        }
        budget = GaugeMetricFamily(*_NAMESPACE_BUDGET, labels=[*labels, "period"])
        with _lock:
            budgeted = sorted(_namespace_budgets.items())
            by_namespace: dict[str, list[_Spend]] = {namespace: [] for namespace, _ in budgeted}
            for (namespace, _), spend in _spend.items():
                if namespace in by_namespace:
                    by_namespace[namespace].append(spend)
        for namespace, cap in budgeted:
            spent = by_namespace[namespace]
            # Budgets are in the pool catalogue's currency, which every model's cost is given in.
            currencies = sorted({spend.currency for spend in spent}) or ["USD"]
            for currency in currencies:
                same = [spend for spend in spent if spend.currency == currency]
                for name, (field, _) in _NAMESPACE_SUMS.items():
                    total = sum(getattr(spend, field) or 0.0 for spend in same)
                    sums[name].add_metric([namespace, currency], total)
            for period, amount in (("hour", cap.per_hour), ("month", cap.per_month)):
                if amount is not None:
                    budget.add_metric([namespace, currencies[0], period], amount)
        return [*sums.values(), budget]


prom.REGISTRY.register(_Namespaces())


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


def _budget(text: Any) -> list[tuple[str, float]]:
    """`0.6/h`, `400/month` or `0.6/h, 400/month` as status.cost.budget writes it: (period, amount) each."""
    caps = []
    for part in str(text or "").split(","):
        amount, _, period = part.strip().partition("/")
        value = _number(amount)
        if value is not None and period in ("h", "month"):
            caps.append(("hour" if period == "h" else "month", value))
    return caps


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
    for period, amount in _budget(cost.budget if cost else None):
        values.append((BUDGET, (*model, currency, period), amount))
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
        _spend[(namespace, name)] = _Spend(
            currency=currency,
            rate_per_hour=values[0][2],
            month_to_date=values[1][2],
            projected_month_end=values[2][2],
        )


def namespace_budget(namespace: str, annotations: Mapping[str, str]) -> None:
    """Keep the namespace's budget (its annotations, as the scaler read them) for its series; a namespace
    without a well-formed budget annotation has none (the scaler reports malformed ones)."""
    cap, _ = budgets.parse_budget(annotations)
    with _lock:
        if cap.unlimited:
            _namespace_budgets.pop(namespace, None)
        else:
            _namespace_budgets[namespace] = cap


def job_finished(component: str, outcome: str, seconds: float | None) -> None:
    """Count one finished Job (once: when the operator keeps its summary on it)."""
    if seconds is not None:
        JOB_SECONDS.labels(component or "unknown", outcome).observe(seconds)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted model."""
    with _lock:
        for gauge, labels in _series.pop((namespace, name), []):
            gauge.remove(*labels)
        _spend.pop((namespace, name), None)
        if not any(ns == namespace for ns, _ in _spend):
            _namespace_budgets.pop(namespace, None)


def per_model_gauges() -> tuple[prom.Gauge, ...]:
    """Every per-model gauge (for the metrics documentation's test)."""
    return _PER_MODEL


def per_namespace_metrics() -> tuple[str, ...]:
    """The names of the per-namespace metrics (for the metrics documentation's test)."""
    return (*_NAMESPACE_SUMS, _NAMESPACE_BUDGET[0])
