"""Conversion Jobs load users' model files, which can run code: what confines them (docs/security.md).

Pure: the Job and NetworkPolicy manifests as the operator builds them, the label selector evaluated on the
pod template's labels as the API server would, and the chart's values reaching the operator's settings.
"""

from __future__ import annotations

import json
import pathlib
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from thrifty_api import optimized_model as models
from thrifty_api import pools
from thrifty_operator import config, manifests, names
from thrifty_testbed import chart

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = pools.PoolCatalogue.model_validate(yaml.safe_load((ROOT / "config/pools.local.yaml").read_text()))
OWNER = manifests.Owner(name="minilm", namespace="ml", uid="uid-1")
SPEC = models.OptimizedModelSpec.model_validate(
    yaml.safe_load((ROOT / "examples/minilm.yaml").read_text())["spec"]
)
DIGEST = names.artifact_digest(SPEC)


def _jobs(settings: config.Settings) -> dict[str, dict[str, Any]]:
    """The conversion Job and one profiling Job per pool of the example."""
    price = Decimal("0.5")
    cpu = next(p for p in CATALOGUE.pools if not p.is_gpu)
    jobs = {
        "convert": manifests.convert_job(
            owner=OWNER, spec=SPEC, digest=DIGEST, pool=cpu, price_per_hour=price, settings=settings
        )
    }
    for name in SPEC.serving.pools:
        pool = CATALOGUE.get(name)
        assert pool is not None
        jobs[f"profile-{name}"] = manifests.profile_job(
            owner=OWNER, spec=SPEC, digest=DIGEST, pool=pool, price_per_hour=price, settings=settings
        )
    return jobs


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's meaning (matchLabels and the In/NotIn/Exists/DoesNotExist expressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@pytest.mark.parametrize("store", ["pvc", "s3"])
def test_every_job_pod_runs_without_token_root_capabilities_or_writable_root(store: str) -> None:
    for job in _jobs(config.Settings(artifact_store=store)).values():
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert job["spec"]["activeDeadlineSeconds"] == config.Settings().job_deadline_seconds
        assert job["spec"]["backoffLimit"] == 0
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"


def test_the_conversion_job_is_limited_in_cpu_memory_and_scratch_space() -> None:
    settings = config.Settings(converter_cpu_request="1500m", converter_ephemeral_storage="3Gi")
    job = _jobs(settings)["convert"]
    pod = job["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "1500m", "memory": "8Gi", "ephemeral-storage": "3Gi"}
    assert resources["requests"]["ephemeral-storage"] == "3Gi"
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {"sizeLimit": "3Gi"}
    skipped = {v.split("=")[0] for k, v in job["metadata"]["annotations"].items() if k.startswith("checkov")}
    assert "CKV_K8S_11" not in skipped  # a CPU limit, so nothing to explain


def test_profiling_jobs_have_no_cpu_limit_and_say_why() -> None:
    profiles = [j for name, j in _jobs(config.Settings()).items() if name.startswith("profile")]
    assert profiles
    for job in profiles:
        limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert "cpu" not in limits
        assert {"memory", "ephemeral-storage"} <= limits.keys()
        reasons = dict(v.split("=", 1) for k, v in job["metadata"]["annotations"].items() if "checkov" in k)
        assert "skew the latency" in reasons["CKV_K8S_11"]


def test_the_network_policy_selects_every_job_pod_and_no_triton_pod() -> None:
    settings = config.Settings()
    policy = manifests.converter_network_policy(namespace="ml", settings=settings)
    selector = policy["spec"]["podSelector"]
    for name, job in _jobs(settings).items():
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert _selects(selector, labels), name
        assert job["metadata"]["namespace"] == policy["metadata"]["namespace"]
    assert not _selects(selector, names.labels("minilm", "triton"))
    # Nothing in, nothing out: a rule-less policy of both types denies all.
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == []
    assert "ownerReferences" not in policy["metadata"]  # shared by every model of the namespace


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "to": st.just([{"ipBlock": {"cidr": "10.0.5.20/32"}}]),
                "ports": st.lists(
                    st.fixed_dictionaries(
                        {"port": st.integers(1, 65535), "protocol": st.sampled_from(["TCP", "UDP"])}
                    ),
                    min_size=1,
                    max_size=3,
                ),
            }
        ),
        max_size=3,
    )
)
def test_the_chart_egress_rules_reach_the_policy_unchanged(rules: list[dict[str, Any]]) -> None:
    # As the chart passes them: JSON in THRIFTY_CONVERTER_EGRESS.
    settings = config.Settings.model_validate({"converter_egress": json.loads(json.dumps(rules))})
    policy = manifests.converter_network_policy(namespace="ml", settings=settings)
    assert policy["spec"]["egress"] == rules


def test_without_the_policy_jobs_explain_the_missing_network_policy() -> None:
    for job in _jobs(config.Settings(converter_network_policy=False)).values():
        reasons = dict(v.split("=", 1) for k, v in job["metadata"]["annotations"].items() if "checkov" in k)
        assert "CKV2_K8S_6" in reasons
    for job in _jobs(config.Settings()).values():
        reasons = dict(v.split("=", 1) for k, v in job["metadata"]["annotations"].items() if "checkov" in k)
        assert "CKV2_K8S_6" not in reasons


def test_the_chart_passes_the_sandbox_values_and_grants_only_what_the_policy_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.5.20/32"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}]
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump({"converter": {"ephemeralStorage": "7Gi", "networkPolicy": {"egress": egress}}})
    )
    rendered = chart.render(release="t", namespace="thrifty-system", values_files=[values])
    deployment = chart.one(rendered, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name, value in env.items():
        if name.startswith("THRIFTY_CONVERTER") and value is not None:
            monkeypatch.setenv(name, value)
    settings = config.Settings()
    assert settings.converter_ephemeral_storage == "7Gi"
    assert settings.converter_network_policy is True
    assert settings.converter_egress == egress
    rules = chart.operator_rbac_rules(rendered)
    policy_rule = {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "patch"],
    }
    assert policy_rule in rules
    off = chart.render(release="t", set_values={"converter.networkPolicy.enabled": "false"})
    assert all("networking.k8s.io" not in r["apiGroups"] for r in chart.operator_rbac_rules(off))
