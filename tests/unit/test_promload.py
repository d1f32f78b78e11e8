"""PromQL for the Prometheus load source and parsing of the API's answers (the queries run against a real
Prometheus in tests/e2e/test_budget_e2e.py)."""

import json

import pytest

from thrifty_operator import promload


def _answer(*values: float, status: str = "success", kind: str = "vector") -> bytes:
    result = [{"metric": {}, "value": [1700000000.0, str(v)]} for v in values]
    return json.dumps({"status": status, "data": {"resultType": kind, "result": result}}).encode()


def test_selector_matches_only_the_deployments_pods_and_escapes_quotes() -> None:
    sel = promload.selector('ns"x', "minilm-triton", "kubernetes_namespace", "kubernetes_pod_name")
    assert sel == 'kubernetes_namespace="ns\\"x",kubernetes_pod_name=~"minilm-triton-[a-z0-9]+-[a-z0-9]+"'


def test_queries_sum_rates_over_the_window_and_the_pending_gauge() -> None:
    q = promload.queries('namespace="a"', "1m")
    assert q["success"] == 'sum(rate(nv_inference_request_success{namespace="a"}[1m]))'
    assert q["rejected"] == 'sum(rate(nv_inference_request_failure{namespace="a",reason="REJECTED"}[1m]))'
    assert q["pending"] == 'sum(nv_inference_pending_request_count{namespace="a"})'


def test_parse_scalar_reads_values_and_empty_results() -> None:
    assert promload.parse_scalar(_answer(12.5)) == 12.5
    assert promload.parse_scalar(_answer()) is None
    assert promload.parse_scalar(_answer(float("nan"))) is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not prometheus</html>",
        json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode(),
        _answer(1.0, kind="matrix"),
    ],
)
def test_parse_scalar_rejects_errors(body: bytes) -> None:
    with pytest.raises(promload.PrometheusError):
        promload.parse_scalar(body)


def test_unreachable_prometheus_is_a_prometheus_error() -> None:
    with pytest.raises(promload.PrometheusError, match="unreachable"):
        promload.load("http://127.0.0.1:9", 'namespace="a"', timeout=0.5)
