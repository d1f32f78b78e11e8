"""The Argo CD health check (charts/thrifty/files/argocd-health.lua) run by a real Lua interpreter.

The objects in tests/unit/argocd/ were captured from real runs (`make demo` and `make test` on the local
cluster: `kubectl get om -o json` at each Ready reason); the few variants below change one field of them.
"""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "charts" / "thrifty" / "files" / "argocd-health.lua"
CAPTURED = pathlib.Path(__file__).parent / "argocd"
# Argo CD embeds gopher-lua (Lua 5.1); the script uses nothing newer, and Debian's lua5.4 runs it.
LUA = shutil.which("lua5.4") or shutil.which("lua")


def _lua(value: Any) -> str:
    """A Lua literal for a JSON value."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid Lua string literal for this data
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}" for k, v in value.items()) + "}"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    assert LUA is not None, "no Lua interpreter: `make node-packages` installs Debian's lua5.4"
    program = "\n".join(
        [
            f"obj = {_lua(obj)}",
            f"local hs = dofile({json.dumps(str(SCRIPT))})",
            "io.write(hs.status, '\\t', hs.message or '')",
        ]
    )
    result = subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, check=True, timeout=30)
    status, _, message = result.stdout.partition("\t")
    return status, message


def _captured(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((CAPTURED / f"{name}.json").read_text())
    return obj


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ready", "Healthy"),
        ("converting", "Progressing"),
        ("profiling", "Progressing"),
        ("rolling-out", "Progressing"),
        ("conversion-failed", "Degraded"),
        ("replicas-unavailable", "Degraded"),
        ("unknown-pool", "Degraded"),
        ("suspended", "Suspended"),
    ],
)
def test_captured_objects(name: str, expected: str) -> None:
    obj = _captured(name)
    status, message = health(obj)
    assert status == expected
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"] in message


def test_a_spec_the_operator_has_not_seen_yet_is_progressing() -> None:
    obj = _captured("ready")
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    assert health(obj) == (
        "Progressing",
        f"waiting for the operator to reconcile generation {obj['metadata']['generation']}",
    )


def test_a_new_object_without_status_is_progressing() -> None:
    obj = copy.deepcopy(_captured("converting"))
    del obj["status"]
    assert health(obj)[0] == "Progressing"


def test_a_suspended_model_is_suspended() -> None:
    obj = _captured("ready")
    obj["spec"]["suspend"] = True
    for c in obj["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="False", reason="Suspended", message="spec.suspend is true: scaled to zero")
    assert health(obj) == ("Suspended", "spec.suspend is true: scaled to zero")
