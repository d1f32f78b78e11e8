"""Stage results shared by every stage."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageResult:
    """What one stage did.

    Attributes:
        name: Stage name, e.g. "export" or "onnx-int8-static".
        status: "ok", "skipped: <why>" or "failed: <why>".
        output: The artifact the stage produced (or found), if any.
        seconds: Wall time the stage took.
        details: Free-form facts worth keeping (exporter used, fusions applied, ...).
    """

    name: str
    status: str
    output: Path | None = None
    seconds: float = 0.0
    details: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether `output` can feed later stages (made now, found from an earlier run, or given)."""
        return self.output is not None and not self.status.startswith("failed")


def ok(name: str, output: Path, seconds: float, **details: str) -> StageResult:
    """A stage that produced `output`."""
    return StageResult(name=name, status="ok", output=output, seconds=seconds, details=details)


def skipped(name: str, why: str, output: Path | None = None) -> StageResult:
    """A stage that did not run; `output` is set when an earlier run left it."""
    return StageResult(name=name, status=f"skipped: {why}", output=output)


def failed(name: str, why: str, seconds: float = 0.0) -> StageResult:
    """A stage that ran and broke; `why` is kept to one line."""
    return StageResult(name=name, status=f"failed: {one_line(why)}", seconds=seconds)


def existing(name: str, output: Path) -> StageResult | None:
    """The skip result for a stage whose artifact an earlier run left, else None."""
    if output.exists() and output.stat().st_size > 0:
        return skipped(name, "output exists", output)
    return None


def one_line(text: str, limit: int = 300) -> str:
    """First non-empty line of `text` without terminal colour codes, cut to `limit` characters."""
    for line in _ANSI.sub("", text).strip().splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return "no message"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters: they print graphs from C++ (fd 1/2), progress and many warnings.

    The stage report keeps what matters; the CLI promises one line per problem.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
