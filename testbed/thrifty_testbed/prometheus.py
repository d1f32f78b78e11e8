"""A real Prometheus (built from the pinned Go module) that discovers and scrapes Thrifty's pods.

It finds pods through the local API server (Kubernetes pod discovery, as in a real cluster) and keeps the
`metrics` port of every Triton pod (in every namespace, or the ones given) and of the chart's operator pod
(in the release's namespace). Every series carries `namespace` and `pod`, the labels the operator's
Prometheus load source selects on by default, and `job`: `triton` or `thrifty-operator`. The operator's
per-model series keep their own `namespace` (the model's), as the chart's ServiceMonitor keeps it with
`honorLabels`. The node's bridge CNI enforces no NetworkPolicy, so the chart's policy for the operator's
metrics port does not stop this Prometheus.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import yaml

from .cluster import DEFAULT_BIN_DIR
from .ports import free_port

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
OPERATOR_NAMESPACE = "thrifty-system"  # the demo's release namespace (thrifty_testbed.demo)


def _pods(
    job: str,
    kubeconfig: pathlib.Path,
    namespaces: Sequence[str] | None,
    component: str,
    honor_labels: bool = False,
) -> dict[str, Any]:
    """A scrape job for the `metrics` port of running pods labelled with `component`, in `namespaces` (None:
    every namespace), labelled `namespace` and `pod` (unless a series has its own, with `honor_labels`)."""
    discovery: dict[str, Any] = {"role": "pod", "kubeconfig_file": str(kubeconfig)}
    if namespaces is not None:
        discovery["namespaces"] = {"names": list(namespaces)}
    return {
        "job_name": job,
        "honor_labels": honor_labels,
        "kubernetes_sd_configs": [discovery],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                "regex": component,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": "metrics",
                "action": "keep",
            },
            # A finished pod keeps its IP in the API, and another pod may have it by now.
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Succeeded|Failed", "action": "drop"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def scrape_config(
    kubeconfig: pathlib.Path,
    namespaces: Sequence[str] | None,
    interval: str,
    operator_namespace: str | None = OPERATOR_NAMESPACE,
) -> dict[str, Any]:
    """prometheus.yml: Triton pods of `namespaces` (None: every namespace) and, unless `operator_namespace` is
    None, the chart's operator pods there, all discovered through the API server."""
    jobs = [_pods("triton", kubeconfig, namespaces, "triton")]
    if operator_namespace is not None:
        # The per-model series' `namespace` is the model's, not the operator pod's: it must win.
        jobs.append(
            _pods("thrifty-operator", kubeconfig, [operator_namespace], "operator", honor_labels=True)
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


class LocalPrometheus:
    """`with LocalPrometheus(kubeconfig, namespaces, work) as prom:` runs Prometheus on `prom.url`."""

    def __init__(
        self,
        kubeconfig: pathlib.Path,
        namespaces: str | Sequence[str] | None,
        work: pathlib.Path,
        interval: str = "2s",
        bin_dir: pathlib.Path = DEFAULT_BIN_DIR,
        operator_namespace: str | None = OPERATOR_NAMESPACE,
    ) -> None:
        """Prepare a Prometheus scraping the Triton pods of `namespaces` (one, several, or None: every
        namespace) and the operator pods of `operator_namespace` every `interval`, state under `work`."""
        self._binary = bin_dir / "prometheus"
        self._work = work
        watched = [namespaces] if isinstance(namespaces, str) else namespaces
        self._config = scrape_config(kubeconfig, watched, interval, operator_namespace)
        self._port = free_port()
        self.url = f"http://127.0.0.1:{self._port}"
        self.log = work / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalPrometheus:
        if not self._binary.exists():
            raise FileNotFoundError(f"{self._binary} is missing: run `make binaries` (tools/build.sh)")
        self._work.mkdir(parents=True, exist_ok=True)
        config = self._work / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config, sort_keys=False))
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(self._binary),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self._port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}: see {self.log}")
            try:
                with _NO_PROXY.open(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise TimeoutError(f"prometheus not ready within 30 s: see {self.log}")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
