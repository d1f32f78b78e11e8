"""A real Prometheus (built from the pinned Go module) that discovers and scrapes Thrifty's Triton pods.

It finds pods through the local API server (Kubernetes pod discovery, as in a real cluster), keeps the
Triton pods' `metrics` ports and labels every series with `namespace` and `pod`, the labels the
operator's Prometheus load source selects on by default.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

import yaml

from .cluster import DEFAULT_BIN_DIR
from .ports import free_port

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape_config(kubeconfig: pathlib.Path, namespace: str, interval: str) -> dict[str, Any]:
    """prometheus.yml: Triton pods of `namespace`, discovered through the API server."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "triton",
                "kubernetes_sd_configs": [
                    {"role": "pod", "kubeconfig_file": str(kubeconfig), "namespaces": {"names": [namespace]}}
                ],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                        "regex": "triton",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "metrics",
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }


class LocalPrometheus:
    """`with LocalPrometheus(kubeconfig, namespace, work) as prom:` runs Prometheus on `prom.url`."""

    def __init__(
        self,
        kubeconfig: pathlib.Path,
        namespace: str,
        work: pathlib.Path,
        interval: str = "2s",
        bin_dir: pathlib.Path = DEFAULT_BIN_DIR,
    ) -> None:
        """Prepare a Prometheus scraping `namespace`'s Triton pods every `interval`, state under `work`."""
        self._binary = bin_dir / "prometheus"
        self._work = work
        self._config = scrape_config(kubeconfig, namespace, interval)
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
