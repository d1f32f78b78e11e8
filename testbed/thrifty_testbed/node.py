"""The local cluster's real node: containerd, runc, a kubelet, bridge CNI, kube-proxy and CoreDNS.

One node, `thrifty-node-0`, joins the CPU pool (`karpenter.sh/nodepool=cpu-c7i`) with a client certificate
from the testbed PKI (`system:node:thrifty-node-0`, so the Node authorizer and NodeRestriction judge it).
Pods get addresses on the bridge `thrifty0` (10.244.0.0/24, gateway 10.244.0.1) and a route to the Service
range only: no uplink, no masquerading, no default route, so pod traffic never leaves this machine.
kube-proxy (iptables mode) makes ClusterIPs work, `kubernetes.default` included; CoreDNS answers
`cluster.local` names on the gateway address and nothing else (no upstream).

The node's processes run detached, recorded in the cluster's state like the control plane's. What the node
changes on the machine is undone by `teardown` (`make cluster-down`): pod containers and shims, mounts under
the kubelet's root, network namespaces, the bridge, and the KUBE-/CNI- iptables chains.
Images and containerd's content live in ${THRIFTY_CACHE:-~/.cache/thrifty}/containerd, shared by clones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from . import images, nodes, pki
from .ports import free_port

NAME = "thrifty-node-0"
BRIDGE = "thrifty0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
RUN_DIR = pathlib.Path("/run/thrifty")
CONTAINERD_SOCKET = RUN_DIR / "containerd" / "containerd.sock"
CONTAINERD_ROOT = images.CACHE / "containerd"
NAMESPACE = "k8s.io"  # containerd namespace of the CRI
REQUIRED_PACKAGES = "containerd runc containernetworking-plugins iptables umoci mmdebstrap"
BINARIES = ("kubelet", "kube-proxy", "coredns")
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")


Spawn = Callable[[str, list[str], list[str], Mapping[str, str]], None]
"""How the cluster starts one of the node's processes: name, arguments, program, extra environment."""


class NodeError(RuntimeError):
    """The node cannot start: one line that says why and what to do."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ports:
    """Host ports of the node's components (the kubelet's on the gateway address, the rest on loopback)."""

    kubelet: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    dns_health: int


def _run(*argv: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, input=input_text, timeout=120)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def preflight(bin_dir: pathlib.Path) -> None:
    """Every prerequisite of the node, checked before anything starts; raises NodeError with the fix."""
    if os.geteuid() != 0:
        raise NodeError("the real node needs root (containerd, the kubelet and CNI change the host)")
    for command in ("containerd", "containerd-shim-runc-v2", "runc", "iptables", "iptables-save", "ip"):
        if shutil.which(command) is None:
            raise NodeError(f"{command} is missing: apt-get install -y {REQUIRED_PACKAGES}")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not pathlib.Path("/usr/lib/cni", plugin).exists():
            raise NodeError(
                f"CNI plugin /usr/lib/cni/{plugin} is missing: apt-get install -y containernetworking-plugins"
            )
    if "overlay" not in pathlib.Path("/proc/filesystems").read_text():
        raise NodeError(
            "the kernel has no overlay filesystem (containerd's snapshotter needs it): modprobe overlay"
        )
    if not pathlib.Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise NodeError("bridge netfilter is missing (Services between pods need it): modprobe br_netfilter")
    for binary in BINARIES:
        if not (bin_dir / binary).exists():
            raise NodeError(f"{bin_dir / binary} is missing: run `make node-binaries` (tools/build-node.sh)")
    owner = _port_owner(53)
    if owner:
        raise NodeError(f"port 53 is taken ({owner}); cluster DNS binds {GATEWAY}:53: stop that server")
    refuse_foreign_node(None)


def refuse_foreign_node(own_kubelet_root: pathlib.Path | None) -> None:
    """Raise NodeError while a kubelet of the node runs for another cluster (not the one rooted at
    `own_kubelet_root`): one machine holds one node, and cleaning up after ours would stop its pods."""
    own = f"--root-dir={own_kubelet_root}" if own_kubelet_root else None
    for pid in _processes():
        argv = _cmdline(pid)
        if f"--hostname-override={NAME}" in argv and (own is None or own not in argv):
            raise NodeError(
                f"the kubelet of another cluster's node runs (pid {pid}): run `make cluster-down` there"
            )


def _port_owner(port: int) -> str:
    """Who listens on `port` on every address or the gateway (empty when nobody)."""
    lines = [
        *_run("ss", "-Hlnup", f"sport = :{port}", check=False).stdout.splitlines(),
        *_run("ss", "-Hlntp", f"sport = :{port}", check=False).stdout.splitlines(),
    ]
    relevant = [line for line in lines if any(a in line for a in ("0.0.0.0:", "*:", f"{GATEWAY}:", "[::]:"))]
    return relevant[0].split()[-1] if relevant else ""


def _processes() -> Iterable[int]:
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _cmdline(pid: int) -> list[str]:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _uses_our_socket(pid: int) -> bool:
    """containerd shims of our containerd (they outlive it) and processes given its socket."""
    return any(str(CONTAINERD_SOCKET) in arg or str(RUN_DIR / "containerd") in arg for arg in _cmdline(pid))


class Node:
    """The real node of one local cluster; `state_dir` is the cluster's state folder."""

    def __init__(self, state_dir: pathlib.Path, bin_dir: pathlib.Path, cluster_pki: pki.Pki) -> None:
        self.dir = state_dir / "node"
        self.bin_dir = bin_dir
        self.pki = cluster_pki
        self.kubelet_root = self.dir / "kubelet"
        self.cni_conf = self.dir / "cni" / "net.d"

    # ------------------------------------------------------------------ network

    def create_bridge(self) -> None:
        """The pods' bridge with the gateway address, before the API server advertises that address."""
        if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        if GATEWAY not in _run("ip", "-4", "addr", "show", BRIDGE).stdout:
            _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Bridged pod-to-pod packets must cross iptables, or Service hairpin replies skip kube-proxy's NAT.
        pathlib.Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")
        pathlib.Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def _write_cni(self) -> None:
        self.cni_conf.mkdir(parents=True, exist_ok=True)
        conf = {
            "cniVersion": "1.0.0",
            "name": "thrifty",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.dir / "cni" / "ipam"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        # Only the Service range: a default route would be a way off this machine.
                        "routes": [{"dst": SERVICE_CIDR}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.cni_conf / "10-thrifty.conflist").write_text(json.dumps(conf, indent=2))

    # ------------------------------------------------------------------ containerd

    def _containerd_config(self) -> pathlib.Path:
        run = RUN_DIR / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{CONTAINERD_ROOT / "root"}"
state = "{run / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{CONTAINERD_SOCKET}"
[ttrpc]
  address = "{CONTAINERD_SOCKET}.ttrpc"
[debug]
  address = "{run / "debug.sock"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{CONTAINERD_ROOT / "opt"}"
[{cri}]
  sandbox_image = "{images.PAUSE_REF}"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start (oom_score_adj -998).
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{self.cni_conf}"
"""
        path = self.dir / "containerd.toml"
        path.write_text(text)
        return path

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` against the node's containerd, in the CRI's namespace."""
        return _run("ctr", f"--address={CONTAINERD_SOCKET}", f"--namespace={NAMESPACE}", *args, check=check)

    def import_images(self, say: Callable[[str], None] = print) -> list[str]:
        """Import every image `make images` recorded that containerd lacks; returns the refs imported."""
        present = set(self.ctr("images", "ls", "-q").stdout.split())
        imported = []
        for target, image in sorted(images.load_record().items()):
            ref, archive = str(image["ref"]), pathlib.Path(str(image["archive"]))
            if ref in present:
                continue
            if not archive.exists():
                raise NodeError(f"image archive {archive} is missing: run `make images`")
            started = time.monotonic()
            self.ctr("images", "import", str(archive))
            if target != "pause":
                self.ctr("images", "tag", "--force", f"{images.IMAGE_PREFIX}/{target}:build", ref)
                self.ctr("images", "rm", f"{images.IMAGE_PREFIX}/{target}:build", check=False)
            say(f"node: imported {ref} in {time.monotonic() - started:.0f} s")
            imported.append(ref)
        self._remove_stale_images()
        return imported

    def _remove_stale_images(self) -> None:
        """Older builds of the testbed's images go (the converter alone is gigabytes), with the digest
        names the CRI gave them; what pods still run keeps its snapshot until they stop."""
        current = {str(image["ref"]) for image in images.load_record().values()}
        rows = [line.split() for line in self.ctr("images", "ls").stdout.splitlines()[1:] if line.strip()]
        keep = {row[2] for row in rows if row[0] in current}
        stale = [row[0] for row in rows if row[2] not in keep]
        if stale:
            self.ctr("images", "rm", *stale, check=False)

    # ------------------------------------------------------------------ kubelet, kube-proxy, CoreDNS

    def _kubeconfig(self, name: str, server: str, cert: pathlib.Path, key: pathlib.Path) -> pathlib.Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": server, "certificate-authority": str(self.pki.ca_cert)},
                }
            ],
            "users": [{"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
            "current-context": name,
        }
        path = self.dir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def _kubelet_config(self, ports: Ports) -> pathlib.Path:
        resolv = self.dir / "resolv.conf"
        # Pods resolve only cluster names: no upstream servers, no search domains of this machine.
        resolv.write_text("")
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY,
            "port": ports.kubelet,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": ports.kubelet_healthz,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "imageServiceEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "protectKernelDefaults": False,
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [GATEWAY],
            "resolvConf": str(resolv),
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "serializeImagePulls": False,
            "maxPods": 110,
            "shutdownGracePeriod": "0s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
        }
        path = self.dir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _kube_proxy_config(self, kubeconfig: pathlib.Path, ports: Ports) -> pathlib.Path:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NAME,
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
            "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
            # Leave the machine's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "nodePortAddresses": [f"{GATEWAY}/32"],
        }
        path = self.dir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _corefile(self, kubeconfig: pathlib.Path, ports: Ports) -> pathlib.Path:
        text = f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {GATEWAY}
    errors
    health 127.0.0.1:{ports.dns_health}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig} coredns
        pods insecure
    }}
    cache 5
}}
.:53 {{
    bind {GATEWAY}
    errors
}}
"""
        path = self.dir / "Corefile"
        path.write_text(text)
        return path

    def start(
        self,
        server: str,
        spawn: Spawn,
        wait: Callable[[str, Callable[[], bool]], None],
    ) -> Ports:
        """Start containerd, the kubelet, kube-proxy and CoreDNS; `spawn(name, args, program, env)` and
        `wait(what, check)` are the cluster's own process helpers."""
        for sub in ("pod-logs", "volume-plugins", "kubelet", "kubelet-pki"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (RUN_DIR / "containerd").mkdir(parents=True, exist_ok=True)
        CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
        self._write_cni()
        ports = Ports(
            kubelet=free_port(),
            kubelet_healthz=free_port(),
            proxy_healthz=free_port(),
            proxy_metrics=free_port(),
            dns_health=free_port(),
        )
        # Images come only from `make images`: every registry request goes to a closed loopback port, so a
        # pod naming an image that is not here fails at once (ErrImagePull) and nothing leaves the machine.
        closed = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
        spawn("containerd", ["--config", str(self._containerd_config())], ["containerd"], closed)
        wait("containerd", lambda: self.ctr("version", check=False).returncode == 0)
        self._forget_containers()
        self.import_images()
        kubelet_cert = pki.issue(self.pki, "kubelet", f"system:node:{NAME}", "system:nodes")
        proxy_cert = pki.issue(self.pki, "kube-proxy", "system:kube-proxy")
        labels = {
            nodes.POOL_LABEL: nodes.CPU_POOL.name,
            "node.kubernetes.io/instance-type": "local",
            "topology.kubernetes.io/region": "local",
            "topology.kubernetes.io/zone": "local-a",
        }
        spawn(
            "kubelet",
            [
                f"--config={self._kubelet_config(ports)}",
                f"--kubeconfig={self._kubeconfig('kubelet', server, *kubelet_cert)}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={NAME}",
                f"--node-ip={GATEWAY}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
                "--v=1",
            ],
            [str(self.bin_dir / "kubelet")],
            {},
        )
        proxy_kubeconfig = self._kubeconfig("kube-proxy", server, *proxy_cert)
        proxy_config = self._kube_proxy_config(proxy_kubeconfig, ports)
        spawn("kube-proxy", [f"--config={proxy_config}"], [str(self.bin_dir / "kube-proxy")], {})
        admin_kubeconfig = self._kubeconfig("coredns", server, self.pki.admin_cert, self.pki.admin_key)
        spawn(
            "coredns",
            ["-conf", str(self._corefile(admin_kubeconfig, ports))],
            [str(self.bin_dir / "coredns")],
            {},
        )
        wait("kube-proxy", lambda: _http_ok(f"http://127.0.0.1:{ports.proxy_healthz}/healthz"))
        wait("CoreDNS", lambda: _http_ok(f"http://127.0.0.1:{ports.dns_health}/health"))
        return ports

    def _forget_containers(self) -> None:
        """Drop containers a previous cluster left in containerd's metadata (their pods are gone)."""
        for container in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("tasks", "rm", "--force", container, check=False)
            self.ctr("containers", "rm", container, check=False)

    # ------------------------------------------------------------------ teardown

    def teardown(self) -> None:
        """Undo what the node did to the machine; its processes are stopped already (the cluster's stop)."""
        self._stop_containers()
        self._unmount_under(self.kubelet_root)
        for netns in pathlib.Path("/run/netns").glob("cni-*"):
            with contextlib.suppress(OSError):
                subprocess.run(["umount", str(netns)], capture_output=True, check=False)
                netns.unlink()
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            _run("ip", "link", "del", BRIDGE, check=False)
        for tool in ("iptables", "ip6tables"):
            _drop_chains(tool, ("KUBE-", "CNI-"))
        shutil.rmtree(self.dir / "cni" / "ipam", ignore_errors=True)

    def _stop_containers(self) -> None:
        # Shims outlive containerd: kill what they run, then the shims themselves.
        for pid in _processes():
            if _uses_our_socket(pid) and "containerd-shim" in " ".join(_cmdline(pid)):
                for child in _children(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(RUN_DIR / "containerd" / "state", ignore_errors=True)

    @staticmethod
    def _unmount_under(root: pathlib.Path) -> None:
        resolved = str(root.resolve())
        mounts = [line.split()[1] for line in pathlib.Path("/proc/mounts").read_text().splitlines()]
        inside = [m for m in mounts if m == resolved or m.startswith(resolved + "/")]
        for mount in sorted(inside, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _children(pid: int) -> list[int]:
    found = []
    for other in _processes():
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = pathlib.Path(f"/proc/{other}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(other)
                found.extend(_children(other))
    return found


def _drop_chains(tool: str, prefixes: tuple[str, ...]) -> None:
    """Remove every chain whose name starts with one of `prefixes`, and the rules that jump to them."""
    if shutil.which(f"{tool}-save") is None:
        return
    dump = _run(f"{tool}-save", check=False).stdout
    if not any(p in dump for p in prefixes):
        return
    kept = [line for line in dump.splitlines() if not any(p in line for p in prefixes)]
    _run(f"{tool}-restore", input_text="\n".join(kept) + "\n", check=False)


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback health endpoints
            return int(response.status) == 200
    except OSError:
        return False
