"""Run the real operator (`kopf run -m thrifty_operator.handlers`) as a local process.

For tests that fake what Jobs report and for the operator benchmark: their models' pods go to KWOK's
simulated nodes (config/pools.kwok.yaml), where nothing runs. The demo and the end-to-end tests run the
chart's operator Deployment on the real node instead (thrifty_testbed.deploy).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping

from . import cluster

POOLS = cluster.REPO_ROOT / "config" / "pools.kwok.yaml"


@contextlib.contextmanager
def running(
    kubeconfig: pathlib.Path,
    namespace: str,
    log: pathlib.Path,
    settings: Mapping[str, str] | None = None,
    *,
    verbose: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator watching `namespace`, `settings` keyed without the THRIFTY_ prefix; SIGTERM on exit."""
    env = dict(
        os.environ, KUBECONFIG=str(kubeconfig), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost"
    )
    env["THRIFTY_POOL_CATALOGUE"] = str(POOLS)
    # Local operators share this machine's ports: no metrics endpoint unless a test asks for one.
    env["THRIFTY_METRICS_PORT"] = "0"
    env.update({f"THRIFTY_{key.upper()}": value for key, value in (settings or {}).items()})
    argv = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace]
    argv += ["--verbose"] if verbose else []
    argv += ["-m", "thrifty_operator.handlers"]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
