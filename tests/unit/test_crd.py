"""The committed CRD and admission policy are exactly what the typed models generate, and fully bounded."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import yaml

from thrifty_api import crdgen
from thrifty_api import optimized_model as models

ROOT = pathlib.Path(__file__).resolve().parents[2]


# crds/ for kubectl users, and the Helm chart's copies it templates behind `crds.enabled`.
GENERATED_DIRS = (ROOT / "crds", ROOT / "charts" / "thrifty" / crdgen.CHART_FILES_DIR)


def test_crdgen_matches_committed_files_when_models_change() -> None:
    for name, content in crdgen.render().items():
        for folder in GENERATED_DIRS:
            committed = folder / name
            assert committed.exists(), f"{committed} missing: run `make crds`"
            assert committed.read_text() == content, f"{committed} is stale: run `make crds`"


def test_crdgen_check_fails_when_file_is_stale(tmp_path: pathlib.Path) -> None:
    assert crdgen.main(["--out-dir", str(tmp_path)]) == 0
    (tmp_path / crdgen.CRD_FILE).write_text("stale")
    assert crdgen.main(["--out-dir", str(tmp_path), "--check"]) == 1


def test_crdgen_check_fails_when_chart_copy_is_stale(tmp_path: pathlib.Path) -> None:
    args = ["--out-dir", str(tmp_path / "crds"), "--chart-dir", str(tmp_path / "chart")]
    assert crdgen.main(args) == 0
    copy = tmp_path / "chart" / crdgen.CHART_FILES_DIR / crdgen.POLICY_FILE
    assert copy.read_text() == (tmp_path / "crds" / crdgen.POLICY_FILE).read_text()
    assert crdgen.main([*args, "--check"]) == 0
    copy.write_text("stale")
    assert crdgen.main([*args, "--check"]) == 1


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{key}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_schema_bounds_every_string_list_and_number() -> None:
    schema = crdgen.openapi_schema()
    unbounded = []
    for path, node in _walk(schema["properties"]["spec"], "spec"):
        kind = node.get("type")
        if kind == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind == "integer" and ("minimum" not in node or "maximum" not in node):
            unbounded.append(path)
    assert unbounded == []


def test_schema_is_structural() -> None:
    text = yaml.safe_dump(crdgen.openapi_schema())
    for keyword in ("$ref", "anyOf", "allOf", "oneOf", "title", "additionalProperties: false", "const"):
        assert keyword not in text


def test_schema_describes_every_spec_field() -> None:
    missing = [
        path
        for path, node in _walk(crdgen.openapi_schema()["properties"]["spec"], "spec")
        if not path.endswith("[]") and not node.get("description")
    ]
    assert missing == []


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = crdgen.openapi_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }


def test_budget_policy_uses_the_annotation_keys() -> None:
    policy, binding = crdgen.budget_policy()
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert models.BUDGET_PER_HOUR_ANNOTATION in expressions
    assert models.BUDGET_PER_MONTH_ANNOTATION in expressions
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
