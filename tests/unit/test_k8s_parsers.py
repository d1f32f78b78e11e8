"""Pure parsers of what the API server returns (thrifty_operator.k8s)."""

from __future__ import annotations

from thrifty_operator import k8s


def test_job_duration_runs_from_start_to_completion_or_failure() -> None:
    done = {"status": {"startTime": "2026-12-04T10:00:00Z", "completionTime": "2026-12-04T10:02:30Z"}}
    assert k8s._job_duration(done) == 150.0
    failed = {
        "status": {
            "startTime": "2026-12-04T10:00:00Z",
            "conditions": [
                {"type": "Failed", "status": "True", "lastTransitionTime": "2026-12-04T10:00:07Z"}
            ],
        }
    }
    assert k8s._job_duration(failed) == 7.0
    assert k8s._job_duration({"status": {"startTime": "2026-12-04T10:00:00Z"}}) is None
    assert k8s._job_duration({"status": {}}) is None
