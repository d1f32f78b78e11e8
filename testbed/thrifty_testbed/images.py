"""`make images`: the Dockerfile's targets built with BuildKit, without Docker, into OCI archives.

Nothing can be pulled here, so the Dockerfile's `FROM` images come as BuildKit named contexts from one local
OCI layout, pinned by digest (the Dockerfile stays the one file Docker users build from):

- `python:3.11-slim-bookworm`: Debian bookworm (minbase, python3, libpython3.11, ca-certificates) made by
  mmdebstrap from the machine's own apt sources and packed with umoci;
- `ghcr.io/astral-sh/uv:<version>`: the `uv` binary from the PyPI wheel of the same version;
- `pause`: the sandbox image of the local node (pause.c, built static with gcc).

The machine's CA bundle (its egress proxy signs TLS) is given to the build as the secret `ca-bundle`, which
a `RUN --mount=type=secret` step reads while it runs; no layer holds it (tests/e2e/test_images.py checks).
Everything is cached under ${THRIFTY_CACHE:-~/.cache/thrifty}: the base layout keyed by its inputs, BuildKit's
state and layer cache, and one archive per image; `.testbed/images.json` records what the last build made.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.resources
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
CACHE = pathlib.Path(os.environ.get("THRIFTY_CACHE", pathlib.Path.home() / ".cache" / "thrifty"))
NODE_BIN = REPO_ROOT / ".testbed" / "node-bin"
RECORD = REPO_ROOT / ".testbed" / "images.json"
TARGETS = ("operator", "converter", "triton-cpu")
# What the base image needs beyond minbase: the interpreter, the shared libpython that Triton's Python-backend
# stub embeds, and the CA certificates of the public TLS roots.
DEBIAN_PACKAGES = ("python3", "libpython3.11", "ca-certificates")
APT_SOURCES = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
BASE_LAYOUT_NAME = "thrifty-base"
IMAGE_PREFIX = "localhost/thrifty"
PAUSE_REF = f"{IMAGE_PREFIX}/pause:local"
_LAYOUT_RECIPE = "6"  # bump when the base layout's recipe changes
Say = Callable[[str], None]


class ImageError(RuntimeError):
    """A build step failed; the message says which and where its log is."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseLayout:
    """The local OCI layout with the images the Dockerfile starts from."""

    folder: pathlib.Path
    digests: dict[str, str]
    """Tag in the layout (`python`, `uv`, `pause`) → manifest digest."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Image:
    """One built image."""

    target: str
    ref: str
    """Name the node's containerd knows it by: `localhost/thrifty/<target>:<digest prefix>`."""
    digest: str
    archive: pathlib.Path
    size: int
    """Bytes of its layers once unpacked (the archive's layers are zstd-compressed)."""


def dockerfile_bases() -> dict[str, str]:
    """The image names the Dockerfile's FROM lines use for Python and uv."""
    text = DOCKERFILE.read_text()
    python = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    uv = re.search(r"^FROM (\S+/uv:(\S+)) AS uv$", text, re.M)
    if not python or not uv:
        raise ImageError(f"{DOCKERFILE}: no `ARG PYTHON_IMAGE=` or `FROM .../uv:<version> AS uv` line")
    return {"python": python.group(1), "uv": uv.group(1), "uv_version": uv.group(2)}


def _run(argv: Sequence[str], log: pathlib.Path, what: str) -> None:
    with log.open("ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageError(f"{what} failed (exit {result.returncode}); log {log}:\n{tail}")


def _require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        raise ImageError(f"missing {', '.join(missing)}: run `make node-packages` (Debian packages)")


def _single_file_layer(tar_path: pathlib.Path, name: str, source: pathlib.Path) -> None:
    with tarfile.open(tar_path, "w") as tar:
        info = tar.gettarinfo(str(source), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o755
        info.mtime = 0
        with source.open("rb") as f:
            tar.addfile(info, f)


def _uv_binary(version: str, work: pathlib.Path, log: pathlib.Path) -> pathlib.Path:
    """The `uv` executable from the PyPI wheel of `version`."""
    wheels = work / "uv-wheel"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            f"uv=={version}",
        ],
        log,
        f"downloading the uv {version} wheel",
    )
    wheel = next(wheels.glob("uv-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
        target = work / "uv"
        target.write_bytes(z.read(member))
    return target


def _layout_digests(layout: pathlib.Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def base_layout(say: Say = print) -> BaseLayout:
    """Build (once per set of inputs) the OCI layout with the python, uv and pause images."""
    bases = dockerfile_bases()
    pause_c = (importlib.resources.files("thrifty_testbed") / "pause.c").read_bytes()
    sources = APT_SOURCES.read_bytes() if APT_SOURCES.exists() else b""
    key = hashlib.sha256(
        b"\0".join(
            [
                _LAYOUT_RECIPE.encode(),
                " ".join(DEBIAN_PACKAGES).encode(),
                sources,
                pause_c,
                bases["uv_version"].encode(),
            ]
        )
    ).hexdigest()[:16]
    folder = CACHE / "images" / f"base-{key}"
    layout = folder / "oci"
    if (folder / ".complete").exists():
        return BaseLayout(folder=layout, digests=_layout_digests(layout))
    _require("mmdebstrap", "umoci", "gcc")
    if not APT_SOURCES.exists():
        raise ImageError(f"{APT_SOURCES} is missing: mmdebstrap takes the Debian mirror from it")
    shutil.rmtree(folder, ignore_errors=True)
    work = folder / "work"
    work.mkdir(parents=True)
    log = folder / "build.log"
    started = time.monotonic()
    say("base images: Debian bookworm rootfs with mmdebstrap (about 2 minutes, once)")
    rootfs = work / "rootfs.tar"
    _run(
        [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
            # Slim like python:3.11-slim: no recommended packages (perl), docs, manuals or translations.
            "--aptopt=APT::Install-Recommends false",
            *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            # bookworm's mmdebstrap brings usrmerge, and with it perl (50 MB); the merged /usr stays.
            '--customize-hook=chroot "$1" apt-get purge -y -qq --auto-remove'
            " usrmerge perl libperl5.36 perl-modules-5.36 >/dev/null",
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
            "--mode=root",
            "--format=tar",
            "--quiet",
            "bookworm",
            str(rootfs),
            str(APT_SOURCES),
        ],
        log,
        "mmdebstrap",
    )
    umoci = ["umoci", "--log=error"]
    _run([*umoci, "init", "--layout", str(layout)], log, "umoci init")
    uv = _uv_binary(bases["uv_version"], work, log)
    pause = work / "pause"
    (work / "pause.c").write_bytes(pause_c)
    _run(["gcc", "-static", "-Os", "-s", "-o", str(pause), str(work / "pause.c")], log, "building pause")
    layers = {"python": rootfs, "uv": work / "uv.tar", "pause": work / "pause.tar"}
    _single_file_layer(layers["uv"], "uv", uv)
    _single_file_layer(layers["pause"], "pause", pause)
    config = {
        "python": [
            "--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.env=LANG=C.UTF-8",
            "--config.cmd=python3",
        ],
        "uv": ["--config.entrypoint=/uv"],
        "pause": ["--config.entrypoint=/pause"],
    }
    for tag, layer in layers.items():
        image = f"{layout}:{tag}"
        _run([*umoci, "new", "--image", image], log, f"umoci new {tag}")
        _run([*umoci, "raw", "add-layer", "--image", image, str(layer)], log, f"umoci add-layer {tag}")
        _run(
            [*umoci, "config", "--image", image, "--os=linux", "--architecture=amd64", *config[tag]],
            log,
            f"umoci config {tag}",
        )
    # umoci leaves the superseded manifests and configs of each edit behind.
    _run([*umoci, "gc", "--layout", str(layout)], log, "umoci gc")
    shutil.rmtree(work)
    (folder / ".complete").touch()
    say(f"base images: done in {time.monotonic() - started:.0f} s ({folder})")
    return BaseLayout(folder=layout, digests=_layout_digests(layout))


def pause_archive(base: BaseLayout) -> pathlib.Path:
    """An OCI archive holding only the pause image, named PAUSE_REF, for `ctr images import`."""
    out = base.folder.parent / "pause.tar"
    if out.exists():
        return out
    digest = base.digests["pause"]
    with tempfile.TemporaryDirectory(dir=base.folder.parent) as tmp:
        root = pathlib.Path(tmp)
        manifest_path = base.folder / "blobs" / "sha256" / digest.removeprefix("sha256:")
        manifest = json.loads(manifest_path.read_text())
        blobs = [digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
        (root / "blobs" / "sha256").mkdir(parents=True)
        for blob in blobs:
            name = blob.removeprefix("sha256:")
            shutil.copy(base.folder / "blobs" / "sha256" / name, root / "blobs" / "sha256" / name)
        shutil.copy(base.folder / "oci-layout", root / "oci-layout")
        entry = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest_path.stat().st_size,
            "annotations": {
                "io.containerd.image.name": PAUSE_REF,
                "org.opencontainers.image.ref.name": PAUSE_REF.rsplit(":", 1)[1],
            },
        }
        (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
        with tarfile.open(out.with_suffix(".partial"), "w") as tar:
            for path in sorted(root.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        out.with_suffix(".partial").rename(out)
    return out


# ---------------------------------------------------------------------------------------- BuildKit


@contextlib.contextmanager
def buildkitd(bin_dir: pathlib.Path = NODE_BIN) -> Iterator[str]:
    """A buildkitd for this build (its state is cached and shared by every clone); yields its address."""
    for binary in ("buildkitd", "buildctl"):
        if not (bin_dir / binary).exists():
            raise ImageError(f"{bin_dir / binary} is missing: run `make node-binaries` (tools/build-node.sh)")
    _require("runc")
    root = CACHE / "buildkit"
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / "lock").open("w")
    # One build at a time per machine: clones share the state folder.
    fcntl.flock(lock, fcntl.LOCK_EX)
    address = f"unix://{root / 'buildkitd.sock'}"
    log = root / "buildkitd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(bin_dir / "buildkitd"),
                f"--root={root / 'state'}",
                f"--addr={address}",
                "--oci-worker=true",
                "--oci-worker-snapshotter=overlayfs",
                "--oci-worker-binary=runc",
                # Steps reach the package registries through the host's network (no bridge, no NAT set-up).
                "--oci-worker-net=host",
                "--containerd-worker=false",
                "--oci-worker-gc-keepstorage=20000",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                [str(bin_dir / "buildctl"), f"--addr={address}", "debug", "workers"],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ImageError(f"buildkitd did not start; log {log}")
            time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        lock.close()


def ca_bundle() -> pathlib.Path | None:
    """The machine's CA bundle (with the egress proxy's CA), passed to downloads as a build secret."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    return None


def build(
    target: str, address: str, base: BaseLayout, key: str, bin_dir: pathlib.Path = NODE_BIN, say: Say = print
) -> Image:
    """Build one Dockerfile target into an OCI archive; cached layers make an unchanged rebuild seconds."""
    bases = dockerfile_bases()
    out_dir = CACHE / "images" / "archives"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{target}-{key}.tar"
    log = out_dir / f"{target}.log"
    log.write_text("")
    with tempfile.TemporaryDirectory() as tmp:
        metadata = pathlib.Path(tmp) / "metadata.json"
        partial = archive.with_suffix(".partial")
        argv = [
            str(bin_dir / "buildctl"),
            f"--addr={address}",
            "build",
            "--progress=plain",
            "--frontend=dockerfile.v0",
            f"--local=context={REPO_ROOT}",
            f"--local=dockerfile={REPO_ROOT}",
            f"--opt=target={target}",
            # Torch from the default index: the PyTorch CPU index is out of reach here.
            "--opt=build-arg:TORCH_CPU_INDEX=",
            f"--oci-layout={BASE_LAYOUT_NAME}={base.folder}",
            f"--opt=context:{bases['python']}=oci-layout://{BASE_LAYOUT_NAME}@{base.digests['python']}",
            f"--opt=context:{bases['uv']}=oci-layout://{BASE_LAYOUT_NAME}@{base.digests['uv']}",
            f"--output=type=oci,name={IMAGE_PREFIX}/{target}:build,dest={partial},compression=zstd,compression-level=3,force-compression=true",
            f"--metadata-file={metadata}",
        ]
        bundle = ca_bundle()
        if bundle is not None:
            argv.append(f"--secret=id=ca-bundle,src={bundle}")
        started = time.monotonic()
        _run(argv, log, f"building {target}")
        digest = json.loads(metadata.read_text())["containerimage.digest"]
        partial.rename(archive)
    # One archive per target is kept: the converter's alone is gigabytes.
    for older in out_dir.glob(f"{target}-*.tar"):
        if older != archive:
            older.unlink()
    size = uncompressed_size(archive)
    image = Image(
        target=target,
        ref=f"{IMAGE_PREFIX}/{target}:{digest.removeprefix('sha256:')[:12]}",
        digest=digest,
        archive=archive,
        size=size,
    )
    say(f"image {target}: {image.ref}, {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s")
    return image


def manifest_of(tar: tarfile.TarFile) -> dict[str, Any]:
    """The image manifest of an OCI archive holding one image."""
    index = json.load(_member(tar, "index.json"))
    manifest: dict[str, Any] = json.load(_member(tar, f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"))
    return manifest


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    found = tar.extractfile(name)
    if found is None:
        raise ImageError(f"{name} is not a file in the archive")
    return found


@contextlib.contextmanager
def layer(tar: tarfile.TarFile, descriptor: Mapping[str, Any]) -> Iterator[IO[bytes]]:
    """One layer of an OCI archive as an uncompressed tar stream (zstd layers through the zstd tool)."""
    blob = _member(tar, f"blobs/sha256/{descriptor['digest'][7:]}")
    if not str(descriptor["mediaType"]).endswith("+zstd"):
        yield blob
        return
    with subprocess.Popen(["zstd", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        feed = proc.stdin

        def pump() -> None:
            with contextlib.suppress(BrokenPipeError):
                shutil.copyfileobj(blob, feed, 1 << 20)
            feed.close()

        feeder = threading.Thread(target=pump, daemon=True)
        feeder.start()
        try:
            yield proc.stdout
        finally:
            proc.stdout.read()
            feeder.join()


def uncompressed_size(archive: pathlib.Path) -> int:
    """Bytes of the image's layers once unpacked: what it takes on a node."""
    total = 0
    with tarfile.open(archive) as tar:
        for descriptor in manifest_of(tar)["layers"]:
            with layer(tar, descriptor) as stream:
                while chunk := stream.read(1 << 20):
                    total += len(chunk)
    return total


# What each target's build reads from the context (.dockerignore admits only these); the Dockerfile and the
# base images count for every target.
_TARGET_INPUTS = {
    "operator": ("api", "operator"),
    "converter": ("api", "converters"),
    "triton-cpu": ("api", "converters"),
}


def input_key(target: str, base: BaseLayout) -> str:
    """A hash of everything the target's build reads; equal keys build the same layers."""
    digest = hashlib.sha256()
    for part in (_LAYOUT_RECIPE, target, DOCKERFILE.read_text(), json.dumps(base.digests, sort_keys=True)):
        digest.update(part.encode() + b"\0")
    for folder in _TARGET_INPUTS[target]:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_all(targets: Sequence[str] = TARGETS, say: Say = print) -> dict[str, Image]:
    """Build every target whose inputs changed (by any clone: the cache is shared) and record them in
    .testbed/images.json; an unchanged target is reused without starting BuildKit."""
    base = base_layout(say)
    built_dir = CACHE / "images" / "built"
    built_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, Image] = {}
    todo: dict[str, str] = {}
    for target in targets:
        key = input_key(target, base)
        known = built_dir / f"{target}-{key}.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(known.read_text())
            image = Image(
                target=target,
                ref=data["ref"],
                digest=data["digest"],
                archive=pathlib.Path(data["archive"]),
                size=int(data["size"]),
            )
            if image.archive.exists():
                images[target] = image
                say(f"image {target}: {image.ref}, {image.size / 1e6:.0f} MB, unchanged")
                continue
        todo[target] = key
    if todo:
        with buildkitd() as address:
            for target, key in todo.items():
                images[target] = build(target, address, base, key, say=say)
                (built_dir / f"{target}-{key}.json").write_text(json.dumps(_as_json(images[target])))
    recorded = load_record()
    recorded.update({t: _as_json(i) for t, i in images.items()})
    recorded["pause"] = {"ref": PAUSE_REF, "archive": str(pause_archive(base))}
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(recorded, indent=2, sort_keys=True))
    return images


def _as_json(image: Image) -> dict[str, object]:
    return {"ref": image.ref, "digest": image.digest, "archive": str(image.archive), "size": image.size}


def load_record() -> dict[str, dict[str, object]]:
    """What `make images` built last: target → {ref, digest, archive, size}; empty before the first build."""
    try:
        record: dict[str, dict[str, object]] = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        return {}
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m thrifty_testbed.images` (`make images`)."""
    parser = argparse.ArgumentParser(prog="thrifty-images", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS), help=f"default: {' '.join(TARGETS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        print(  # noqa: T201 - the command's own error line
            f"thrifty-images: unknown target {', '.join(unknown)} (known: {', '.join(TARGETS)})",
            file=sys.stderr,
        )
        return 2
    try:
        build_all(args.targets, say=lambda line: print(line, flush=True))  # noqa: T201 - progress
    except ImageError as err:
        print(f"thrifty-images: {err}", file=sys.stderr)  # noqa: T201 - the command's own error line
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
