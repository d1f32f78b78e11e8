"""`make demo`'s pure parts: the manifest it applies and the settings it gives the operator."""

from __future__ import annotations

from thrifty_testbed import demo


def test_demo_manifest_points_at_the_exported_model_and_trims_variants() -> None:
    manifest = demo.model_manifest(all_variants=False)
    assert manifest["metadata"] == {**manifest["metadata"], "name": demo.MODEL, "namespace": demo.NAMESPACE}
    assert manifest["spec"]["source"]["uri"] == f"file://{demo.MODEL_FILE}"
    assert demo.MODEL_FILE.is_absolute()
    assert manifest["spec"]["optimization"]["variants"] == demo.QUICK_VARIANTS


def test_demo_manifest_keeps_the_examples_variants_when_asked() -> None:
    variants = demo.model_manifest(all_variants=True)["spec"]["optimization"]["variants"]
    assert set(demo.QUICK_VARIANTS) < set(variants)


def test_demo_operator_settings_come_from_the_charts_local_values() -> None:
    values = demo.local_values()
    assert values["triton"]["backendMode"] == "python"
    assert values["extraPodLabels"] == {"testbed.thrifty.dev/kubelet": "local"}
