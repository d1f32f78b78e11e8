"""The status at the kopf boundary: statuses captured from real runs validate against the typed model and
read and dump back unchanged (no churn); an invalid stored part is dropped without losing the rest."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from thrifty_api import optimized_model as models
from thrifty_operator import status_io

CAPTURED = sorted((pathlib.Path(__file__).resolve().parent / "argocd").glob("*.json"))


def _load(path: pathlib.Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.stem)
def test_captured_objects_validate_against_the_typed_model(path: pathlib.Path) -> None:
    obj = models.OptimizedModel.model_validate(_load(path))
    assert obj.spec.serving.pools


@pytest.mark.parametrize("path", [p for p in CAPTURED if "status" in _load(p)], ids=lambda p: p.stem)
def test_a_stored_status_reads_and_dumps_back_unchanged(path: pathlib.Path) -> None:
    raw = _load(path)["status"]
    assert status_io.dump(status_io.read(raw)) == raw


def test_an_invalid_part_is_dropped_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    raw = next(_load(p)["status"] for p in CAPTURED if "cost" in _load(p).get("status", {}))
    broken = {**raw, "cost": {"ratePerHour": "NaN"}, "kopf": {"progress": {}}}
    status = status_io.read(broken)
    assert status.cost is None and status.conditions and status.variants
    assert "dropping invalid cost" in caplog.text
    assert status_io.dump(status) == {k: v for k, v in raw.items() if k != "cost"}


def test_an_empty_status_is_an_empty_model() -> None:
    assert status_io.dump(status_io.read({})) == {}
