"""Status conditions with Kubernetes semantics (k8s.io/apimachinery/pkg/api/meta/conditions.go).

`lastTransitionTime` changes only when a condition's status changes; reason, message and observedGeneration
always follow the latest evaluation.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Literal

from thrifty_api import optimized_model as models

Status = Literal["True", "False", "Unknown"]
MAX_CONDITIONS = 16


@dataclasses.dataclass(frozen=True, kw_only=True)
class Condition:
    """A condition as computed by the reconciler, before it meets the stored one."""

    type: str
    status: Status
    reason: str
    message: str


def _now() -> datetime.datetime:
    # Whole seconds: the API server stores RFC 3339 times without fractions.
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def merge(
    stored: Iterable[models.Condition],
    computed: Iterable[Condition],
    generation: int,
    now: datetime.datetime | None = None,
) -> list[models.Condition]:
    """The new `status.conditions`: `computed` applied over `stored`, keeping other stored types."""
    by_type = {c.type: c for c in stored}
    timestamp = now or _now()
    fresh = list(computed)
    for cond in fresh:
        previous = by_type.get(cond.type)
        changed = previous is None or previous.status != cond.status
        by_type[cond.type] = models.Condition(
            type=cond.type,
            status=cond.status,
            observed_generation=generation,
            last_transition_time=timestamp if changed or previous is None else previous.last_transition_time,
            reason=cond.reason,
            # Conditions are one-liners; Events and logs carry the detail.
            message=" ".join(cond.message.split())[:1024],
        )
    # The schema holds 16: the computed types first, then the stored ones this version no longer sets.
    mine = {c.type for c in fresh}
    kept = sorted(by_type.values(), key=lambda c: (c.type not in mine, c.type))[:MAX_CONDITIONS]
    return sorted(kept, key=lambda c: c.type)


def find(conditions: Iterable[models.Condition], type_: str) -> models.Condition | None:
    """The condition of `type_`, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[models.Condition], type_: str) -> bool:
    """Whether the condition of `type_` is present and True."""
    cond = find(conditions, type_)
    return cond is not None and cond.status == "True"
