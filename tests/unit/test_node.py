"""The real node's pure parts: what it refuses to start without, and the configuration it writes."""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import time

import pytest
import yaml

from thrifty_testbed import node, pki


@pytest.fixture(scope="module")
def local_node(tmp_path_factory: pytest.TempPathFactory) -> node.Node:
    state = tmp_path_factory.mktemp("cluster")
    return node.Node(state, state / "bin", pki.ensure_pki(state / "pki"))


def test_preflight_names_the_missing_package_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 0)
    monkeypatch.setattr(node.shutil, "which", lambda command: None if command == "containerd" else "/bin/x")
    with pytest.raises(node.NodeError) as failed:
        node.preflight(tmp_path)
    assert str(failed.value) == f"containerd is missing: apt-get install -y {node.REQUIRED_PACKAGES}"


def test_preflight_refuses_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    with pytest.raises(node.NodeError, match="needs root"):
        node.preflight(tmp_path)


def test_preflight_names_a_missing_node_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 0)
    monkeypatch.setattr(node.shutil, "which", lambda command: "/bin/x")
    with pytest.raises(node.NodeError, match=r"kubelet is missing: run `make node-binaries`"):
        node.preflight(tmp_path)


def test_pod_network_has_no_way_off_the_machine(local_node: node.Node) -> None:
    local_node._write_cni()
    conf = json.loads((local_node.cni_conf / "10-thrifty.conflist").read_text())
    bridge = conf["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == [{"dst": node.SERVICE_CIDR}]
    # The gateway is the bridge's own address inside the pod range; the Service range is separate.
    assert ipaddress.ip_address(node.GATEWAY) in ipaddress.ip_network(node.POD_CIDR)
    assert not ipaddress.ip_network(node.POD_CIDR).overlaps(ipaddress.ip_network(node.SERVICE_CIDR))


def test_kubelet_authenticates_clients_and_points_pods_at_cluster_dns_only(local_node: node.Node) -> None:
    ports = node.Ports(kubelet=1, kubelet_healthz=2, proxy_healthz=3, proxy_metrics=4, dns_health=5)
    config = yaml.safe_load(local_node._kubelet_config(ports).read_text())
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["x509"]["clientCAFile"] == str(local_node.pki.ca_cert)
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["readOnlyPort"] == 0
    assert config["clusterDNS"] == [node.GATEWAY]
    assert pathlib.Path(config["resolvConf"]).read_text() == ""
    corefile = local_node._corefile(pathlib.Path("/k"), ports).read_text()
    assert "forward" not in corefile and f"bind {node.GATEWAY}" in corefile


def test_kubelet_certificate_is_a_node_identity(local_node: node.Node) -> None:
    from cryptography import x509

    cert_path, _ = pki.issue(local_node.pki, "kubelet", f"system:node:{node.NAME}", "system:nodes")
    subject = x509.load_pem_x509_certificate(cert_path.read_bytes()).subject.rfc4514_string()
    assert subject == f"O=system:nodes,CN=system:node:{node.NAME}"


def test_preflight_refuses_while_another_clusters_kubelet_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    import subprocess
    import sys

    for binary in node.BINARIES:
        (tmp_path / binary).touch()
    monkeypatch.setattr(node.os, "geteuid", lambda: 0)
    monkeypatch.setattr(node, "_port_owner", lambda port: "")
    # Only this test's processes count (a cluster of the test run itself may be up).
    monkeypatch.setattr(node, "_processes", lambda: [os.getpid()])
    node.preflight(tmp_path)
    decoy = [sys.executable, "-c", "import time; time.sleep(30)", f"--hostname-override={node.NAME}"]
    with subprocess.Popen(decoy) as other:
        try:
            # Popen returns while the child may still be in exec (its cmdline reads empty until then).
            deadline = time.monotonic() + 10
            while not node._cmdline(other.pid)[0] and time.monotonic() < deadline:
                time.sleep(0.01)
            monkeypatch.setattr(node, "_processes", lambda: [os.getpid(), other.pid])
            with pytest.raises(node.NodeError, match=f"another cluster's node runs \\(pid {other.pid}\\)"):
                node.preflight(tmp_path)
        finally:
            other.kill()
