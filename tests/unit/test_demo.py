"""`make demo`'s pure parts: the manifest it applies and the request it sends."""

from __future__ import annotations

import numpy as np

from thrifty_api import optimized_model as models
from thrifty_testbed import demo


def test_demo_manifest_reads_the_model_from_its_volume_serves_the_local_image_and_trims_variants() -> None:
    manifest = demo.model_manifest(all_variants=False, triton_image="localhost/thrifty/triton-cpu:abc")
    assert manifest["metadata"] == {**manifest["metadata"], "name": demo.MODEL, "namespace": demo.NAMESPACE}
    assert manifest["spec"]["source"]["uri"] == f"pvc://{demo.MODELS_CLAIM}/minilm/model.pt"
    assert manifest["spec"]["serving"]["tritonImage"] == "localhost/thrifty/triton-cpu:abc"
    assert manifest["spec"]["serving"]["resources"]["requests"] == demo.TRITON_REQUESTS
    assert manifest["spec"]["optimization"]["variants"] == demo.QUICK_VARIANTS
    # What the demo applies is a valid OptimizedModel.
    models.OptimizedModelSpec.model_validate(manifest["spec"])


def test_demo_manifest_keeps_the_examples_variants_when_asked() -> None:
    variants = demo.model_manifest(all_variants=True, triton_image="x")["spec"]["optimization"]["variants"]
    assert set(demo.QUICK_VARIANTS) < set(variants)


def test_demo_json_request_and_answer_round_trip_the_tensors() -> None:
    feed = {
        "input_ids": np.array([[101, 7, 102]], dtype=np.int64),
        "attention_mask": np.ones((1, 3), np.int64),
    }
    request = demo.infer_request(feed, "sentence_embedding")
    assert [i["shape"] for i in request["inputs"]] == [[1, 3], [1, 3]]
    assert request["inputs"][0]["data"] == [101, 7, 102]
    answer = {"outputs": [{"name": "sentence_embedding", "shape": [1, 2], "data": [0.6, 0.8]}]}
    assert demo.embeddings_of(answer, "sentence_embedding").tolist() == [[np.float32(0.6), np.float32(0.8)]]
