"""Pure helpers of the kubelet stand-in: path rewriting, $(VAR) expansion, Triton flags, pod IPs."""

from __future__ import annotations

import pathlib
import socket

from thrifty_testbed import kubelet


def test_path_map_rewrites_longest_mount_when_mounts_nest() -> None:
    paths = kubelet.PathMap.build({"/data": pathlib.Path("/l/data"), "/data/cache": pathlib.Path("/l/cache")})
    assert paths.path("/data/cache/x") == "/l/cache/x"
    assert paths.path("/data/x") == "/l/data/x"
    assert paths.path("/data") == "/l/data"
    assert paths.path("/database") == "/database"


def test_path_map_rewrites_flag_value_when_arg_has_equals() -> None:
    paths = kubelet.PathMap.build({"/models": pathlib.Path("/l/m")})
    assert paths.arg("--model-repository=/models") == "--model-repository=/l/m"
    assert paths.arg("--label=a=/models") == "--label=a=/models"


def test_expand_substitutes_defined_variables_when_referenced() -> None:
    env = {"A": "1"}
    assert kubelet._expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_drop_flags_removes_both_forms_when_flags_match() -> None:
    args = ["--http-address=0.0.0.0", "--grpc-address", "1.2.3.4", "--model-repository=/m"]
    assert kubelet._drop_flags(args, ("--http-address", "--grpc-address")) == ["--model-repository=/m"]


def test_ip_allocator_skips_address_when_port_is_taken(tmp_path: pathlib.Path) -> None:
    allocator = kubelet.IpAllocator(tmp_path)
    first = allocator.allocate([])
    with socket.socket() as busy:
        busy.bind(("127.0.1.2", 0))
        port = busy.getsockname()[1]
        busy.listen()
        second = allocator.allocate([port])
    assert first == "127.0.1.1"
    assert second == "127.0.1.3"
    allocator.release(first)
    allocator.release(second)
