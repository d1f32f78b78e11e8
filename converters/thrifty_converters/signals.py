"""SIGTERM as a clean exit for the CLIs, which run as PID 1 of their containers.

The kernel ignores a signal whose disposition is the default for a namespace's PID 1, so without a handler a
deleted Job's pod would wait out its grace period and be killed. Raising SystemExit runs `finally` blocks
(partial outputs are removed) and exits with 143, as a shell reports a SIGTERM death.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

EXIT_SIGTERM = 128 + signal.SIGTERM


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(EXIT_SIGTERM)


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread."""
    signal.signal(signal.SIGTERM, _exit)


def forward_sigterm(child: subprocess.Popen[bytes]) -> None:
    """Pass SIGTERM on to `child` (which then exits by itself) instead of exiting first."""

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
