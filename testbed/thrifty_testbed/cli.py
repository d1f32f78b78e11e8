"""`thrifty-testbed up|down|status|kubeconfig`: manage the local cluster and its real node from the shell."""

from __future__ import annotations

import argparse
import pathlib
import sys

from . import cluster


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="thrifty-testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "kubeconfig"])
    parser.add_argument("--state-dir", type=pathlib.Path, default=cluster.DEFAULT_STATE_DIR)
    parser.add_argument("--bin-dir", type=pathlib.Path, default=cluster.DEFAULT_BIN_DIR)
    args = parser.parse_args(argv)
    local = cluster.LocalCluster(args.state_dir, args.bin_dir)
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
            print(
                "local cluster stopped (its node's containers, mounts, bridge and iptables chains too)",
                file=sys.stderr,
            )
        elif args.command == "status":
            running = local.is_running()
            print(f"running at {local.server}" if running else "not running")
            return 0 if running else 1
        else:
            print(local.kubeconfig)
    except cluster.ClusterError as err:
        print(f"thrifty-testbed: {err}", file=sys.stderr)
        if args.command == "up" and not isinstance(err, cluster.PrerequisiteError):
            for tail in local.log_tail(20):
                print(tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
