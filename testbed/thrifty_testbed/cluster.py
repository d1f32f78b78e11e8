"""A real local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK.

Processes run detached (their own session) so `make cluster-up` returns while the cluster keeps running;
their PIDs, ports and logs live in the state folder. Starting is idempotent: a healthy running cluster is
reused as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import json
import logging
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from . import node as real_node
from . import nodes, pki
from .ports import free_port

log = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".testbed" / "cluster"
DEFAULT_BIN_DIR = REPO_ROOT / ".testbed" / "bin"
DEFAULT_NODE_BIN_DIR = REPO_ROOT / ".testbed" / "node-bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "provisioner",
    *real_node.COMPONENTS,
)
# KWOK's pod stages leave pods with this label alone: they stay Pending, as if their work took long.
KWOK_HOLD_LABEL = "testbed.thrifty.dev/kwok-hold"
_NO_PROXY = f"127.0.0.1,localhost,::1,{real_node.GATEWAY},{real_node.POD_CIDR},{real_node.SERVICE_CIDR}"


class ClusterError(RuntimeError):
    """The local control plane could not be started or reached."""


class PrerequisiteError(ClusterError):
    """Something the cluster needs is missing; nothing was started. The message says what to do."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ports:
    """Loopback ports of one cluster instance."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); check its state.
    with contextlib.suppress(OSError):
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _in_cpu_pool(node_manifest: dict[str, Any]) -> bool:
    return bool(node_manifest["metadata"]["labels"].get(nodes.POOL_LABEL) == nodes.CPU_POOL.name)


def kwok_stages() -> str:
    """KWOK's fast node and pod stages, with pod stages skipping pods labelled KWOK_HOLD_LABEL."""
    documents: list[dict[str, Any]] = []
    folder = importlib.resources.files("thrifty_testbed") / "kwok"
    for name in ("node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"):
        stage = yaml.safe_load((folder / f"{name}.yaml").read_text())
        if stage["spec"]["resourceRef"]["kind"] == "Pod":
            stage["spec"]["selector"]["matchExpressions"].append(
                {"key": f'.metadata.labels["{KWOK_HOLD_LABEL}"]', "operator": "DoesNotExist"}
            )
        documents.append(stage)
    return yaml.safe_dump_all(documents, sort_keys=False)


class LocalCluster:
    """One local control plane, described by its state folder.

    With `node` (the default) it also runs the real node (thrifty_testbed.node) as the CPU pool, and KWOK
    simulates only the GPU pool; without it (the operator benchmark's dedicated clusters) KWOK simulates both.
    One machine holds at most one real node.
    """

    def __init__(
        self,
        state_dir: pathlib.Path = DEFAULT_STATE_DIR,
        bin_dir: pathlib.Path = DEFAULT_BIN_DIR,
        *,
        node: bool = True,
        node_bin_dir: pathlib.Path = DEFAULT_NODE_BIN_DIR,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.bin_dir = bin_dir
        self.with_node = node
        self.node_bin_dir = node_bin_dir
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.logs = self.state_dir / "logs"
        self.audit_log = self.logs / "audit.log"
        """Requests made by ServiceAccounts, one JSON object per line."""
        self._state_file = self.state_dir / "state.json"
        self._pki = pki.ensure_pki(self.state_dir / "pki") if self.state_dir.exists() else None
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def node(self) -> real_node.Node:
        """The real node (its processes run only when the cluster was started with `node`)."""
        if self._pki is None:
            raise ClusterError("the local cluster has never been started")
        return real_node.Node(self.state_dir, self.node_bin_dir, self._pki)

    # ------------------------------------------------------------------ inspection

    def _state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return state

    def _env(self) -> dict[str, str]:
        # kwok reads ~/.kwok and kubectl ~/.kube: keep both out by pointing HOME at the state folder.
        return dict(os.environ, HOME=str(self.state_dir), NO_PROXY=_NO_PROXY, no_proxy=_NO_PROXY)

    def _ssl(self) -> ssl.SSLContext:
        assert self._pki is not None
        ctx = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        ctx.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return ctx

    def _get(self, url: str, ctx: ssl.SSLContext | None = None) -> str | None:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=3) as response:  # noqa: S310 - loopback only
                body: bytes = response.read()
                return body.decode()
        except (OSError, urllib.error.URLError):
            return None

    def is_running(self) -> bool:
        """Whether every component runs and the API server reports ready."""
        state = self._state()
        if not state or not all(_pid_alive(pid) for pid in state["pids"].values()):
            return False
        return self._get(f"https://127.0.0.1:{state['ports']['apiserver']}/readyz", self._ssl()) == "ok"

    @property
    def server(self) -> str:
        """The API server's URL."""
        state = self._state()
        if not state:
            raise ClusterError("the local cluster is not running")
        return f"https://127.0.0.1:{state['ports']['apiserver']}"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 600.0) -> pathlib.Path:
        """Start the cluster unless a healthy one runs already; return the kubeconfig path. The timeout
        allows for a first import of the images into the node (the converter: about a minute).
        """
        if self.is_running():
            return self.kubeconfig
        if self.with_node:
            # Before cleaning up after an earlier run of this cluster, which would stop another's pods.
            try:
                real_node.refuse_foreign_node(self.state_dir / "node" / "kubelet")
            except real_node.NodeError as err:
                raise PrerequisiteError(f"the real node cannot start: {err}") from None
        self.stop()
        for binary in BINARIES:
            if not (self.bin_dir / binary).exists():
                raise PrerequisiteError(
                    f"{self.bin_dir / binary} is missing: run `make binaries` (tools/build.sh)"
                )
        if self.with_node:
            # Before anything starts: a missing prerequisite leaves nothing half-started behind.
            try:
                real_node.preflight(self.node_bin_dir)
            except real_node.NodeError as err:
                raise PrerequisiteError(f"the real node cannot start: {err}") from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._pki = pki.ensure_pki(self.state_dir / "pki")
        ports = Ports(
            etcd_client=free_port(),
            etcd_peer=free_port(),
            apiserver=free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
            kwok=free_port(),
        )
        pids: dict[str, int] = {}
        self._state_file.write_text(json.dumps({"ports": dataclasses.asdict(ports), "pids": pids}))
        deadline = time.monotonic() + timeout
        try:
            self._start_all(ports, pids, deadline)
        except real_node.NodeError as err:
            log.error("local cluster failed to start; logs in %s", self.logs)
            self.stop()
            raise ClusterError(f"the real node failed to start: {err}") from None
        except BaseException:
            log.error("local cluster failed to start; logs in %s", self.logs)
            self.stop()
            raise
        return self.kubeconfig

    def _spawn(
        self,
        name: str,
        args: Sequence[str],
        pids: dict[str, int],
        ports: Ports,
        program: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        command = [*(program or [str(self.bin_dir / name)]), *args]
        pids[name] = self._popen(name, command, dict(env or {}))
        state = self._state() or {}
        commands = state.get("commands", {}) | {name: {"argv": command, "env": dict(env or {})}}
        self._state_file.write_text(
            json.dumps(state | {"ports": dataclasses.asdict(ports), "pids": pids, "commands": commands})
        )

    def _popen(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> int:
        out = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env() | dict(env),
            start_new_session=True,
        )
        out.close()
        # Keep the handle: a dropped Popen of a running child warns (ResourceWarning) when collected.
        self._children.append(proc)
        return proc.pid

    def restart(self, name: str, down_seconds: float = 0.0, timeout: float = 60.0) -> None:
        """Stop one component (SIGTERM, then SIGKILL), keep it down `down_seconds`, start it again with the
        same command and data, and wait until the API server answers: a control-plane fault on purpose."""
        state = self._state()
        if not state or name not in state.get("commands", {}):
            raise ClusterError(f"{name} is not a component of this running cluster")
        pid = state["pids"][name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        end = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        time.sleep(down_seconds)
        command = state["commands"][name]
        state["pids"][name] = self._popen(name, command["argv"], command["env"])
        self._state_file.write_text(json.dumps(state))
        self._wait(
            f"{name} back",
            lambda: self.kubectl("get", "--raw", "/readyz", check=False).stdout.strip() == "ok",
            time.monotonic() + timeout,
        )

    def _wait(self, what: str, check: Any, deadline: float) -> None:
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        raise ClusterError(f"timed out waiting for {what}; logs in {self.logs}")

    def _start_all(self, ports: Ports, pids: dict[str, int], deadline: float) -> None:
        assert self._pki is not None
        p = self._pki
        d = self.state_dir
        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        shutil.rmtree(d / "etcd", ignore_errors=True)
        if self.with_node:
            # What a node killed without `make cluster-down` (a CI timeout, a reboot) left on the machine.
            self.node.teardown()
            self.node.create_bridge()
        self._spawn(
            "etcd",
            [
                "--name=thrifty",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=thrifty={peer_url}",
                "--listen-metrics-urls=",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=8589934592",
                # A throwaway test cluster: fsync only slows it down.
                "--unsafe-no-fsync",
            ],
            pids,
            ports,
        )
        self._wait("etcd", lambda: '"health":"true"' in (self._get(f"{etcd_url}/health") or ""), deadline)
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                # With the real node, pods reach the API server on the bridge's gateway address.
                f"--bind-address={'0.0.0.0' if self.with_node else '127.0.0.1'}",  # noqa: S104
                f"--advertise-address={real_node.GATEWAY if self.with_node else '127.0.0.1'}",
                f"--secure-port={ports.apiserver}",
                f"--tls-cert-file={p.admin_cert}",
                f"--tls-private-key-file={p.admin_key}",
                f"--client-ca-file={p.ca_cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p.service_account_key}",
                f"--service-account-signing-key-file={p.service_account_key}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # The API server's own identity towards kubelets (logs, exec, port-forward).
                f"--kubelet-client-certificate={p.admin_cert}",
                f"--kubelet-client-key={p.admin_key}",
                # The node's name resolves nowhere; its InternalIP is the bridge's gateway address.
                "--kubelet-preferred-address-types=InternalIP",
                "--service-cluster-ip-range=10.96.0.0/16",
                f"--cert-dir={d / 'apiserver'}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--audit-policy-file={self._audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
            ],
            pids,
            ports,
        )
        ctx = self._ssl()
        api = f"https://127.0.0.1:{ports.apiserver}"
        # Audit only what ServiceAccounts do (the operator under test); admin traffic stays out of the log.
        self._wait("kube-apiserver", lambda: self._get(f"{api}/readyz", ctx) == "ok", deadline)
        self._write_kubeconfig(api)
        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={ports.controller_manager}",
                f"--root-ca-file={p.ca_cert}",
                f"--service-account-private-key-file={p.service_account_key}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-bootstrapsigner,-tokencleaner",
                # Fast pod GC of completed Jobs' pods is not wanted: tests read their status.
                "--concurrent-job-syncs=5",
            ],
            pids,
            ports,
        )
        self._spawn("kube-scheduler", [*common, f"--secure-port={ports.scheduler}"], pids, ports)
        insecure = ssl._create_unverified_context()  # noqa: S323 - self-signed loopback health endpoints
        for name, port in (
            ("kube-controller-manager", ports.controller_manager),
            ("kube-scheduler", ports.scheduler),
        ):
            self._wait(
                name,
                lambda port=port: self._get(f"https://127.0.0.1:{port}/healthz", insecure) == "ok",
                deadline,
            )
        stages = d / "kwok-stages.yaml"
        stages.write_text(kwok_stages())
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}=fake",
                # Loopback pod and node IPs: probing a simulated pod never sends traffic off this machine.
                "--cidr=127.10.0.0/16",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{ports.kwok}",
            ],
            pids,
            ports,
        )
        # Binds claims to hostPath volumes under .testbed/volumes, where the local kubelet mounts them.
        self._spawn(
            "provisioner",
            [f"--kubeconfig={self.kubeconfig}", f"--root={self.state_dir.parent}"],
            pids,
            ports,
            program=[sys.executable, "-m", "thrifty_testbed.provisioner"],
        )
        if self.with_node:

            def spawn(name: str, args: list[str], program: list[str], env: Mapping[str, str]) -> None:
                self._spawn(name, args, pids, ports, program, env)

            wait = lambda what, check: self._wait(what, check, deadline)  # noqa: E731
            node_ports = self.node.start(api, spawn, wait)
            state = self._state() or {}
            self._state_file.write_text(json.dumps(state | {"node_ports": dataclasses.asdict(node_ports)}))
        manifest = d / "nodes.yaml"
        simulated = nodes.all_nodes()
        if self.with_node:
            # The CPU pool's simulated nodes stay for tests that fake Job results (config/pools.kwok.yaml
            # tolerates them); everything else lands on the real node.
            for n in simulated:
                if _in_cpu_pool(n):
                    n["spec"]["taints"].append(dict(nodes.SIMULATED_TAINT))
        manifest.write_text(yaml.safe_dump_all(simulated, sort_keys=False))
        self._wait(
            "node creation",
            lambda: self.kubectl("apply", "-f", str(manifest), check=False).returncode == 0,
            deadline,
        )
        self._wait("nodes Ready and untainted", self._nodes_schedulable, deadline)
        self._wait(
            "the default StorageClass",
            lambda: self.kubectl("get", "storageclass", "local", check=False).returncode == 0,
            deadline,
        )
        self._wait(
            "the default ServiceAccount",
            lambda: (
                self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
            ),
            deadline,
        )

    def _audit_policy(self) -> pathlib.Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
        }
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def _nodes_schedulable(self) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        items = json.loads(result.stdout)["items"]
        expected = sum(pool.count for pool in nodes.POOLS) + (1 if self.with_node else 0)
        ready = [
            n
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            and not any(t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints", []))
        ]
        return len(ready) >= expected

    def _write_kubeconfig(self, server: str) -> None:
        assert self._pki is not None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "thrifty-local",
                    "cluster": {"server": server, "certificate-authority": str(self._pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "thrifty-admin",
                    "user": {
                        "client-certificate": str(self._pki.admin_cert),
                        "client-key": str(self._pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "thrifty-local", "context": {"cluster": "thrifty-local", "user": "thrifty-admin"}}
            ],
            "current-context": "thrifty-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every component (reverse start order) and forget the cluster's data."""
        state = self._state()
        if state:
            pids = [state["pids"][name] for name in reversed(COMPONENTS) if name in state["pids"]]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
            end = time.monotonic() + timeout
            for pid in pids:
                while _pid_alive(pid) and time.monotonic() < end:
                    time.sleep(0.1)
                if _pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
            self._state_file.unlink(missing_ok=True)
        if self._pki is not None and (self.state_dir / "node").exists():
            self.node.teardown()
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)
        self._children.clear()
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's kubectl against it."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env=self._env(),
            input=input_text,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def log_tail(self, lines: int = 40) -> Iterator[str]:
        """The last lines of each component's log, for failure reports."""
        for name in COMPONENTS:
            path = self.logs / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                yield f"--- {name} ---\n" + "\n".join(tail)
