"""Triton load from a Prometheus HTTP API, for clusters where Prometheus already scrapes the Triton pods.

The operator then needs no network path to the pods. Each sync asks five instant queries over the
model's pods (the Deployment's pods: `<deployment>-<replicaset hash>-<suffix>`, in the namespace):
the `rate()` of Triton's success, queue-time, request-time and rejected counters over the rate window,
and the sum of the pending-request gauge. `rate()` handles counter resets as `cost.metrics` does.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .cost import metrics

log = logging.getLogger(__name__)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(RuntimeError):
    """Prometheus could not answer a query (unreachable, bad query, error status)."""


def selector(
    namespace: str, deployment: str, namespace_label: str = "namespace", pod_label: str = "pod"
) -> str:
    """PromQL label matchers for the Deployment's pods."""
    pods = f"{deployment}-[a-z0-9]+-[a-z0-9]+"
    return f'{namespace_label}="{_escape(namespace)}",{pod_label}=~"{_escape(pods)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def queries(match: str, window: str) -> dict[str, str]:
    """The PromQL for each load field, summed over the matched pods."""

    def rate(metric: str, extra: str = "") -> str:
        return f"sum(rate({metric}{{{match}{extra}}}[{window}]))"

    return {
        "success": rate("nv_inference_request_success"),
        "queue_us": rate("nv_inference_queue_duration_us"),
        "request_us": rate("nv_inference_request_duration_us"),
        "rejected": rate("nv_inference_request_failure", ',reason="REJECTED"'),
        "pending": f"sum(nv_inference_pending_request_count{{{match}}})",
    }


def parse_scalar(body: bytes) -> float | None:
    """The value of an instant query's one-element vector; None for an empty result (no such series).

    Raises:
        PrometheusError: If the answer is an error or not an instant vector.
    """
    try:
        doc: Any = json.loads(body)
    except json.JSONDecodeError as err:
        raise PrometheusError(f"not a Prometheus API answer: {err}") from err
    if not isinstance(doc, dict) or doc.get("status") != "success":
        what = doc.get("error", doc) if isinstance(doc, dict) else doc
        raise PrometheusError(f"query failed: {str(what)[:200]}")
    data = doc.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected an instant vector, got {data.get('resultType')!r}")
    result = data.get("result") or []
    if not result:
        return None
    value = float(result[0]["value"][1])
    return value if math.isfinite(value) else None


def query(base_url: str, promql: str, timeout: float = 2.0) -> float | None:
    """Run one instant query against `base_url` (e.g. http://prometheus.monitoring:9090)."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return parse_scalar(response.read())
    except urllib.error.HTTPError as err:
        # Prometheus answers bad queries with 400 and a JSON error body.
        return parse_scalar(err.read())
    except (OSError, urllib.error.URLError) as err:
        raise PrometheusError(f"{base_url} unreachable: {err}") from err


def load(base_url: str, match: str, window: str = "1m", timeout: float = 2.0) -> metrics.LoadSample | None:
    """The model's load; None when Prometheus has no series for its pods yet.

    Raises:
        PrometheusError: If Prometheus cannot answer.
    """
    values = {field: query(base_url, q, timeout) for field, q in queries(match, window).items()}
    success = values["success"]
    if success is None:
        return None
    return metrics.LoadSample(
        request_rate=success,
        queue_us_per_request=(values["queue_us"] or 0.0) / success if success > 0 else 0.0,
        latency_us_per_request=(values["request_us"] or 0.0) / success if success > 0 else 0.0,
        pending=values["pending"] or 0.0,
        rejected_rate=values["rejected"] or 0.0,
    )
