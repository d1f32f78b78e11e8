"""A dynamic volume provisioner for the local cluster, like kind's local-path provisioner.

No real storage exists behind KWOK's nodes, yet the scheduler only places pods whose claims are bound. This
loop binds every pending claim of the default StorageClass to a new hostPath PersistentVolume whose path is
`<state root>/volumes/<namespace>/<claim>`: the folder the real node's kubelet mounts for that claim.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import time
from typing import Any

import kubernetes
from kubernetes.client import CoreV1Api, StorageV1Api
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
STORAGE_CLASS = "local"
PROVISIONER = "testbed.thrifty.dev/hostpath"


def storage_class() -> dict[str, Any]:
    """The cluster's default StorageClass."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def volume_for(claim: dict[str, Any], root: pathlib.Path) -> dict[str, Any]:
    """A hostPath PersistentVolume pre-bound to `claim`."""
    meta = claim["metadata"]
    folder = root / "volumes" / meta["namespace"] / meta["name"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": claim["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def provision_once(core: CoreV1Api, root: pathlib.Path) -> int:
    """Create volumes for pending claims of our class; return how many were created."""
    created = 0
    claims = core.api_client.sanitize_for_serialization(
        core.list_persistent_volume_claim_for_all_namespaces()
    )["items"]
    for claim in claims:
        if (
            claim.get("status", {}).get("phase") != "Pending"
            or claim["spec"].get("storageClassName") != STORAGE_CLASS
        ):
            continue
        if claim["spec"].get("volumeName"):
            continue
        pv = volume_for(claim, root)
        folder = pathlib.Path(pv["spec"]["hostPath"]["path"])
        folder.mkdir(parents=True, exist_ok=True)
        # Pods run as an unprivileged user and hostPath volumes ignore fsGroup: open the folder to them.
        folder.chmod(0o777)
        try:
            core.create_persistent_volume(pv)  # type: ignore[arg-type]
            created += 1
            log.info(
                "provisioned %s for %s/%s",
                pv["metadata"]["name"],
                claim["metadata"]["namespace"],
                claim["metadata"]["name"],
            )
        except ApiException as err:
            if err.status != 409:
                raise
    return created


def run(kubeconfig: pathlib.Path, root: pathlib.Path, interval: float = 1.0) -> None:
    """Install the StorageClass, then provision forever."""
    client = kubernetes.config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    storage = StorageV1Api(client)
    try:
        storage.create_storage_class(storage_class())  # type: ignore[arg-type]
    except ApiException as err:
        if err.status != 409:
            raise
    core = CoreV1Api(client)
    while True:
        try:
            provision_once(core, root)
        except (ApiException, OSError) as err:
            log.warning("provisioning failed, retrying: %s", err)
        time.sleep(interval)


def main() -> None:
    """`python -m thrifty_testbed.provisioner --kubeconfig K --root R`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--root", type=pathlib.Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # hostPath volumes must be absolute: pods resolve paths from their own working directories.
    run(args.kubeconfig, args.root.resolve())


if __name__ == "__main__":
    main()
