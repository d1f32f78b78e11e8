"""What this machine's CPU and accelerators can do, read once."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_vnni() -> bool:
    """INT8 dot-product instructions; without them ORT needs reduce_range to avoid saturation."""
    return bool(flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def has_gpu() -> bool:
    """An NVIDIA GPU is visible (device node present); the GPU stages need one."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidia0").exists()
