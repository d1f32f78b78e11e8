"""Triton /metrics scrapes to the load signals the scaling policy needs.

A scrape gives cumulative counters; two scrapes give rates. Counters reset when a pod restarts, so a
counter that went down counts from zero (Prometheus `rate()` semantics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from prometheus_client import parser

_COUNTERS = {
    "nv_inference_request_success": "request_success",
    "nv_inference_queue_duration_us": "queue_duration_us",
    "nv_inference_request_duration_us": "request_duration_us",
    "nv_inference_count": "inference_count",
    "nv_inference_exec_count": "exec_count",
}
_PENDING = "nv_inference_pending_request_count"
_FAILURE = "nv_inference_request_failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TritonCounters:
    """Cumulative counters and gauges of one Triton pod for one model, at one instant.

    Attributes:
        timestamp: Scrape time in seconds (any monotonic epoch shared by the scrapes compared).
        request_success: `nv_inference_request_success`.
        queue_duration_us: `nv_inference_queue_duration_us`.
        request_duration_us: `nv_inference_request_duration_us`.
        inference_count: `nv_inference_count` (items, so batch-size aware).
        exec_count: `nv_inference_exec_count` (batch executions).
        rejected: `nv_inference_request_failure{reason="REJECTED"}`.
        pending: `nv_inference_pending_request_count` (gauge).
    """

    timestamp: float
    request_success: float = 0.0
    queue_duration_us: float = 0.0
    request_duration_us: float = 0.0
    inference_count: float = 0.0
    exec_count: float = 0.0
    rejected: float = 0.0
    pending: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadSample:
    """Load over an interval, summed over pods.

    Attributes:
        request_rate: Successful requests per second.
        queue_us_per_request: rate(queue duration) / rate(success); Triton's own HPA signal.
        latency_us_per_request: rate(request duration) / rate(success).
        pending: Requests waiting in queues at the end of the interval.
        rejected_rate: Rejected requests per second (queue full: scale up now).
    """

    request_rate: float
    queue_us_per_request: float = 0.0
    latency_us_per_request: float = 0.0
    pending: float = 0.0
    rejected_rate: float = 0.0


def parse_triton_metrics(text: str, timestamp: float, model: str | None = None) -> TritonCounters:
    """Parse a Triton /metrics scrape (Prometheus text exposition) into counters.

    Samples of all matching label sets (versions, GPUs) are summed.

    Args:
        text: The scrape body.
        timestamp: When it was scraped, in seconds.
        model: Only count samples with this `model` label; all models when None.

    Returns:
        The counters; metrics absent from the scrape read as 0.

    Raises:
        ValueError: If the text is not valid exposition format.
    """
    values: dict[str, float] = dict.fromkeys((*_COUNTERS.values(), "rejected", "pending"), 0.0)
    for family in parser.text_string_to_metric_families(text):
        if family.name in _COUNTERS:
            field = _COUNTERS[family.name]
        elif family.name == _PENDING:
            field = "pending"
        elif family.name == _FAILURE:
            field = "rejected"
        else:
            continue
        for sample in family.samples:
            # Counters also expose `_created` samples; only the value sample counts.
            if sample.name.endswith("_created"):
                continue
            if model is not None and sample.labels.get("model") != model:
                continue
            if field == "rejected" and sample.labels.get("reason") != "REJECTED":
                continue
            values[field] += float(sample.value)
    return TritonCounters(timestamp=timestamp, **values)


def _increase(before: float, after: float) -> float:
    # A counter that went down was reset (pod restart): it counted `after` since the reset.
    return after - before if after >= before else after


def load_between(before: TritonCounters, after: TritonCounters) -> LoadSample:
    """Compute rates between two scrapes of the same pod.

    Args:
        before: Earlier scrape.
        after: Later scrape.

    Returns:
        The load over the interval.

    Raises:
        ValueError: If `after` is not later than `before`.
    """
    dt = after.timestamp - before.timestamp
    if dt <= 0:
        raise ValueError("the second scrape must be later than the first")
    success = _increase(before.request_success, after.request_success)
    queue = _increase(before.queue_duration_us, after.queue_duration_us)
    duration = _increase(before.request_duration_us, after.request_duration_us)
    return LoadSample(
        request_rate=success / dt,
        queue_us_per_request=queue / success if success > 0 else 0.0,
        latency_us_per_request=duration / success if success > 0 else 0.0,
        pending=after.pending,
        rejected_rate=_increase(before.rejected, after.rejected) / dt,
    )


def combine_loads(samples: Iterable[LoadSample]) -> LoadSample:
    """Sum per-pod loads into the deployment's load; per-request times are weighted by request rate.

    Args:
        samples: One sample per pod.

    Returns:
        The total load (zero load when there are no samples).
    """
    rate = queue = latency = pending = rejected = 0.0
    for s in samples:
        rate += s.request_rate
        queue += s.queue_us_per_request * s.request_rate
        latency += s.latency_us_per_request * s.request_rate
        pending += s.pending
        rejected += s.rejected_rate
    return LoadSample(
        request_rate=rate,
        queue_us_per_request=queue / rate if rate > 0 else 0.0,
        latency_us_per_request=latency / rate if rate > 0 else 0.0,
        pending=pending,
        rejected_rate=rejected,
    )
