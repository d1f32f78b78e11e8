"""Triton /metrics parsing and rates across scrapes."""

import pytest

from thrifty_operator.cost import metrics

SCRAPE = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="resnet",version="1"}} {success}
nv_inference_request_success{{model="other",version="1"}} 999
# HELP nv_inference_request_failure Number of failed inference requests
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="resnet",reason="REJECTED",version="1"}} {rejected}
nv_inference_request_failure{{model="resnet",reason="BACKEND",version="1"}} 7
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="resnet",version="1"}} {queue}
# HELP nv_inference_request_duration_us Cumulative inference request duration in microseconds
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{{model="resnet",version="1"}} {duration}
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="resnet",version="1"}} {pending}
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{{gpu_uuid="GPU-1"}} 0.5
"""


def scrape(t: float, success: int, queue: int, pending: int = 0, rejected: int = 0) -> metrics.TritonCounters:
    text = SCRAPE.format(success=success, queue=queue, duration=queue * 2, pending=pending, rejected=rejected)
    return metrics.parse_triton_metrics(text, timestamp=t, model="resnet")


def test_parse_triton_metrics_filters_by_model_and_rejection_reason() -> None:
    c = scrape(10.0, success=100, queue=5000, pending=3, rejected=2)
    assert c.request_success == 100
    assert c.queue_duration_us == 5000
    assert c.request_duration_us == 10000
    assert c.pending == 3
    assert c.rejected == 2


def test_parse_triton_metrics_without_model_filter_sums_all_models() -> None:
    c = metrics.parse_triton_metrics(
        SCRAPE.format(success=1, queue=0, duration=0, pending=0, rejected=0), 0.0
    )
    assert c.request_success == 1000


def test_parse_triton_metrics_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        metrics.parse_triton_metrics("nv_inference_request_success{model=resnet 12 12 12", 0.0)


def test_load_between_computes_rates_and_queue_time_per_request() -> None:
    load = metrics.load_between(scrape(0.0, 100, 10_000), scrape(30.0, 400, 160_000, pending=4, rejected=3))
    assert load.request_rate == pytest.approx(10.0)
    assert load.queue_us_per_request == pytest.approx(500.0)
    assert load.latency_us_per_request == pytest.approx(1000.0)
    assert load.pending == 4
    assert load.rejected_rate == pytest.approx(0.1)


def test_load_between_counts_from_zero_after_a_counter_reset() -> None:
    # The pod restarted: counters went down, so they counted only their new values since.
    load = metrics.load_between(scrape(0.0, 5000, 900_000), scrape(10.0, 50, 2_500))
    assert load.request_rate == pytest.approx(5.0)
    assert load.queue_us_per_request == pytest.approx(50.0)


def test_load_between_requires_a_later_scrape() -> None:
    with pytest.raises(ValueError, match="later"):
        metrics.load_between(scrape(5.0, 1, 1), scrape(5.0, 2, 2))


def test_combine_loads_weights_queue_time_by_request_rate() -> None:
    a = metrics.LoadSample(request_rate=30.0, queue_us_per_request=100.0, pending=1)
    b = metrics.LoadSample(request_rate=10.0, queue_us_per_request=500.0, pending=2)
    total = metrics.combine_loads([a, b])
    assert total.request_rate == 40.0
    assert total.queue_us_per_request == pytest.approx(200.0)
    assert total.pending == 3
    assert metrics.combine_loads([]).request_rate == 0.0
