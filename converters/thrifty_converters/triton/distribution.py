"""Locate the CPU tritonserver shipped in the nvidia-pytriton wheel and prepare what it needs to run.

The wheel holds `pytriton/tritonserver/{bin/tritonserver, backends/python, caches, python_backend_stubs/
<py>/triton_python_backend_stub}` and its shared libraries in `nvidia_pytriton.libs/`. As pytriton does,
we assemble a backend directory with the stub built for this interpreter's Python version, put the
libraries on LD_LIBRARY_PATH, and put this environment's `bin/` first on PATH: the stub embeds libpython
and finds its prefix (hence site-packages with numpy, onnxruntime, openvino) from `python3` on PATH.

The `triton-cpu` image uses it through `launcher`; the test harness that starts and stops a server is
`thrifty_testbed.triton`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from .errors import ServerError


@dataclasses.dataclass(frozen=True, kw_only=True)
class TritonDistribution:
    """Files of the tritonserver distribution inside nvidia-pytriton.

    Attributes:
        binary: The tritonserver executable.
        libs_dir: Shared libraries the binary links against.
        backends_dir: Backends as shipped (the Python backend, without a stub).
        caches_dir: Response-cache implementations.
        stubs_dir: Python-backend stubs, one directory per Python version ("3.11").
    """

    binary: Path
    libs_dir: Path
    backends_dir: Path
    caches_dir: Path
    stubs_dir: Path

    def stub(self, python_version: str) -> Path:
        """The Python-backend stub built for `python_version` ("3.11")."""
        return self.stubs_dir / python_version / "triton_python_backend_stub"


def find_tritonserver() -> TritonDistribution:
    """Locate tritonserver in the installed nvidia-pytriton wheel without importing pytriton.

    Raises:
        ServerError: nvidia-pytriton is not installed (install the `serve` extra) or is incomplete.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed; install thrifty-converters[serve]")
    package = Path(next(iter(spec.submodule_search_locations)))
    dist_dir = package / "tritonserver"
    # A wheel install puts the libraries beside the package; an editable one keeps them inside it.
    libs = package.parent / "nvidia_pytriton.libs"
    distribution = TritonDistribution(
        binary=dist_dir / "bin" / "tritonserver",
        libs_dir=libs if libs.is_dir() else dist_dir / "external_libs",
        backends_dir=dist_dir / "backends",
        caches_dir=dist_dir / "caches",
        stubs_dir=dist_dir / "python_backend_stubs",
    )
    if not os.access(distribution.binary, os.X_OK):
        raise ServerError(f"tritonserver binary missing or not executable: {distribution.binary}")
    return distribution


def prepare_backends(distribution: TritonDistribution, dest: Path, python_version: str | None = None) -> Path:
    """Build a backend directory in `dest`: the shipped backends plus the stub for `python_version`.

    The Python backend runs `triton_python_backend_stub` from its own backend directory, and the wheel
    ships one stub per Python version outside it. Every entry is a symlink into the wheel: a freshly
    written executable can fail to start with ETXTBSY ("Text file busy") when any thread forks while its
    write descriptor is open, which happened under load with a copied stub. Idempotent.

    Returns:
        The directory to pass as `--backend-directory`.

    Raises:
        ServerError: No stub exists for that Python version.
    """
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = distribution.stub(version)
    if not stub.is_file():
        raise ServerError(f"nvidia-pytriton ships no Python-backend stub for Python {version} ({stub})")
    backends = dest / "backends"
    links = {
        backends / source.relative_to(distribution.backends_dir): source
        for source in distribution.backends_dir.rglob("*")
        if source.is_file()
    }
    links[backends / "python" / stub.name] = stub
    for link, source in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    return backends


def server_env(
    distribution: TritonDistribution,
    python_prefix: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for tritonserver whose Python-backend stubs use the environment at `python_prefix`.

    Args:
        distribution: Where the libraries are.
        python_prefix: A venv or Python prefix with numpy and the runtimes; default: this interpreter's.
        base: Environment to extend; default: `os.environ`.
    """
    env = dict(os.environ if base is None else base)
    prefix = python_prefix or Path(sys.prefix)
    # The stub embeds libpython; prefer the library of the Python that owns the venv's stdlib, so the
    # embedded interpreter and the stdlib it loads are the same build.
    libpython_dir = sysconfig.get_config_var("LIBDIR")
    lib_dirs = [str(distribution.libs_dir)]
    if libpython_dir and python_prefix is None and Path(libpython_dir, "libpython3.so").exists():
        lib_dirs.insert(0, libpython_dir)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*lib_dirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = os.pathsep.join([str(prefix / "bin"), *filter(None, [env.get("PATH")])])
    return env
