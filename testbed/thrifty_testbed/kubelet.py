"""A kubelet stand-in that runs Thrifty's own pods, once bound to a KWOK node, as local processes.

KWOK nodes run no containers and KWOK's pod stages skip pods labelled `LOCAL_KUBELET_LABEL`, so those
stay Pending after scheduling until this harness plays kubelet for them: it gives each pod a loopback
address (127.0.1.x) as its pod IP, runs each container's command, arguments and environment as a local
process group, emulates volumes by rewriting paths, runs the real tritonserver from the nvidia-pytriton
wheel for Triton containers, probes readiness, and reflects all of it in the pod status. Deletion is
finished as a kubelet does: SIGTERM, SIGKILL after the grace period, then a delete with grace 0.

Volumes are emulated by path rewriting: an argument, an environment value or the working directory
that equals a mountPath or starts with `<mountPath>/` (also the value of `--flag=<path>`) is replaced
with a local folder. Paths hard-coded anywhere else (inside `python -c` code, say) are not rewritten.
A claim maps to its bound PersistentVolume's hostPath (the testbed provisioner makes
`.testbed/volumes/<namespace>/<claim>`), otherwise to `<state_root>/volumes/<namespace>/<claim>`;
emptyDir, configMap, secret and downwardAPI volumes to folders under `<state_root>/pods/<ns>/<pod>/`.

Several harnesses may share one cluster (one per engineer or test): each claims a pod with an
annotation before running it and ignores pods that another instance claimed.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import kubernetes
import urllib3

from . import cluster

log = logging.getLogger(__name__)

Pod = dict[str, Any]
Spec = dict[str, Any]

LABEL = cluster.LOCAL_KUBELET_LABEL
# Label value that holds a pod Pending: KWOK skips it (the label is set) and this harness leaves it too,
# for tests that need a pod which never runs (a long conversion, say).
HOLD_VALUE = "none"
CLAIM_ANNOTATION = "testbed.thrifty.dev/kubelet-instance"
DEFAULT_STATE_ROOT = cluster.REPO_ROOT / ".testbed"
HOST_IP = "127.0.0.1"
# Shared by every harness on this machine, so that two of them never hand out the same pod IP.
IP_LOCK_DIR = pathlib.Path(tempfile.gettempdir()) / "thrifty-kubelet-ips"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MESSAGE_LIMIT = 4096  # bytes, as the kubelet
FALLBACK_LOG_LINES = 80  # lines, as the kubelet
TRITON_DEFAULT_PORTS = (8000, 8001, 8002)
TICK_SECONDS = 0.25
MAX_PROBE_PERIOD = 2.0  # faster than a real kubelet's default 10 s: tests wait less, nothing breaks
MAX_BACKOFF = 10.0
# Containers start with an almost empty environment, as in a real container; these keep tools working.
PASSED_ENV = ("HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "NO_PROXY", "no_proxy")


class PodConfigError(RuntimeError):
    """A pod cannot start yet: a referenced Secret or ConfigMap is missing (CreateContainerConfigError)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _venv_bins() -> list[str]:
    """`bin/` of this interpreter's environment and of the repository's venv, so console scripts resolve."""
    bins = [pathlib.Path(sys.prefix) / "bin", cluster.REPO_ROOT / ".venv" / "bin"]
    return list(dict.fromkeys(str(b) for b in bins if b.is_dir()))


# ---------------------------------------------------------------------------------------- pod IPs


class IpAllocator:
    """Hands out 127.0.1.1, 127.0.1.2, ... guarded by flock files that every local harness shares.

    The search continues after the last address handed out, so that a replacement pod does not take
    over the address of the pod it replaces while clients may still talk to that one.
    """

    _SIZE = 254 * 254  # 127.0.1.1 .. 127.0.254.254

    def __init__(self, lock_dir: pathlib.Path = IP_LOCK_DIR) -> None:
        self._lock_dir = lock_dir
        self._held: dict[str, int] = {}
        self._next = 0
        self._mutex = threading.Lock()

    def allocate(self, ports: list[int]) -> str:
        """Lock the next free address on which `ports` (TCP) can be bound right now."""
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        with self._mutex:
            for step in range(self._SIZE):
                index = (self._next + step) % self._SIZE
                ip = f"127.0.{index // 254 + 1}.{index % 254 + 1}"
                if ip not in self._held and self._try_lock(ip, ports):
                    self._next = index + 1
                    return ip
        raise RuntimeError("no free loopback address left for pods")

    def _try_lock(self, ip: str, ports: list[int]) -> bool:
        fd = os.open(self._lock_dir / f"{ip}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        if not _binds(ip, ports):
            os.close(fd)
            return False
        self._held[ip] = fd
        return True

    def release(self, ip: str) -> None:
        """Give the address back."""
        with self._mutex:
            fd = self._held.pop(ip, None)
        if fd is not None:
            os.close(fd)


def _binds(ip: str, ports: list[int]) -> bool:
    # Port 0 checks the address itself; real ports catch a stale process still listening there.
    for port in ports or [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ip, port))
            except OSError:
                return False
    return True


# ---------------------------------------------------------------------------------------- paths


@dataclasses.dataclass(frozen=True)
class PathMap:
    """Container paths to local paths; the longest matching container path wins."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, mapping: dict[str, pathlib.Path]) -> PathMap:
        """From {container path: local path}."""
        pairs = sorted(((k.rstrip("/") or "/", str(v)) for k, v in mapping.items()), key=lambda p: -len(p[0]))
        return cls(tuple(pairs))

    def path(self, value: str) -> str:
        """`value` rewritten if it equals or lies under a mapped container path."""
        for inside, local in self.pairs:
            if value == inside:
                return local
            if value.startswith(inside + "/"):
                return local + value[len(inside) :]
        return value

    def arg(self, value: str) -> str:
        """Like `path`, and also the value part of `--flag=<path>`."""
        if value.startswith("-") and "=" in value:
            flag, _, rest = value.partition("=")
            return f"{flag}={self.path(rest)}"
        return self.path(value)


# ---------------------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True)
class Launch:
    """How one run of a container starts: argv, environment and folder, all with local paths."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    paths: PathMap


@dataclasses.dataclass
class Probe:
    """Readiness bookkeeping of one container."""

    spec: Spec | None
    successes: int = 0
    failures: int = 0
    ready: bool = False
    next_at: float = 0.0


@dataclasses.dataclass
class Container:
    """One container of a pod and the process that plays it."""

    spec: Spec
    log_path: pathlib.Path
    termination_path: pathlib.Path
    probe: Probe
    process: subprocess.Popen[bytes] | None = None
    state: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    restart_count: int = 0
    started_once: bool = False
    next_start: float | None = 0.0  # monotonic time of the next (re)start; None: never again
    backoff: float = 1.0
    log_offset: int = 0
    container_id: str = ""  # local://<pid> of the latest run; tests find the process by it
    init: bool = False
    launch: Launch | None = None  # of the latest run; exec probes reuse its environment

    @property
    def succeeded(self) -> bool:
        """Whether its last run ended with exit code 0 and no restart is due."""
        return bool(self.state.get("terminated", {}).get("exitCode") == 0)

    @property
    def failed(self) -> bool:
        """Whether its last run failed and no restart is due."""
        return self.state.get("terminated", {}).get("exitCode", 0) != 0 and self.next_start is None

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any]:
        """Its entry in `status.containerStatuses`."""
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.running and self.probe.ready,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": self.state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        if self.last_state:
            status["lastState"] = self.last_state
        return status


def is_triton(spec: Spec) -> bool:
    """Whether the container runs tritonserver: by its command, or an image of that name without one."""
    command = spec.get("command") or []
    if command:
        return pathlib.Path(command[0]).name == "tritonserver"
    return "tritonserver" in str(spec.get("image", ""))


def container_ports(spec: Spec) -> list[int]:
    """TCP ports the container declares, or Triton's defaults for a Triton container that declares none."""
    ports = [int(p["containerPort"]) for p in spec.get("ports", []) if p.get("protocol", "TCP") == "TCP"]
    if not ports and is_triton(spec):
        ports = list(TRITON_DEFAULT_PORTS)
    return ports


# ---------------------------------------------------------------------------------------- one pod


class PodWorker:
    """Plays kubelet for one pod in its own thread: setup, processes, probes, status, deletion."""

    def __init__(self, kubelet: LocalKubelet, pod: Pod) -> None:
        self.kubelet = kubelet
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.key = f"{self.namespace}/{self.name}"
        self._pod = pod
        self._wake = threading.Event()
        self._gone = False  # the API object is deleted
        self._shutdown = False  # the harness stops
        self.dir = kubelet.state_root / "pods" / self.namespace / self.name
        self.ip: str | None = None
        self.init_containers: list[Container] = []
        self.containers: list[Container] = []
        self._start_time = _now()
        self._transitions: dict[str, tuple[str, str]] = {}
        self._sent: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, name=f"kubelet-{self.key}", daemon=True)

    # -- inputs from the watch thread

    def observe(self, pod: Pod) -> None:
        """A newer version of the pod arrived."""
        self._pod = pod
        self._wake.set()

    def gone(self) -> None:
        """The pod object was deleted: stop everything."""
        self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        """The harness stops: stop processes, leave the pod object as it is."""
        self._shutdown = True
        self._wake.set()

    # -- main loop

    @property
    def _spec(self) -> Spec:
        spec: Spec = self._pod["spec"]
        return spec

    def _run(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s: kubelet worker crashed", self.key)
            self._kill_all(grace=2.0)
        finally:
            self._release_ip()
            self.kubelet.forget(self)

    def _release_ip(self) -> None:
        # The status keeps showing the IP, as a real pod's does after it finished.
        if self.ip:
            self.kubelet.ips.release(self.ip)

    def _lifecycle(self) -> None:
        finished = self._pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        if not finished:
            self._setup()
        while not (self._gone or self._shutdown):
            if self._pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion()
                return
            if not finished:
                finished = self._tick()
            # A finished pod only waits for its deletion, which wakes the worker anyway.
            self._wake.wait(TICK_SECONDS if not finished else 5.0)
            self._wake.clear()
        self._kill_all(grace=5.0 if self._shutdown else 2.0)
        if self._gone:
            self._cleanup()

    def _setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = [port for c in self._spec["containers"] for port in container_ports(c)]
        self.ip = self.kubelet.ips.allocate(ports)
        log.info("pod %s: bound to %s, IP %s", self.key, self._spec.get("nodeName"), self.ip)
        self.init_containers = [self._container(c, init=True) for c in self._spec.get("initContainers", [])]
        self.containers = [self._container(c, init=False) for c in self._spec["containers"]]

    def _container(self, spec: Spec, *, init: bool) -> Container:
        return Container(
            spec=spec,
            log_path=self.dir / f"{spec['name']}.log",
            termination_path=self.dir / f"{spec['name']}.termination-log",
            probe=Probe(spec=None if init else spec.get("readinessProbe")),
            init=init,
        )

    def _tick(self) -> bool:
        """One round of supervising, probing and reporting; True once the pod has finished."""
        now = time.monotonic()
        # Init containers run one at a time, in order, before any regular container starts.
        pending = next((c for c in self.init_containers if not c.succeeded), None)
        if pending is not None:
            self._supervise(pending, now)
        else:
            for container in self.containers:
                self._supervise(container, now)
                self._probe(container, now)
        self._patch_status()
        if self._phase() not in ("Succeeded", "Failed"):
            return False
        self._release_ip()
        return self._sent is not None and self._sent["phase"] == self._phase()  # retry a failed patch

    def _config_failed(self, container: Container, err: PodConfigError) -> None:
        if container.state.get("waiting", {}).get("message") != str(err):
            log.warning("pod %s: container %s: %s", self.key, container.name, err)
        container.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}

    # -- processes

    def _supervise(self, container: Container, now: float) -> None:
        if container.process is not None and container.process.poll() is not None:
            self._on_exit(container, container.process.returncode)
        if container.process is None and container.next_start is not None and now >= container.next_start:
            self._start(container)

    def _start(self, container: Container) -> None:
        try:
            launch = self._launch(container)
        except PodConfigError as err:
            self._config_failed(container, err)
            container.next_start = time.monotonic() + 2.0
            return
        if container.started_once:
            container.restart_count += 1
        container.started_once = True
        container.next_start = None
        container.launch = launch
        if not launch.argv:
            self._record_exit(container, 128, "NoEntrypoint", "images have no entrypoint here: set command")
            return
        container.termination_path.write_bytes(b"")
        container.log_offset = container.log_path.stat().st_size if container.log_path.exists() else 0
        try:
            with container.log_path.open("ab") as out:
                container.process = subprocess.Popen(
                    launch.argv,
                    env=launch.env,
                    cwd=launch.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so signals reach its children
                )
        except OSError as err:
            self._record_exit(container, 128, "StartError", f"{launch.argv[0]}: {err}")
            return
        container.container_id = f"local://{container.process.pid}"
        container.state = {"running": {"startedAt": _now()}}
        log.info("pod %s: container %s started, pid %d", self.key, container.name, container.process.pid)

    def _on_exit(self, container: Container, code: int) -> None:
        log.info("pod %s: container %s exited with %d", self.key, container.name, code)
        reason = "Completed" if code == 0 else "Error"
        self._record_exit(container, code, reason, self._termination_message(container, code))

    def _record_exit(self, container: Container, code: int, reason: str, message: str) -> None:
        started = container.state.get("running", {}).get("startedAt", _now())
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": _now(),
        }
        if container.container_id:
            terminated["containerID"] = container.container_id
        if message:
            terminated["message"] = message
        container.process = None
        container.probe = Probe(spec=container.probe.spec)
        policy = self._spec.get("restartPolicy", "Always")
        if container.init and policy == "Always":
            policy = "OnFailure"  # a succeeded init container never runs again
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            container.last_state = {"terminated": terminated}
            message = f"back-off {container.backoff:.0f}s restarting failed container"
            container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            container.next_start = time.monotonic() + container.backoff
            container.backoff = min(container.backoff * 2, MAX_BACKOFF)
        else:
            container.state = {"terminated": terminated}
        if reason not in ("Completed", "Error"):
            log.info("pod %s: container %s failed to start: %s", self.key, container.name, reason)

    def _termination_message(self, container: Container, code: int) -> str:
        try:
            data = container.termination_path.read_bytes()[-MESSAGE_LIMIT:]
        except OSError:
            data = b""
        policy = container.spec.get("terminationMessagePolicy", "File")
        if not data.strip() and code != 0 and policy == "FallbackToLogsOnError":
            with container.log_path.open("rb") as logfile:
                logfile.seek(container.log_offset)
                lines = logfile.read().splitlines()[-FALLBACK_LOG_LINES:]
            data = b"\n".join(lines)[-MESSAGE_LIMIT:]
        return data.decode("utf-8", errors="replace")

    def _kill_all(self, grace: float) -> None:
        everything = self.init_containers + self.containers
        processes = [c.process for c in everything if c.process is not None and c.process.poll() is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
            # The group may hold children (Triton's Python stubs) even after the leader exited.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for container in everything:
            if container.process is not None:
                self._on_exit(container, container.process.returncode)
            container.next_start = None

    # -- deletion

    def _finish_deletion(self) -> None:
        grace = self._pod["metadata"].get("deletionGracePeriodSeconds", 30)
        log.info("pod %s: deleting (grace %ss)", self.key, grace)
        self._kill_all(grace=float(grace))
        self._cleanup()
        body = kubernetes.client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=self.uid)
        )
        try:
            self.kubelet.core.delete_namespaced_pod(
                self.name, self.namespace, body=body, grace_period_seconds=0
            )
        except kubernetes.client.ApiException as err:
            if err.status not in (404, 409):
                raise
        log.info("pod %s: deleted", self.key)

    def _cleanup(self) -> None:
        # Per-pod volumes go; logs stay for post-mortems; PVC folders outlive the pod as a PVC does.
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)

    # -- status

    def _patch_status(self) -> None:
        status = self._status()
        if status == self._sent:
            return
        try:
            self.kubelet.core.patch_namespaced_pod_status(
                self.name, self.namespace, {"status": status}, _content_type="application/merge-patch+json"
            )
        except kubernetes.client.ApiException as err:
            if err.status == 404:
                self.gone()
                return
            log.warning("pod %s: status patch failed: %s", self.key, err.reason)
            return
        except (urllib3.exceptions.HTTPError, OSError) as err:
            # The API server restarting or briefly unreachable: the next pass sends the status again.
            log.warning("pod %s: status patch failed, will retry: %s", self.key, err)
            return
        if self._sent is None or status["phase"] != self._sent.get("phase"):
            log.info("pod %s: phase %s", self.key, status["phase"])
        self._sent = status

    def _phase(self) -> str:
        if any(c.failed for c in self.init_containers):
            return "Failed"
        if not all(c.succeeded for c in self.init_containers):
            return "Pending"
        if all("terminated" in c.state and c.next_start is None for c in self.containers):
            failed = any(c.state["terminated"]["exitCode"] != 0 for c in self.containers)
            return "Failed" if failed else "Succeeded"
        if any(c.started_once for c in self.containers):
            return "Running"
        return "Pending"

    def _status(self) -> dict[str, Any]:
        phase = self._phase()
        ready = phase == "Running" and all(c.running and c.probe.ready for c in self.containers)
        reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        initialized = all(c.succeeded for c in self.init_containers)
        own = {
            "PodScheduled": ("True", ""),
            "Initialized": ("True", "") if initialized else ("False", "ContainersNotInitialized"),
            "ContainersReady": ("True", "") if ready else ("False", reason),
            "Ready": ("True", "") if ready else ("False", reason),
        }
        conditions = [
            c for c in self._pod.get("status", {}).get("conditions", []) if c.get("type") not in own
        ]
        conditions += [self._condition(kind, value, why) for kind, (value, why) in own.items()]
        assert self.ip is not None
        status = {
            "phase": phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self._start_time,
            "conditions": conditions,
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        return status

    def _condition(self, kind: str, value: str, reason: str) -> dict[str, Any]:
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != value:
            self._transitions[kind] = (value, _now())
        condition = {"type": kind, "status": value, "lastTransitionTime": self._transitions[kind][1]}
        if reason:
            condition["reason"] = reason
        return condition

    # -- readiness

    def _probe(self, container: Container, now: float) -> None:
        probe = container.probe
        if not container.running:
            probe.ready = False
            return
        if probe.spec is None:
            probe.ready = True
            return
        if now < probe.next_at:
            return
        if probe.next_at == 0.0:
            probe.next_at = now + float(probe.spec.get("initialDelaySeconds", 0))
            return
        probe.next_at = now + min(float(probe.spec.get("periodSeconds", 10)), MAX_PROBE_PERIOD)
        ok = self._check(container, probe.spec)
        probe.successes, probe.failures = (probe.successes + 1, 0) if ok else (0, probe.failures + 1)
        was = probe.ready
        if probe.successes >= int(probe.spec.get("successThreshold", 1)):
            probe.ready = True
        elif probe.failures >= int(probe.spec.get("failureThreshold", 3)):
            probe.ready = False
        if probe.ready != was:
            log.info("pod %s: container %s ready=%s", self.key, container.name, probe.ready)

    def _check(self, container: Container, spec: Spec) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1))
        if "httpGet" in spec:
            return self._check_http(container, spec["httpGet"], timeout)
        if "tcpSocket" in spec or "grpc" in spec:
            action = spec.get("tcpSocket") or spec["grpc"]
            host = action.get("host") or self.ip
            try:
                with socket.create_connection((host, self._port(container, action["port"])), timeout):
                    return True
            except OSError:
                return False
        if "exec" in spec and container.launch is not None:
            launch = container.launch
            argv = [launch.paths.arg(a) for a in spec["exec"].get("command", [])]
            try:
                result = subprocess.run(
                    argv, env=launch.env, cwd=launch.cwd, capture_output=True, timeout=timeout, check=False
                )
            except (OSError, subprocess.TimeoutExpired):
                return False
            return result.returncode == 0
        return True

    def _check_http(self, container: Container, action: Spec, timeout: float) -> bool:
        host = action.get("host") or self.ip
        scheme = str(action.get("scheme", "HTTP")).lower()
        url = f"{scheme}://{host}:{self._port(container, action['port'])}{action.get('path', '/')}"
        headers = {h["name"]: h["value"] for h in action.get("httpHeaders", [])}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the pod's own address
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return 200 <= int(response.status) < 400
        except (urllib.error.URLError, OSError):
            return False

    @staticmethod
    def _port(container: Container, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in container.spec.get("ports", []):
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise ValueError(f"container {container.name} declares no port named {port!r}")

    # -- command, environment, volumes

    def _launch(self, container: Container) -> Launch:
        """Resolve references and materialise volumes for one run of the container."""
        spec = container.spec
        env = self._base_env()
        paths = self._paths(container)
        defined = {name: paths.path(value) for name, value in self._container_env(spec).items()}
        env.update(defined)
        cwd = paths.path(spec["workingDir"]) if spec.get("workingDir") else str(self.dir)
        pathlib.Path(cwd).mkdir(parents=True, exist_ok=True)
        # $(VAR) in command and args refers to the container's own variables, as in Kubernetes.
        command = [paths.arg(_expand(c, defined)) for c in spec.get("command") or []]
        args = [paths.arg(_expand(a, defined)) for a in spec.get("args") or []]
        if is_triton(spec):
            assert self.ip is not None
            argv, env = self.kubelet.triton.command(self.ip, command[1:] + args, env)
            return Launch(argv=argv, env=env, cwd=cwd, paths=paths)
        return Launch(argv=command + args if command else [], env=env, cwd=cwd, paths=paths)

    def _paths(self, container: Container) -> PathMap:
        mapping = self._mount_map(container.spec)
        termination = container.spec.get("terminationMessagePath", DEFAULT_TERMINATION_PATH)
        mapping[termination] = container.termination_path
        return PathMap.build(mapping)

    def _base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env["PATH"] = os.pathsep.join([*_venv_bins(), os.environ.get("PATH", "/usr/bin:/bin")])
        env["HOSTNAME"] = self.name
        return env

    def _container_env(self, spec: Spec) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            for key, value in self._env_from(source).items():
                env[prefix + key] = value
        for item in spec.get("env", []):
            resolved = self._env_value(item)
            if resolved is not None:
                env[item["name"]] = _expand(resolved, env)
        return env

    def _env_from(self, source: Spec) -> dict[str, str]:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            return self.kubelet.config_map_data(self.namespace, ref["name"], ref.get("optional", False))
        if "secretRef" in source:
            ref = source["secretRef"]
            data = self.kubelet.secret_data(self.namespace, ref["name"], ref.get("optional", False))
            return {k: v.decode() for k, v in data.items()}
        return {}

    def _env_value(self, item: Spec) -> str | None:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom", {})
        if "fieldRef" in source:
            return self._field(source["fieldRef"]["fieldPath"])
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = self.kubelet.secret_data(self.namespace, ref["name"], ref.get("optional", False))
            return (
                _key(secret, ref, "secret").decode()
                if ref["key"] in secret or not ref.get("optional")
                else None
            )
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = self.kubelet.config_map_data(self.namespace, ref["name"], ref.get("optional", False))
            return _key(data, ref, "configmap") if ref["key"] in data or not ref.get("optional") else None
        return None

    def _field(self, path: str) -> str:
        meta = self._pod["metadata"]
        fields: dict[str, str] = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self._spec.get("nodeName", ""),
            "spec.serviceAccountName": self._spec.get("serviceAccountName", ""),
            "status.podIP": self.ip or "",
            "status.hostIP": HOST_IP,
        }
        if path in fields:
            return fields[path]
        for kind in ("labels", "annotations"):
            prefix = f"metadata.{kind}['"
            if path.startswith(prefix) and path.endswith("']"):
                return str(meta.get(kind, {}).get(path[len(prefix) : -2], ""))
        raise PodConfigError(f"unsupported fieldRef {path}")

    def _mount_map(self, container: Spec) -> dict[str, pathlib.Path]:
        """The container's mount paths to local folders, materialised now (config files refresh per start)."""
        volumes = {v["name"]: v for v in self._spec.get("volumes", [])}
        mapping: dict[str, pathlib.Path] = {}
        for mount in container.get("volumeMounts", []):
            root = self._volume_dir(volumes[mount["name"]])
            local = root / mount["subPath"] if mount.get("subPath") else root
            if not local.exists():
                local.mkdir(parents=True, exist_ok=True)  # as the kubelet creates a missing subPath
            mapping[mount["mountPath"]] = local
        return mapping

    def _volume_dir(self, volume: Spec) -> pathlib.Path:
        if "persistentVolumeClaim" in volume:
            folder = self._claim_dir(volume["persistentVolumeClaim"]["claimName"])
        elif "hostPath" in volume:
            return pathlib.Path(volume["hostPath"]["path"])
        else:
            folder = self.dir / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        _write_files(folder, self._volume_files(volume))
        return folder

    def _claim_dir(self, claim: str) -> pathlib.Path:
        """The bound volume's hostPath or local path (the testbed provisioner's), else a folder of ours."""
        core = self.kubelet.core
        try:
            claim_spec = core.read_namespaced_persistent_volume_claim(claim, self.namespace).spec
            if claim_spec is not None and claim_spec.volume_name:
                spec = core.read_persistent_volume(claim_spec.volume_name).spec
                source = spec and (spec.host_path or spec.local)
                if source:
                    path = pathlib.Path(source.path)
                    # A provisioner started with a relative --root (older testbeds) wrote paths relative to
                    # the repository root, where the testbed runs; every pod must see the same folder.
                    return path if path.is_absolute() else cluster.REPO_ROOT / path
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise
        return self.kubelet.state_root / "volumes" / self.namespace / claim

    def _volume_files(self, volume: Spec) -> dict[str, bytes]:
        """Files of configMap, secret, downwardAPI and projected volumes, relative path to content."""
        sources: list[Spec] = volume.get("projected", {}).get("sources", [])
        if not sources:
            sources = [{k: volume[k]} for k in ("configMap", "secret", "downwardAPI") if k in volume]
        files: dict[str, bytes] = {}
        for source in sources:
            files.update(self._source_files(source))
        return files

    def _source_files(self, source: Spec) -> dict[str, bytes]:
        if "configMap" in source:
            ref = source["configMap"]
            data = self.kubelet.config_map_data(self.namespace, ref["name"], ref.get("optional", False))
            return _select({k: v.encode() for k, v in data.items()}, ref.get("items"))
        if "secret" in source:
            ref = source["secret"]
            name = ref.get("secretName") or ref["name"]
            secret = self.kubelet.secret_data(self.namespace, name, ref.get("optional", False))
            return _select(secret, ref.get("items"))
        if "downwardAPI" in source:
            items = source["downwardAPI"].get("items", [])
            return {
                i["path"]: self._field(i["fieldRef"]["fieldPath"]).encode() for i in items if "fieldRef" in i
            }
        return {}  # serviceAccountToken and others: not emulated


def _key(data: dict[str, Any], ref: Spec, kind: str) -> Any:
    if ref["key"] not in data:
        raise PodConfigError(f"{kind} {ref['name']} has no key {ref['key']}")
    return data[ref["key"]]


def _select(data: dict[str, bytes], items: list[Spec] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _write_files(folder: pathlib.Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) references to variables defined earlier; $$ escapes."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2 : end]
            out.append(env.get(name, value[i : end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------- Triton


class TritonLauncher:
    """Builds the command of the real tritonserver from nvidia-pytriton, via thrifty_converters.triton."""

    _ADDRESS_FLAGS = ("--http-address", "--grpc-address", "--metrics-address")

    def __init__(self, state_root: pathlib.Path) -> None:
        self._workdir = state_root / "triton"
        self._lock = threading.Lock()
        self._prepared: tuple[Any, pathlib.Path] | None = None

    def _distribution(self) -> tuple[Any, pathlib.Path]:
        # Imported here: only Triton pods need the converters package and the wheel.
        from thrifty_converters.triton import server

        with self._lock:
            if self._prepared is None:
                distribution = server.find_tritonserver()
                self._prepared = (distribution, server.prepare_backends(distribution, self._workdir))
            return self._prepared

    def command(self, ip: str, args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """argv and environment of tritonserver serving the pod's arguments on the pod IP `ip`."""
        from thrifty_converters.triton import server

        distribution, backends = self._distribution()
        kept = _drop_flags(args, self._ADDRESS_FLAGS)
        kept += [f"{flag}={ip}" for flag in self._ADDRESS_FLAGS]
        defaults = {
            "--backend-directory": str(backends),
            "--cache-directory": str(distribution.caches_dir),
            "--allow-gpu-metrics": "false",
        }
        kept += [f"{flag}={value}" for flag, value in defaults.items() if not _has_flag(kept, flag)]
        if not any("shm-region-prefix-name" in a for a in kept):
            # The Python backend's shared-memory names must differ between servers on one host.
            prefix = f"thrifty_{ip.replace('.', '_')}_{os.getpid()}_"
            kept.append(f"--backend-config=python,shm-region-prefix-name={prefix}")
        return [str(distribution.binary), *kept], server.server_env(distribution, base=env)


def _has_flag(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def _drop_flags(args: list[str], flags: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in flags:
            skip_next = True  # "--flag value" form
        elif not arg.startswith(tuple(f + "=" for f in flags)):
            kept.append(arg)
    return kept


# ---------------------------------------------------------------------------------------- the harness


class LocalKubelet:
    """Watches pods labelled `LOCAL_KUBELET_LABEL` that are bound to a node, and runs them locally.

    Args:
        kubeconfig: The local cluster's kubeconfig.
        state_root: Holds `pods/<ns>/<pod>/` (logs, per-pod volumes), `volumes/<ns>/<claim>/` (PVCs)
            and `triton/` (prepared backends). Also names this instance in pod claims.
        namespace: Only run pods of this namespace (tests); default: all namespaces.
    """

    def __init__(
        self, kubeconfig: pathlib.Path, state_root: pathlib.Path, namespace: str | None = None
    ) -> None:
        self.state_root = state_root.resolve()
        self.namespace = namespace
        self.instance = f"{socket.gethostname()}:{self.state_root}"
        self.api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.ips = IpAllocator()
        self.triton = TritonLauncher(self.state_root)
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: kubernetes.watch.Watch | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> None:
        """Start watching in a background thread."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self.run, name="local-kubelet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop watching and stop every process (pods keep their last status)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.thread.join(timeout)
        if self._thread is not None:
            # The watch notices stop() at its next event or timeout; the thread is a daemon meanwhile.
            self._thread.join(2.0)
        self.api.close()

    def __enter__(self) -> LocalKubelet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def run(self) -> None:
        """Watch until stop(); relist after errors and expired resource versions (level-based)."""
        while not self._stopping.is_set():
            try:
                version = self._relist()
                for event in self._events(version):
                    self._dispatch(event["type"], event["object"])
            except kubernetes.client.ApiException as err:
                if err.status != 410:
                    log.warning("pod watch failed (%s); relisting", err.reason)
                    self._stopping.wait(1.0)
            except Exception as err:  # connection resets, API server restarts, our own stop()
                if not self._stopping.is_set():
                    log.warning("pod watch failed (%s); relisting", err)
                self._stopping.wait(1.0)

    # -- watching

    def _list_kwargs(self) -> dict[str, Any]:
        return {"label_selector": f"{LABEL},{LABEL}!={HOLD_VALUE}", "field_selector": "spec.nodeName!="}

    def _list_call(self) -> tuple[Callable[..., Any], list[str]]:
        """The list function and its positional arguments, for listing and watching alike."""
        if self.namespace is None:
            return self.core.list_pod_for_all_namespaces, []
        return self.core.list_namespaced_pod, [self.namespace]

    def _relist(self) -> str:
        call, args = self._list_call()
        response = call(*args, **self._list_kwargs(), _preload_content=False)
        listing = json.loads(response.data)
        present = set()
        for pod in listing["items"]:
            present.add(pod["metadata"]["uid"])
            self._dispatch("ADDED", pod)
        with self._lock:
            missing = [w for uid, w in self._workers.items() if uid not in present]
        for worker in missing:
            worker.gone()
        return str(listing["metadata"]["resourceVersion"])

    def _events(self, version: str) -> Iterator[dict[str, Any]]:
        while not self._stopping.is_set():
            call, args = self._list_call()
            self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            # A timeout makes the client raise 410 (expired version) instead of retrying on its own.
            stream = self._watch.stream(  # type: ignore[no-untyped-call]
                call,
                *args,
                **self._list_kwargs(),
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=30,
            )
            for event in stream:
                pod = event["raw_object"]
                version = pod["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    yield {"type": event["type"], "object": pod}

    def _dispatch(self, kind: str, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.gone()
            return
        if worker is not None:
            worker.observe(pod)
        elif self._claim(pod):
            self._spawn(pod)

    def _claim(self, pod: Pod) -> bool:
        """Mark the pod as ours unless another harness did; the resourceVersion guards the race."""
        meta = pod["metadata"]
        owner = meta.get("annotations", {}).get(CLAIM_ANNOTATION)
        if owner is not None:
            return bool(owner == self.instance)
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "annotations": {CLAIM_ANNOTATION: self.instance},
            }
        }
        try:
            self.core.patch_namespaced_pod(
                meta["name"], meta["namespace"], patch, _content_type="application/merge-patch+json"
            )
        except kubernetes.client.ApiException as err:
            if err.status in (404, 409):
                return False  # gone, or changed: the next event tells who owns it
            raise
        return True

    def _spawn(self, pod: Pod) -> None:
        worker = PodWorker(self, pod)
        with self._lock:
            if self._stopping.is_set():
                return
            self._workers[worker.uid] = worker
        log.info("pod %s: picked up", worker.key)
        worker.thread.start()

    def forget(self, worker: PodWorker) -> None:
        """Called by a worker when it ends."""
        with self._lock:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]

    # -- references

    def secret_data(self, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
        """A Secret's decoded data; {} if optional and missing."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except kubernetes.client.ApiException as err:
            if err.status == 404 and optional:
                return {}
            if err.status == 404:
                raise PodConfigError(f"secret {name} not found") from err
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def config_map_data(self, namespace: str, name: str, optional: bool) -> dict[str, str]:
        """A ConfigMap's data; {} if optional and missing."""
        try:
            config_map = self.core.read_namespaced_config_map(name, namespace)
        except kubernetes.client.ApiException as err:
            if err.status == 404 and optional:
                return {}
            if err.status == 404:
                raise PodConfigError(f"configmap {name} not found") from err
            raise
        return dict(config_map.data or {})
