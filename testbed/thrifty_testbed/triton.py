"""A tritonserver process for tests: start it on a model repository, wait until ready, stop it cleanly.

The binary, its libraries and the Python-backend stub come from the nvidia-pytriton wheel, located and
prepared by `thrifty_converters.triton.distribution` (the same code the `triton-cpu` image's launcher runs).
Each server binds the address it is given, on its own ports, with its own shared-memory prefix, so that
several can run side by side on one host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from thrifty_converters.triton.distribution import (
    TritonDistribution,
    find_tritonserver,
    prepare_backends,
    server_env,
)
from thrifty_converters.triton.errors import ServerError

from .ports import free_port

LOGGER = logging.getLogger(__name__)

ModelControlMode = Literal["none", "explicit", "poll"]
_LOG_TAIL_BYTES = 6000
_SHM_PREFIX_KEY = "shm-region-prefix-name="


@dataclasses.dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Where one tritonserver listens; `host` may be any local address, e.g. 127.0.0.5.

    Attributes:
        host: Address all three endpoints bind to.
        http_port: KServe v2 HTTP/REST port.
        grpc_port: KServe v2 gRPC port.
        metrics_port: Prometheus `/metrics` port.
    """

    host: str = "127.0.0.1"
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def http_url(self) -> str:
        """host:port for `tritonclient.http.InferenceServerClient`."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """host:port for `tritonclient.grpc.InferenceServerClient`."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus endpoint."""
        return f"http://{self.host}:{self.metrics_port}/metrics"


def free_endpoints(host: str = "127.0.0.1") -> Endpoints:
    """Endpoints on `host` at three ports that `ports.free_port` finds free right now (on 127.0.0.1)."""
    return Endpoints(host=host, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())


def server_command(
    distribution: TritonDistribution,
    model_repository: Path,
    endpoints: Endpoints,
    backend_directory: Path,
    *,
    model_control_mode: ModelControlMode = "explicit",
    load_models: Sequence[str] = ("*",),
    exit_timeout_secs: int = 10,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The tritonserver command line.

    Args:
        distribution: Where the binary is.
        model_repository: The repository to serve.
        endpoints: Address and ports; all three endpoints bind to `endpoints.host`.
        backend_directory: From `distribution.prepare_backends`.
        model_control_mode: "explicit" loads `load_models` at start-up and then only on API calls.
        load_models: Models loaded at start-up in explicit mode; "*" loads all.
        exit_timeout_secs: How long SIGTERM waits for in-flight requests and open client connections.
        extra_args: Appended verbatim, e.g. ["--log-verbose=1"].
    """
    # The python backend names its shared-memory regions with this prefix; concurrent servers on one
    # host must not share it.
    shm_prefix = f"thrifty{os.getpid()}p{endpoints.http_port}_"
    args = [
        str(distribution.binary),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_directory}",
        f"--cache-directory={distribution.caches_dir}",
        f"--model-control-mode={model_control_mode}",
        f"--http-address={endpoints.host}",
        f"--http-port={endpoints.http_port}",
        f"--grpc-address={endpoints.host}",
        f"--grpc-port={endpoints.grpc_port}",
        f"--metrics-address={endpoints.host}",
        f"--metrics-port={endpoints.metrics_port}",
        "--allow-gpu-metrics=false",
        f"--backend-config=python,{_SHM_PREFIX_KEY}{shm_prefix}",
        f"--exit-timeout-secs={exit_timeout_secs}",
    ]
    if model_control_mode == "explicit":
        args += [f"--load-model={name}" for name in load_models]
    return [*args, *extra_args]


# Loopback endpoints must never go through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, timeout: float) -> int:
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return 0


def fetch_metrics(endpoints: Endpoints, timeout: float = 5.0) -> str:
    """The Prometheus text exposition from `endpoints.metrics_url`, bypassing any proxy.

    Raises:
        ServerError: The endpoint did not answer.
    """
    try:
        with _DIRECT.open(endpoints.metrics_url, timeout=timeout) as response:
            return bytes(response.read()).decode("utf-8")
    except (urllib.error.URLError, OSError) as e:
        raise ServerError(f"metrics endpoint {endpoints.metrics_url} did not answer: {e}") from e


class TritonServer:
    """One tritonserver process; a context manager that stops it on exit.

    The log goes to `log_path`; readiness is polled on `/v2/health/ready` (with the default
    `--strict-readiness`, ready means every loaded model is ready).
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str], endpoints: Endpoints, log_path: Path):
        self.command = list(command)
        self.env = dict(env)
        self.endpoints = endpoints
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id while started."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Launch the process in its own session, so that stop() also reaches its Python stubs."""
        if self._process is not None:
            raise ServerError("tritonserver already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        LOGGER.info(
            "tritonserver pid %d on %s, log %s", self._process.pid, self.endpoints.http_url, self.log_path
        )

    def log_tail(self) -> str:
        """The last few kilobytes of the server log."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-_LOG_TAIL_BYTES:].decode("utf-8", errors="replace")

    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, timeout: float = 60.0, models: Sequence[str] = ()) -> None:
        """Block until the server, and each of `models`, reports ready.

        Raises:
            ServerError: The process exited, or `timeout` seconds passed; carries the log tail.
        """
        base = f"http://{self.endpoints.http_url}"
        urls = [f"{base}/v2/health/ready", *(f"{base}/v2/models/{name}/ready" for name in models)]
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                code = self._process.returncode if self._process else None
                raise ServerError(f"tritonserver exited with code {code} before ready", self.log_tail())
            if all(_get(url, timeout=2.0) == 200 for url in urls):
                return
            if time.monotonic() > deadline:
                raise ServerError(f"tritonserver not ready after {timeout:.0f}s", self.log_tail())
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL the process group after `timeout`.

        Returns:
            The exit code, or None if never started.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                LOGGER.warning("tritonserver pid %d ignored SIGTERM; killing its process group", process.pid)
        # Stubs outliving a crashed server would hold shared memory; the group is ours alone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
        self._remove_shared_memory()
        return code

    def _remove_shared_memory(self) -> None:
        # A server that hits its exit timeout exits without unlinking the stubs' regions in /dev/shm.
        prefixes = [arg.split(_SHM_PREFIX_KEY, 1)[1] for arg in self.command if _SHM_PREFIX_KEY in arg]
        for prefix in prefixes:
            for region in Path("/dev/shm").glob(f"{prefix}*"):  # noqa: S108 - POSIX shm lives there
                with contextlib.suppress(OSError):
                    region.unlink()

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def run_server(
    model_repository: Path,
    workdir: Path,
    endpoints: Endpoints | None = None,
    *,
    model_control_mode: ModelControlMode = "explicit",
    load_models: Sequence[str] = ("*",),
    extra_args: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> Iterator[TritonServer]:
    """Start tritonserver on `model_repository`, wait until ready, yield it, and stop it.

    Args:
        model_repository: Repository to serve.
        workdir: Holds the prepared backends and `tritonserver.log`.
        endpoints: Address and ports; default: free ports on 127.0.0.1.
        model_control_mode: See `server_command`.
        load_models: Models to load at start-up (explicit mode) and to wait for; "*" means all.
        extra_args: Extra tritonserver flags.
        ready_timeout: Seconds to wait for readiness.

    Raises:
        ServerError: The server failed to start or become ready.
    """
    distribution = find_tritonserver()
    endpoints = endpoints or free_endpoints()
    backends = prepare_backends(distribution, workdir)
    command = server_command(
        distribution,
        model_repository,
        endpoints,
        backends,
        model_control_mode=model_control_mode,
        load_models=load_models,
        extra_args=extra_args,
    )
    server = TritonServer(command, server_env(distribution), endpoints, workdir / "tritonserver.log")
    with server:
        server.start()
        server.wait_ready(ready_timeout, models=[m for m in load_models if m != "*"])
        yield server
