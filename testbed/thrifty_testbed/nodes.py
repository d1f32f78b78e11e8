"""The simulated node pools: four GPU nodes and four CPU nodes, labelled and tainted like a cloud's.

KWOK manages these Nodes (heartbeats, readiness) and, by default, their pods. Allocatable figures are those
of real instance types (AWS g6.2xlarge: one NVIDIA L4; c7i.2xlarge), after kubelet reservations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

POOL_LABEL = "karpenter.sh/nodepool"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
# On simulated CPU nodes beside the real node: only pods that ask for a simulated node land there.
SIMULATED_TAINT = {"key": KWOK_ANNOTATION, "value": "fake", "effect": "NoSchedule"}


@dataclass(frozen=True, kw_only=True)
class NodePool:
    """A group of identical simulated nodes."""

    name: str
    instance_type: str
    count: int
    allocatable: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()


GPU_POOL = NodePool(
    name="gpu-l4",
    instance_type="g6.2xlarge",
    count=4,
    allocatable={
        "cpu": "7910m",
        "memory": "30310Mi",
        "ephemeral-storage": "95Gi",
        "pods": "110",
        "nvidia.com/gpu": "1",
    },
    labels={
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-L4",
        "nvidia.com/gpu.count": "1",
        "nvidia.com/gpu.memory": "23034",
    },
    taints=(GPU_TAINT,),
)

CPU_POOL = NodePool(
    name="cpu-c7i",
    instance_type="c7i.2xlarge",
    count=4,
    allocatable={"cpu": "7910m", "memory": "14901Mi", "ephemeral-storage": "95Gi", "pods": "110"},
)

POOLS: tuple[NodePool, ...] = (GPU_POOL, CPU_POOL)


def node_manifest(pool: NodePool, index: int, zone: str = "us-east-1a") -> dict[str, Any]:
    """One KWOK-managed Node of `pool`."""
    name = f"{pool.name}-{index}"
    labels = {
        "type": "kwok",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": pool.instance_type,
        "topology.kubernetes.io/region": zone[:-1],
        "topology.kubernetes.io/zone": zone,
        POOL_LABEL: pool.name,
        **pool.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"providerID": f"kwok://{name}", "taints": [dict(t) for t in pool.taints]},
        "status": {
            "allocatable": dict(pool.allocatable),
            "capacity": dict(pool.allocatable),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def all_nodes() -> list[dict[str, Any]]:
    """Every Node of every pool."""
    return [node_manifest(pool, i) for pool in POOLS for i in range(pool.count)]
