"""The images `make images` built from the Dockerfile: who they run as, what they start, what they hold.

Reads the OCI archives themselves (every layer, unpacked), so what is checked is what the node runs.
"""

from __future__ import annotations

import base64
import json
import pathlib
import tarfile
from typing import Any

import pytest

from thrifty_testbed import images

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
ENTRYPOINTS = {"operator": "kopf", "converter": "thrifty-convert", "triton-cpu": "tritonserver"}
LOCAL_CAS = pathlib.Path("/usr/local/share/ca-certificates")
SMALL = 4 << 20  # certificates and CA bundles are far smaller; larger files are libraries and weights


def _record(target: str) -> dict[str, Any]:
    record = images.load_record()
    assert target in record, "run `make images` first (make test does)"
    return record[target]


def _config(tar: tarfile.TarFile) -> dict[str, Any]:
    manifest = images.manifest_of(tar)
    member = tar.extractfile(f"blobs/sha256/{manifest['config']['digest'][7:]}")
    assert member is not None
    config: dict[str, Any] = json.load(member)
    return config


def _needles() -> list[bytes]:
    """A distinctive line of every machine-local CA (the egress proxy's among them): in base64, as a PEM
    holds it, and the raw DER bytes it encodes, as a binary store would."""
    needles: list[bytes] = []
    for cert in sorted(LOCAL_CAS.glob("*.crt")):
        body = [line for line in cert.read_text().splitlines() if line and not line.startswith("-----")]
        line = body[len(body) // 2]
        needles += [line.encode(), base64.b64decode(line)]
    return needles


@pytest.mark.parametrize("target", images.TARGETS)
def test_image_runs_unprivileged_with_an_exec_form_entrypoint(target: str) -> None:
    with tarfile.open(_record(target)["archive"]) as tar:
        config = _config(tar)["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][0] == ENTRYPOINTS[target]
    # Nothing of the build's secret set-up reaches the image's environment.
    assert not any(e.startswith("SSL_CERT_FILE=") for e in config.get("Env", []))


@pytest.mark.parametrize("target", images.TARGETS)
def test_no_layer_holds_the_build_secret_or_a_local_ca(target: str) -> None:
    needles = _needles()
    bundle = images.ca_bundle()
    if needles and bundle is not None:
        # The needles do find the CAs in what the build was given as its secret.
        assert any(needle in bundle.read_bytes() for needle in needles)
    found: list[str] = []
    files = 0
    with tarfile.open(_record(target)["archive"]) as tar:
        for descriptor in images.manifest_of(tar)["layers"]:
            with images.layer(tar, descriptor) as stream, tarfile.open(fileobj=stream, mode="r|") as layer:
                for entry in layer:
                    if entry.name.lstrip("./").startswith("run/secrets"):
                        found.append(entry.name)
                    if not entry.isfile() or entry.size > SMALL:
                        continue
                    files += 1
                    data = layer.extractfile(entry).read()  # type: ignore[union-attr]
                    found += [entry.name for needle in needles if needle in data]
    assert files > 100, "the layers were not read"
    assert found == [], f"{target} holds the build's CA or secret in {found}"


def test_operator_image_is_small_and_has_no_torch() -> None:
    record = _record("operator")
    assert int(record["size"]) <= 250e6, f"operator image is {int(record['size']) / 1e6:.0f} MB"
    with tarfile.open(record["archive"]) as tar:
        for descriptor in images.manifest_of(tar)["layers"]:
            with images.layer(tar, descriptor) as stream, tarfile.open(fileobj=stream, mode="r|") as layer:
                names = [entry.name for entry in layer]
                assert not [n for n in names if "site-packages/torch/" in n]
