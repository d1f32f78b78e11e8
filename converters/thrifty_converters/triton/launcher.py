"""Install a `tritonserver` command for the nvidia-pytriton wheel's server, for the `triton-cpu` image.

The wheel's binary needs its bundled libraries on LD_LIBRARY_PATH and a backend folder that holds the Python
backend's stub for this interpreter (`distribution.prepare_backends`). The launcher is a shell script that
sets both and `exec`s the binary, so tritonserver is PID 1 of its container and receives SIGTERM itself:

    python -m thrifty_converters.triton.launcher /opt/triton /opt/venv/bin/tritonserver
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .distribution import find_tritonserver, prepare_backends, server_env
from .errors import ServerError

_SCRIPT = """#!/bin/sh
# tritonserver from nvidia-pytriton, written by thrifty_converters.triton.launcher.
export LD_LIBRARY_PATH={libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}
exec {binary} --backend-directory={backends} --cache-directory={caches} --allow-gpu-metrics=false "$@"
"""


def write_launcher(prepared: Path, script: Path) -> Path:
    """Prepare backends under `prepared` and write the launcher at `script`; return the script path."""
    distribution = find_tritonserver()
    backends = prepare_backends(distribution, prepared)
    env = server_env(distribution, base={})
    script.write_text(
        _SCRIPT.format(
            libs=shlex.quote(env["LD_LIBRARY_PATH"]),
            binary=shlex.quote(str(distribution.binary)),
            backends=shlex.quote(str(backends)),
            caches=shlex.quote(str(distribution.caches_dir)),
        )
    )
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m thrifty_converters.triton.launcher PREPARED SCRIPT`."""
    parser = argparse.ArgumentParser(prog="python -m thrifty_converters.triton.launcher", description=__doc__)
    parser.add_argument("prepared", type=Path, help="folder for the prepared backends")
    parser.add_argument("script", type=Path, help="where to write the tritonserver launcher")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(f"{write_launcher(args.prepared, args.script)}\n")
    except ServerError as err:
        sys.stderr.write(f"launcher: {err}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
