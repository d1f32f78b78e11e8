"""Status conditions with Kubernetes semantics (k8s.io/apimachinery/pkg/api/meta/conditions.go).

`lastTransitionTime` changes only when a condition's status changes; reason, message and observedGeneration
always follow the latest evaluation.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Condition:
    """A condition as computed by the reconciler, before it meets the stored one."""

    type: str
    status: Status
    reason: str
    message: str


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    stored: Iterable[Mapping[str, Any]],
    computed: Iterable[Condition],
    generation: int,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """The new `status.conditions`: `computed` applied over `stored`, keeping other stored types."""
    by_type = {c["type"]: dict(c) for c in stored}
    timestamp = now or _now()
    for cond in computed:
        previous = by_type.get(cond.type)
        changed = previous is None or previous.get("status") != cond.status
        by_type[cond.type] = {
            "type": cond.type,
            "status": cond.status,
            "observedGeneration": generation,
            "lastTransitionTime": timestamp if changed else previous["lastTransitionTime"],  # type: ignore[index]
            "reason": cond.reason,
            # Conditions are one-liners; Events and logs carry the detail.
            "message": " ".join(cond.message.split())[:1024],
        }
    return sorted(by_type.values(), key=lambda c: c["type"])


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """The condition of `type_`, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[Mapping[str, Any]], type_: str) -> bool:
    """Whether the condition of `type_` is present and True."""
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == "True"
