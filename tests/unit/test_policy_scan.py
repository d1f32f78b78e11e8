"""The chart and every child the operator creates pass checkov, or carry the reason a check does not apply.

checkov reads a skip from the object's `checkov.io/skipN: CHECK_ID=reason` annotations; a finding without one
fails here. One checkov run scans every scenario (it takes seconds to start): each chart render has its own
release name, so its NetworkPolicy selects only its own operator pod.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
import yaml

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import config, manifests, names
from thrifty_testbed import chart

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = pools.PoolCatalogue.model_validate(
    yaml.safe_load((ROOT / "config" / "pools.local.yaml").read_text())
)
DIGEST = "sha256:" + "0" * 64
PINNED_CHART = {
    "image.digest": DIGEST,
    "converter.image.digest": DIGEST,
    "converter.gpuImage.digest": DIGEST,
}
PINNED_TRITON = f"nvcr.io/nvidia/tritonserver@{DIGEST}"
# Skips that only explain images given by tag.
DIGEST_CHECKS = {"CKV_K8S_43", "CKV_K8S_15"}
NO_REASON = "No comment provided"  # what checkov records for a skip without `=reason`


def _chart(
    release: str, local: bool = False, set_values: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    files = [chart.LOCAL_VALUES] if local else []
    return chart.render(
        release=release, namespace="thrifty-system", values_files=files, set_values=set_values
    )


def _children(
    example: pathlib.Path, settings: config.Settings, triton_image: str | None
) -> list[dict[str, Any]]:
    """Every Job, Deployment and Service the operator creates for one example, on each of its pools."""
    doc = yaml.safe_load(example.read_text())
    if triton_image:
        doc["spec"]["serving"]["tritonImage"] = triton_image
    spec = models.OptimizedModelSpec.model_validate(doc["spec"])
    owner = manifests.Owner(name=doc["metadata"]["name"], namespace="ml", uid="uid-1")
    digest = names.artifact_digest(spec)
    price = Decimal("0.5")
    pools = [pool for name in spec.serving.pools if (pool := CATALOGUE.get(name)) is not None]
    assert len(pools) == len(spec.serving.pools), f"{example.name} names a pool not in the catalogue"
    cpu_pool = next(p for p in [*pools, *CATALOGUE.pools] if not p.is_gpu)
    children = [
        manifests.convert_job(
            owner=owner, spec=spec, digest=digest, pool=cpu_pool, price_per_hour=price, settings=settings
        ),
        manifests.triton_service(owner=owner),
    ]
    if settings.converter_network_policy:
        children.append(manifests.converter_network_policy(namespace=owner.namespace, settings=settings))
    for pool in pools:
        children.append(
            manifests.profile_job(
                owner=owner, spec=spec, digest=digest, pool=pool, price_per_hour=price, settings=settings
            )
        )
        root = manifests.pool_dir(digest, pool) if pool.is_gpu else manifests.artifact_dir(digest)
        serving = manifests.Serving(
            variant=spec.optimization.variants[0],
            model_name=owner.name,
            repository=f"{root}/model_repository",
            pool=pool,
            replicas=1,
        )
        children.append(
            manifests.triton_deployment(
                owner=owner, spec=spec, serving=serving, digest=digest, settings=settings
            )
        )
    return children


def _scenarios() -> dict[str, list[dict[str, Any]]]:
    scenarios = {
        "chart-default": _chart("default"),
        "chart-ci-local": _chart("ci-local", local=True),
        "chart-pinned": _chart("pinned", set_values=PINNED_CHART),
    }
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        for store in ("pvc", "s3"):
            settings = config.Settings(artifact_store=store)
            pinned = config.Settings(
                artifact_store=store,
                converter_image=f"ghcr.io/thrifty-dev/thrifty-converter@{DIGEST}",
                converter_gpu_image=f"ghcr.io/thrifty-dev/thrifty-converter-gpu@{DIGEST}",
            )
            scenarios[f"children-{store}-{example.stem}"] = _children(example, settings, None)
            scenarios[f"children-{store}-{example.stem}-pinned"] = _children(example, pinned, PINNED_TRITON)
    return scenarios


def _kubernetes_report(stdout: str) -> dict[str, Any]:
    output = json.loads(stdout)
    reports = output if isinstance(output, list) else [output]
    (report,) = (r for r in reports if r.get("check_type") == "kubernetes")
    result: dict[str, Any] = report
    return result


def _scan(folder: pathlib.Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """checkov's passed, failed and skipped checks per scenario (file stem) of `folder`."""
    checkov = pathlib.Path(sys.executable).parent / "checkov"
    assert checkov.exists(), "checkov missing: `make venv` installs the dev group"
    result = subprocess.run(
        # --skip-download: no calls to the vendor's platform (guidelines, custom policies).
        [str(checkov), "-d", str(folder), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        report = _kubernetes_report(result.stdout)
    except (ValueError, StopIteration) as error:
        raise AssertionError(
            f"checkov gave no report ({result.returncode}): {result.stderr[-2000:]}"
        ) from error
    assert report["results"]["parsing_errors"] == []
    by_scenario: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
        for check in report["results"][outcome]:
            scenario = pathlib.PurePosixPath(check["file_path"]).stem
            by_scenario.setdefault(scenario, {}).setdefault(outcome, []).append(check)
    return by_scenario


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    folder = tmp_path_factory.mktemp("policy-scan")
    scenarios = _scenarios()
    for name, objects in scenarios.items():
        (folder / f"{name}.yaml").write_text(chart.dump(objects))
    results = _scan(folder)
    missing = scenarios.keys() - results.keys()
    assert not missing, f"checkov scanned nothing in {sorted(missing)}"
    return results


SCENARIOS = ["chart-default", "chart-ci-local", "chart-pinned"] + [
    f"children-{store}-{example.stem}{pinned}"
    for example in sorted((ROOT / "examples").glob("*.yaml"))
    for store in ("pvc", "s3")
    for pinned in ("", "-pinned")
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_policy_scan_explains_every_finding_when_scanning(
    scans: dict[str, dict[str, list[dict[str, Any]]]], scenario: str
) -> None:
    result = scans[scenario]
    unexplained = sorted(
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in result.get("failed_checks", [])
    )
    assert unexplained == [], "checkov findings without a checkov.io/skip reason:\n" + "\n".join(unexplained)
    without_reason = sorted(
        f"{c['check_id']} {c['resource']}"
        for c in result.get("skipped_checks", [])
        if c["check_result"].get("suppress_comment", NO_REASON) in ("", NO_REASON)
    )
    assert without_reason == [], f"skips must say why: {without_reason}"
    assert result.get("passed_checks"), "checkov passed nothing: did it scan the objects?"


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.endswith("-pinned")])
def test_policy_scan_needs_no_image_skip_when_images_are_pinned_by_digest(
    scans: dict[str, dict[str, list[dict[str, Any]]]], scenario: str
) -> None:
    skipped = {c["check_id"] for c in scans[scenario].get("skipped_checks", [])}
    assert not skipped & DIGEST_CHECKS
    passed = {c["check_id"] for c in scans[scenario]["passed_checks"]}
    assert passed >= DIGEST_CHECKS


def test_policy_scan_chart_skips_only_the_service_account_token_check_when_pinned(
    scans: dict[str, dict[str, list[dict[str, Any]]]],
) -> None:
    # The operator needs its token; every other check passes outright.
    skipped = {(c["check_id"], c["resource"]) for c in scans["chart-pinned"].get("skipped_checks", [])}
    assert skipped == {("CKV_K8S_38", "Deployment.thrifty-system.pinned-thrifty")}
