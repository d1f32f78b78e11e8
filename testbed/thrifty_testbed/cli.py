"""`thrifty-testbed up|down|status|kubeconfig|kubelet`: manage the local control plane from the shell.

`kubelet` runs the kubelet stand-in (thrifty_testbed.kubelet) in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import signal
import sys
import threading

from . import cluster


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="thrifty-testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "kubeconfig", "kubelet"])
    parser.add_argument("--state-dir", type=pathlib.Path, default=cluster.DEFAULT_STATE_DIR)
    parser.add_argument("--bin-dir", type=pathlib.Path, default=cluster.DEFAULT_BIN_DIR)
    parser.add_argument("--namespace", help="kubelet: only run pods of this namespace")
    args = parser.parse_args(argv)
    local = cluster.LocalCluster(args.state_dir, args.bin_dir)
    if args.command == "kubelet":
        return run_kubelet(local, args.namespace)
    try:
        if args.command == "up":
            was_running = local.is_running()
            kubeconfig = local.start()
            print(
                ("reused running" if was_running else "started") + f" local cluster at {local.server}",
                file=sys.stderr,
            )
            print(kubeconfig)
        elif args.command == "down":
            local.stop()
            print("local cluster stopped", file=sys.stderr)
        elif args.command == "status":
            running = local.is_running()
            print(f"running at {local.server}" if running else "not running")
            return 0 if running else 1
        else:
            print(local.kubeconfig)
    except cluster.ClusterError as err:
        print(f"thrifty-testbed: {err}", file=sys.stderr)
        for tail in local.log_tail(20):
            print(tail, file=sys.stderr)
        return 1
    return 0


def run_kubelet(local: cluster.LocalCluster, namespace: str | None) -> int:
    """Play kubelet for labelled pods until SIGINT or SIGTERM, one log line per pod event."""
    from . import kubelet  # the kubernetes client loads only for this command

    if not local.is_running():
        print("thrifty-testbed: the local cluster is not running; run `thrifty-testbed up`", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    # Pod logs and volumes live beside the cluster state: .testbed/pods, .testbed/volumes.
    with kubelet.LocalKubelet(local.kubeconfig, local.state_dir.parent, namespace=namespace):
        print(f"local kubelet running pods labelled {cluster.LOCAL_KUBELET_LABEL}", file=sys.stderr)
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
