"""Scrape Triton's Prometheus endpoint on each ready pod and turn two scrapes into a load sample."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping
from typing import Any

from . import manifests
from .cost import metrics

log = logging.getLogger(__name__)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def ready_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods that are ready and not being deleted."""
    return [p for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")]


def scrape(
    pods: list[dict[str, Any]], previous: MutableMapping[str, Any], timeout: float = 1.0
) -> tuple[metrics.LoadSample | None, int, str | None]:
    """Load summed over the ready pods since their previous scrape (kept in `previous`), the ready count, and
    why there is no load when ready pods could not be scraped at all (None otherwise).

    A pod seen for the first time, or unreachable, contributes no rate this round.
    """
    current: dict[str, metrics.TritonCounters] = {}
    ready = ready_pods(pods)
    failures: list[str] = []
    for pod in ready:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            continue
        url = f"http://{ip}:{manifests.METRICS_PORT}/metrics"
        try:
            with _NO_PROXY.open(url, timeout=timeout) as response:
                text = response.read().decode()
        except (OSError, urllib.error.URLError) as err:
            log.debug("scraping %s failed: %s", url, err)
            failures.append(f"{pod['metadata']['name']}: {err}")
            continue
        current[pod["metadata"]["uid"]] = metrics.parse_triton_metrics(text, timestamp=time.time())
    samples = [metrics.load_between(previous[uid], now) for uid, now in current.items() if uid in previous]
    previous.clear()
    previous.update(current)
    error = None
    if failures and not current:
        error = (
            f"Triton's metrics port {manifests.METRICS_PORT} unreachable on every ready pod ({failures[0]})"
        )
    if not samples:
        return None, len(ready), error
    return metrics.combine_loads(samples), len(ready), None
