"""Thrifty's Helm chart through the testbed's helm binary: rendered manifests and the operator's RBAC.

Tests render the chart instead of copying its objects, so a test that runs the operator with the chart's
ServiceAccount (and nothing more) checks the chart's least-privilege rules:

    manifests = chart.operator_rbac_manifests(namespace="t-123", release="e2e")
    cluster.kubectl("apply", "-f", "-", input_text=chart.dump(manifests))
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from .cluster import DEFAULT_BIN_DIR, REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "thrifty"
LOCAL_VALUES = CHART_DIR / "ci" / "local-values.yaml"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")

Manifest = dict[str, Any]


class ChartError(RuntimeError):
    """helm failed; the message carries its output."""


def helm(
    *args: str,
    kubeconfig: pathlib.Path | None = None,
    bin_dir: pathlib.Path = DEFAULT_BIN_DIR,
    check: bool = True,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run the testbed's helm (against `kubeconfig` when given)."""
    command = [str(bin_dir / "helm"), *args]
    if kubeconfig is not None:
        command.append(f"--kubeconfig={kubeconfig}")
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost,::1", no_proxy="127.0.0.1,localhost,::1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise ChartError(f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def value_args(
    values_files: Iterable[pathlib.Path] = (), set_values: Mapping[str, str] | None = None
) -> list[str]:
    """`-f` and `--set` arguments for helm."""
    args: list[str] = []
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def render(
    release: str = "thrifty",
    namespace: str = "thrifty-system",
    values_files: Sequence[pathlib.Path] = (),
    set_values: Mapping[str, str] | None = None,
    bin_dir: pathlib.Path = DEFAULT_BIN_DIR,
) -> list[Manifest]:
    """Every object `helm template` renders, in order."""
    result = helm(
        "template",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        *value_args(values_files, set_values),
        bin_dir=bin_dir,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def select(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    """The manifests of one kind."""
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    """The only manifest of `kind`; fails when there is none or more than one."""
    found = select(manifests, kind)
    if len(found) != 1:
        raise ChartError(f"expected one {kind}, the chart rendered {len(found)}")
    return found[0]


def operator_rbac_rules(manifests: Iterable[Manifest] | None = None) -> list[dict[str, list[str]]]:
    """The PolicyRules of the operator's ClusterRole, as the chart renders them."""
    role = one(render() if manifests is None else manifests, "ClusterRole")
    rules: list[dict[str, list[str]]] = role["rules"]
    return rules


def operator_rbac_manifests(
    namespace: str, release: str = "thrifty", bin_dir: pathlib.Path = DEFAULT_BIN_DIR
) -> list[Manifest]:
    """The chart's ServiceAccount (in `namespace`), ClusterRole and ClusterRoleBinding, nothing else.

    The cluster-scoped names derive from `release`: use a unique one per test and delete them afterwards.
    """
    manifests = render(release=release, namespace=namespace, bin_dir=bin_dir)
    return [m for m in manifests if m["kind"] in RBAC_KINDS]


def dump(manifests: Iterable[Manifest]) -> str:
    """Manifests as one multi-document YAML stream (for `kubectl apply -f -`)."""
    return yaml.safe_dump_all(list(manifests), sort_keys=False)
